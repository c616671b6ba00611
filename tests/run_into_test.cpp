// I/O binding: Executable::run_into and infer::Model::run_into write a run's outputs into
// the caller's tensors. Checked against run() on the same executable (bitwise: the same
// kernels run), with the step writing straight into an aligned caller buffer (seen by an
// observer), with a copy into an unaligned one, for outputs that are views, read by later
// steps, shared by a view or asked for twice; errors name the output and leave the
// caller's buffers as they were, and the plan serves run() correctly afterwards.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"
#include "tests/support/error_test_support.hpp"
#include "tests/support/kernel_test_support.hpp"

using namespace kiln;

namespace {

Tensor seeded(const Shape& shape, std::uint64_t seed) {
  Rng rng(seed);
  return kiln_test::random(shape, rng);
}

// x [batch, 12] -> dense 16 (relu) -> dense 5 -> softmax; also the hidden layer h, and
// logits reshaped to [batch, 5, 1] (a view of the logits).
struct Mlp {
  Graph g;
  Value x, h, logits, probs, column;
  Mlp() {
    x = g.input("x", {batch, 12});
    h = relu(matmul(x, g.parameter("w1", seeded({12, 16}, 1))) + g.parameter("b1", seeded({16}, 2)),
             "h");
    logits = matmul(h, g.parameter("w2", seeded({16, 5}, 3))) + g.parameter("b2", seeded({5}, 4));
    probs = softmax(logits, -1, "probs");
    column = reshape(logits, {batch, 5, 1}, "column");
  }
  Feeds feeds(std::int64_t rows, std::uint64_t seed) { return {{"x", seeded({rows, 12}, seed)}}; }
};

void expect_bitwise(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << what;
}

// Records where each step wrote its value.
struct Where : RunObserver {
  std::vector<const void*> at;
  void on_step(const ObservedStep& s) override { at.push_back(s.value.raw()); }
};

// A caller's buffer of `shape` starting `offset` bytes into 64-byte aligned memory.
struct Buffer {
  std::vector<float> storage;
  Tensor tensor;
  Buffer(const Shape& shape, std::size_t offset, float fill = -7.0f)
      : storage(static_cast<std::size_t>(shape.numel()) + 32, fill) {
    auto base = reinterpret_cast<std::uintptr_t>(storage.data());
    auto* aligned = reinterpret_cast<unsigned char*>((base + 63) / 64 * 64) + offset;
    tensor = Tensor::borrow(aligned, shape, f32);
  }
  std::vector<float> values() const { return tensor.to_vector<float>(); }
};

}  // namespace

TEST(RunInto, WritesTheSameValuesAsRunIntoAlignedAndUnalignedBuffers) {
  Mlp m;
  Executable exe(m.g, {m.probs});
  for (std::int64_t rows : {1, 5}) {
    const Feeds f = m.feeds(rows, 10 + static_cast<std::uint64_t>(rows));
    const Tensor want = exe.run(f)[0];
    for (std::size_t offset : {std::size_t{0}, std::size_t{4}}) {
      Buffer out({rows, 5}, offset);
      Where where;
      exe.run_into(f, std::span<Tensor>(&out.tensor, 1), &where);
      expect_bitwise(out.tensor, want, "rows " + std::to_string(rows));
      ASSERT_FALSE(where.at.empty());
      // Aligned: the softmax step wrote into the caller's buffer; unaligned: into the
      // arena, then copied.
      EXPECT_EQ(where.at.back() == out.tensor.raw(), offset == 0) << "offset " << offset;
    }
  }
}

TEST(RunInto, OutputsThatAreViewsReadLaterOrAskedForTwice) {
  Mlp m;
  // h is read by the next matmul; column is a view of logits; probs twice.
  Executable exe(m.g, {m.h, m.column, m.probs, m.probs, m.logits});
  const Feeds f = m.feeds(3, 21);
  const std::vector<Tensor> want = exe.run(f);
  std::vector<Buffer> bufs;
  for (const auto& w : want) bufs.emplace_back(w.shape(), 0);
  std::vector<Tensor> into;
  for (auto& b : bufs) into.push_back(b.tensor);
  exe.run_into(f, into);
  for (std::size_t i = 0; i < want.size(); ++i)
    expect_bitwise(into[i], want[i], "output " + std::to_string(i));
}

