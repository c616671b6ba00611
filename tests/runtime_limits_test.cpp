// Runtime limits and lifetimes: the bounded plan cache (count and bytes, least recently
// used evicted), batch size 0, a backend that cannot run a model failing at load, and,
// through the C API, a model freed while runs are in flight and a model run at batch sizes
// 1..2000 (both meant for the sanitizer build too).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "internal/kernel.hpp"
#include "kiln.h"
#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"

extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace {

using namespace kiln;

// 8 -> hidden (relu) -> 4 softmax MLP with fixed weights.
struct Mlp {
  Graph g;
  Value x, probs;
  explicit Mlp(std::int64_t hidden = 16) {
    x = g.input("x", {batch, 8});
    Rng rng(7);
    auto w1 = g.parameter("w1", nn::glorot_uniform({8, hidden}, rng));
    auto b1 = g.parameter("b1", Tensor::full({hidden}, 0.1));
    auto w2 = g.parameter("w2", nn::glorot_uniform({hidden, 4}, rng));
    auto h = relu(matmul(x, w1) + b1);
    probs = softmax(matmul(h, w2), 1);
  }
  std::vector<std::uint8_t> bytes() {
    SaveOptions o;
    o.inputs = {x};
    o.outputs = {probs};
    o.output_names = {"probs"};
    return serialize_model(g, o);
  }
};

Tensor rows(std::int64_t n, std::int64_t width, std::uint64_t seed) {
  Rng rng(seed);
  return nn::normal(1.0)(Shape{n, width}, rng, DType::f32);
}

std::vector<std::string> backends() {
  std::vector<std::string> out = {"reference", "eigen"};
  for (const auto& k : internal::kernels_for(Op::matmul))
    if (std::string(k.backend) == "onednn") out.push_back("onednn");
  return out;
}

TEST(PlanCache, KeepsAtMostTheConfiguredNumberLeastRecentlyUsedFirst) {
  Mlp m;
  Executable exe(m.g, {m.probs}, {.plan_cache_size = 3});
  Executable fresh(m.g, {m.probs});
  for (std::int64_t b = 1; b <= 10; ++b) {
    const Tensor in = rows(b, 8, static_cast<std::uint64_t>(b));
    exe.run({{"x", in}});
    EXPECT_LE(exe.cached_plans(), 3u);
  }
  EXPECT_EQ(exe.cached_plans(), 3u);
  // Batch 8 is cached; touching it makes 9 the least recently used, so a new size evicts
  // 9 and keeps 8. Every result stays equal to a fresh executable's.
  const Tensor in8 = rows(8, 8, 8);
  const auto bytes_before = exe.cached_plan_bytes();
  auto out8 = exe.run({{"x", in8}});
  EXPECT_EQ(exe.cached_plan_bytes(), bytes_before);  // a hit compiles nothing
  exe.run({{"x", rows(11, 8, 11)}});
  EXPECT_EQ(exe.cached_plans(), 3u);
  EXPECT_NE(exe.plan({{"x", in8}}).find("[8, 4]"), std::string::npos);
  EXPECT_EQ(exe.cached_plans(), 3u);  // 8 was still there: no new plan
  const auto ref = fresh.run({{"x", in8}});
  ASSERT_EQ(out8[0].numel(), ref[0].numel());
  for (std::int64_t i = 0; i < ref[0].numel(); ++i)
    EXPECT_EQ(out8[0].data<float>()[i], ref[0].data<float>()[i]);
}

TEST(PlanCache, ByteBudgetReleasesPlansAndRunViewsKeepsTheLatest) {
  Mlp m;
  // A budget below any plan's arena: run() (which copies its outputs) keeps no plan,
  // run_views() keeps the latest (its outputs are views into it), and only that one.
  Executable exe(m.g, {m.probs}, {.plan_cache_bytes = 16});
  auto out = exe.run({{"x", rows(64, 8, 1)}});
  EXPECT_EQ(exe.cached_plans(), 0u);
  EXPECT_EQ(exe.cached_plan_bytes(), 0u);
  auto views = exe.run_views({{"x", rows(32, 8, 2)}});
  EXPECT_EQ(exe.cached_plans(), 1u);
  EXPECT_EQ(views[0].shape(), Shape({32, 4}));
  exe.run_views({{"x", rows(16, 8, 3)}});
  EXPECT_EQ(exe.cached_plans(), 1u);
  EXPECT_GT(exe.cached_plan_bytes(), 0u);
  // Default budget: many sizes stay within the count and the bytes.
  Executable dflt(m.g, {m.probs});
  for (std::int64_t b = 1; b <= 40; ++b) dflt.run({{"x", rows(b, 8, 4)}});
  EXPECT_EQ(dflt.cached_plans(), CompileOptions{}.plan_cache_size);
  EXPECT_LE(dflt.cached_plan_bytes(), CompileOptions{}.plan_cache_bytes);
}

// The kernel families: "" picks the best kernel per node (oneDNN where built and where it
// takes the shapes), the others restrict every node to one family.
const std::vector<std::string> families = {"", "eigen", "reference"};

TEST(BatchZero, RunsOnEveryBackendAndGivesEmptyOutputs) {
  Mlp m;
  const auto bytes = m.bytes();
  for (const auto& backend : families) {
    SCOPED_TRACE(backend);
    auto model = infer::Model::load(bytes, "mlp", {.backend = backend});
    auto out = model.run({{"x", Tensor::zeros({0, 8})}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].shape(), Shape({0, 4}));
    // And the next run at a real batch size is unaffected.
    auto one = model.run({{"x", rows(3, 8, 5)}});
    EXPECT_EQ(one[0].shape(), Shape({3, 4}));
  }
  // A CNN too (conv, pooling, flatten, dense).
  Graph g;
  auto x = g.input("img", {batch, 1, 8, 8});
  auto h = nn::conv2d(g, x, 4, {3, 3}, {.padding = {1, 1}, .activation = relu});
  h = nn::max_pool2d(g, h, {2, 2});
  h = flatten(h);
  auto logits = nn::dense(g, h, 3);
  for (const auto& backend : families) {
    SCOPED_TRACE(backend);
    Executable exe(g, {softmax(logits, 1)}, {.backend = backend});
    auto out = exe.run({{"img", Tensor::zeros({0, 1, 8, 8})}});
    EXPECT_EQ(out[0].shape(), Shape({0, 3}));
  }
}

TEST(LoadWithBackend, FailsAtLoadWhenTheBackendCannotRunTheModel) {
  // An f64 matmul: the Eigen and oneDNN kernels take f32 only, so naming either backend
  // must fail at load, naming the node, and the reference backend must load and run.
  Graph g;
  auto a = g.input("a", {batch, 2}, DType::f64);
  auto w = g.parameter("w", Tensor::full({2, 2}, 0.5, DType::f64));
  auto y = matmul(a, w, {}, "proj");
  SaveOptions o;
  o.inputs = {a};
  o.outputs = {y};
  const auto bytes = serialize_model(g, o);
  for (const auto& backend : backends()) {
    SCOPED_TRACE(backend);
    if (backend == "reference") {
      auto m = infer::Model::load(bytes, "f64", {.backend = backend});
      EXPECT_EQ(m.run({{"a", Tensor::full({3, 2}, 1.0, DType::f64)}})[0].at(0), 1.0);
      continue;
    }
    try {
      infer::Model::load(bytes, "f64", {.backend = backend});
      ADD_FAILURE() << "loading with backend " << backend << " did not fail";
    } catch (const ValueError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("backend '" + backend + "' cannot run this model"), std::string::npos)
          << what;
      EXPECT_NE(what.find("(node 'proj')"), std::string::npos) << what;
    }
  }
}

// --- Through the C API -------------------------------------------------------------------

struct CModel {
  kiln_model* model = nullptr;
  explicit CModel(const std::vector<std::uint8_t>& bytes) {
    EXPECT_EQ(kiln_model_load_from_memory(bytes.data(), bytes.size(), &model), KILN_OK)
        << kiln_last_error_message();
  }
};

// A [n, 8] f32 tensor holding x's first n rows.
kiln_tensor* c_rows(const std::vector<float>& x, std::int64_t n) {
  const std::int64_t dims[2] = {n, 8};
  kiln_tensor* in = nullptr;
  EXPECT_EQ(kiln_tensor_create(KILN_F32, dims, 2, x.data(),
                               static_cast<size_t>(n * 8) * sizeof(float), &in),
            KILN_OK);
  return in;
}

kiln_status run_c(const kiln_model* model, const kiln_tensor* in, std::vector<float>* out) {
  const char* names[1] = {"x"};
  const kiln_tensor* ins[1] = {in};
  kiln_tensor* res = nullptr;
  const kiln_status s = kiln_model_run(model, names, ins, 1, &res, 1);
  if (s != KILN_OK) return s;
  const void* data = nullptr;
  size_t numel = 0;
  kiln_tensor_data(res, &data);
  kiln_tensor_numel(res, &numel);
  out->assign(static_cast<const float*>(data), static_cast<const float*>(data) + numel);
  kiln_tensor_free(res);
  return KILN_OK;
}