TEST(RunInto, ThePlanStillServesRunAfterwards) {
  Mlp m;
  Executable exe(m.g, {m.h, m.probs});
  const Feeds a = m.feeds(4, 31), b = m.feeds(4, 32);
  const std::vector<Tensor> want_b = exe.run(b);
  std::vector<Buffer> bufs;
  bufs.emplace_back(Shape{4, 16}, 0);
  bufs.emplace_back(Shape{4, 5}, 0);
  std::vector<Tensor> into{bufs[0].tensor, bufs[1].tensor};
  exe.run_into(a, into);
  const std::vector<float> kept = bufs[1].values();
  // run() and run_views() use the plan's own memory again, not the caller's buffers.
  const std::vector<Tensor> again = exe.run(b);
  for (std::size_t i = 0; i < want_b.size(); ++i) expect_bitwise(again[i], want_b[i], "run");
  const auto views = exe.run_views(b);
  EXPECT_NE(views[1].raw(), bufs[1].tensor.raw());
  expect_bitwise(views[1], want_b[1], "run_views");
  EXPECT_EQ(bufs[1].values(), kept);
}

TEST(RunInto, ErrorsNameTheOutputAndLeaveTheBuffersAlone) {
  Mlp m;
  Executable exe(m.g, {m.h, m.probs});
  const Feeds f = m.feeds(2, 41);
  Buffer h({2, 16}, 0), probs({2, 5}, 0), wrong_rows({3, 5}, 0);
  auto expect_untouched = [&] {
    for (float v : h.values()) ASSERT_EQ(v, -7.0f);
    for (float v : probs.values()) ASSERT_EQ(v, -7.0f);
  };
  // run_into with these tensors must throw E with `what` in its message.
  auto expect_error = [&]<class E>(std::vector<Tensor> into, E*, const std::string& what) {
    kiln_test::expect_error<E>([&] { exe.run_into(f, into); }, what);
  };
  expect_error({h.tensor}, static_cast<ValueError*>(nullptr), "1 output tensors for 2 outputs");
  expect_error({h.tensor, wrong_rows.tensor}, static_cast<ShapeError*>(nullptr),
               "output 1 ('probs')");
  expect_error({h.tensor, wrong_rows.tensor}, static_cast<ShapeError*>(nullptr), "[2, 5]");
  expect_error({h.tensor, Tensor::zeros({2, 5}, f64)}, static_cast<DTypeError*>(nullptr), "f64");
  expect_error({h.tensor, Tensor()}, static_cast<ValueError*>(nullptr), "undefined");
  const Tensor strided = Tensor::zeros({5, 2}).permute({1, 0});
  expect_error({h.tensor, strided}, static_cast<ValueError*>(nullptr), "contiguous");
  expect_untouched();
}

TEST(RunInto, AKernelErrorMidRunLeavesThePlanWhole) {
  // table rows gathered by index, then a dense layer: an index out of range fails in the
  // gather kernel, after the caller's buffer was bound.
  Graph g;
  Value idx = g.input("idx", {batch}, i64);
  Value rows = gather(g.parameter("table", seeded({6, 4}, 5)), idx);
  Value out = relu(matmul(rows, g.parameter("w", seeded({4, 3}, 6))), "out");
  Executable exe(g, {out});
  const Feeds good{{"idx", Tensor::from(std::vector<std::int64_t>{0, 5}, {2})}};
  const Feeds bad{{"idx", Tensor::from(std::vector<std::int64_t>{0, 9}, {2})}};
  const Tensor want = exe.run(good)[0];
  Buffer buf({2, 3}, 0);
  std::vector<Tensor> into{buf.tensor};
  EXPECT_THROW(exe.run_into(bad, into), ValueError);
  // The plan's output is its own memory again, not the caller's buffer.
  EXPECT_NE(exe.run_views(good)[0].raw(), buf.tensor.raw());
  expect_bitwise(exe.run(good)[0], want, "run after the failed run_into");
  exe.run_into(good, into);
  expect_bitwise(buf.tensor, want, "run_into after the failed one");
}

TEST(RunInto, ModelRunIntoMatchesRunFromManyThreads) {
  Mlp m;
  SaveOptions opts;
  opts.inputs = {m.x};
  opts.outputs = {m.probs, m.h};
  opts.output_names = {"probs", "hidden"};
  const auto model = infer::Model::load(serialize_model(m.g, opts), "mlp");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::int64_t rows = 1 + t;
      Buffer probs({rows, 5}, 0), hidden({rows, 16}, t % 2 ? 4 : 0);
      std::vector<Tensor> into{probs.tensor, hidden.tensor};
      for (int i = 0; i < 50; ++i) {
        const Feeds f = m.feeds(rows, 100 + static_cast<std::uint64_t>(t * 1000 + i));
        const std::vector<Tensor> want = model.run(f);
        model.run_into(f, into);
        for (std::size_t k = 0; k < 2; ++k)
          if (std::memcmp(into[k].raw(), want[k].raw(), want[k].nbytes()) != 0) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  // Errors name the model's output.
  Buffer wrong({2, 5}, 0), hidden({1, 16}, 0);
  std::vector<Tensor> into{wrong.tensor, hidden.tensor};
  kiln_test::expect_error<ShapeError>([&] { model.run_into(m.feeds(1, 7), into); }, "[1, 5]");
}