TEST(CApiLifetime, FreeingAModelWhileRunsAreInFlight) {
  Mlp m;
  const auto bytes = m.bytes();
  // A batch that takes far longer to run than the moment between a thread announcing its
  // call and the call taking its share of the model (the caller's side of the contract:
  // no call may start after kiln_model_free).
#if defined(__SANITIZE_ADDRESS__)
  const std::int64_t n = 50000;  // unoptimised and instrumented: far slower per row
#else
  const std::int64_t n = 400000;
#endif
  const Tensor input = rows(n, 8, 9);
  const std::vector<float> x(input.data<float>(), input.data<float>() + n * 8);
  Executable ref_exe(m.g, {m.probs});
  const Tensor ref = ref_exe.run({{"x", input}})[0];
  kiln_tensor* in = c_rows(x, n);
  CModel c(bytes);
  constexpr int threads = 3;
  std::atomic<int> calling{0}, returned{0};
  std::vector<kiln_status> status(threads, KILN_ERROR_INTERNAL);
  std::vector<std::vector<float>> outs(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      calling.fetch_add(1);
      status[static_cast<std::size_t>(t)] = run_c(c.model, in, &outs[static_cast<std::size_t>(t)]);
      returned.fetch_add(1);
    });
  while (calling.load() < threads) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int done_before_free = returned.load();
  kiln_model_free(c.model);  // the runs in flight keep what they use
  for (auto& th : pool) th.join();
  kiln_tensor_free(in);
  EXPECT_EQ(done_before_free, 0) << "runs ended before the free: the test checked nothing";
  for (int t = 0; t < threads; ++t) {
    ASSERT_EQ(status[static_cast<std::size_t>(t)], KILN_OK) << kiln_last_error_message();
    const auto& o = outs[static_cast<std::size_t>(t)];
    ASSERT_EQ(o.size(), static_cast<std::size_t>(n * 4));
    for (std::size_t i = 0; i < o.size(); i += 9973) EXPECT_NEAR(o[i], ref.data<float>()[i], 1e-5);
  }
}

TEST(CApiLifetime, BatchSizes1To2000StayWithinThePlanCache) {
  Mlp m(2);  // small: 2000 plans are compiled, and the sanitizer build runs this too
  CModel c(m.bytes());
  const Tensor input = rows(2000, 8, 3);
  const std::vector<float> x(input.data<float>(), input.data<float>() + 2000 * 8);
  Executable ref_exe(m.g, {m.probs});
  const Tensor ref = ref_exe.run({{"x", input}})[0];
  // The same model through the C++ API exposes the cache: its size and bytes stay bounded
  // while the C model runs every batch size.
  Executable bounded(m.g, {m.probs});
  std::vector<float> out;
  for (std::int64_t n = 1; n <= 2000; ++n) {
    kiln_tensor* in = c_rows(x, n);
    ASSERT_EQ(run_c(c.model, in, &out), KILN_OK) << n << ": " << kiln_last_error_message();
    kiln_tensor_free(in);
    ASSERT_EQ(out.size(), static_cast<std::size_t>(n * 4));
    // Rows do not depend on the batch they are in.
    EXPECT_NEAR(out[static_cast<std::size_t>(n * 4 - 1)], ref.data<float>()[n * 4 - 1], 1e-5) << n;
    if (n % 50 == 0) {
      bounded.run({{"x", Tensor::zeros({n, 8})}});
      EXPECT_LE(bounded.cached_plans(), CompileOptions{}.plan_cache_size);
      EXPECT_LE(bounded.cached_plan_bytes(), CompileOptions{}.plan_cache_bytes);
    }
  }
  kiln_model_free(c.model);
}

}  // namespace
