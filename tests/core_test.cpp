// Core types: Tensor, Shape, DType, Rng, threads, the memory planner.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>

#include "kiln/kiln.hpp"
#include "runtime/memory_plan.hpp"

// Under AddressSanitizer a failed allocation returns NULL, as malloc does, instead of
// stopping the program: the tests check that Kiln reports it as an error.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace kiln {
namespace {

TEST(Shape, StaticDynamicAndText) {
  Shape s{batch, 64};
  EXPECT_FALSE(s.is_static());
  EXPECT_EQ(s.str(), "[batch, 64]");
  EXPECT_THROW(s.numel(), ShapeError);
  Shape t{2, 3, 4};
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.contiguous_strides(), (std::vector<std::int64_t>{12, 4, 1}));
  EXPECT_EQ(Shape{}.numel(), 1);
}

TEST(Tensor, AlignedStorageAndCreation) {
  for (int n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::zeros({n});
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw()) % 64, 0u);
    for (int i = 0; i < n; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  }
  Tensor f = Tensor::full({2, 2}, 2.5, i64);
  EXPECT_EQ(f.dtype(), i64);
  EXPECT_EQ(f.data<std::int64_t>()[3], 2);
  EXPECT_EQ(Tensor::scalar(4.0).item(), 4.0);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, SizesThatCannotBeAllocatedAreTypedErrors) {
  constexpr std::int64_t big = std::int64_t(1) << 40;
  // 2^60 f32 elements fit in size_t, but no machine has the memory.
  try {
    (void)Tensor::empty({big, std::int64_t(1) << 20}, f32);
    ADD_FAILURE() << "a 4 EiB tensor was allocated";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("[1099511627776, 1048576]"), std::string::npos)
        << e.what();
  }
  // 2^62 f64 elements: the byte count itself overflows.
  EXPECT_THROW((void)Tensor::zeros({big, std::int64_t(1) << 22}, f64), OutOfMemoryError);
  // No element, but strides beyond 64 bits.
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  EXPECT_THROW((void)Shape({0, max, max}).contiguous_strides(), ShapeError);
  EXPECT_THROW((void)Tensor::empty({0, max, max}, f32), ShapeError);
  EXPECT_EQ(Tensor::empty({0, max}, f32).numel(), 0);
}

TEST(Tensor, FromCopiesTheUserBuffer) {
  std::vector<float> user{1, 2, 3, 4, 5, 6};
  Tensor t = Tensor::from(user, {2, 3});
  user[0] = 100;  // the tensor keeps its own copy
  EXPECT_EQ(t.data<float>()[0], 1.0f);
  EXPECT_THROW(Tensor::from(user, {4, 2}), ShapeError);
  std::vector<float> out(6);
  t.copy_to(std::span<float>(out));
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  std::vector<float> too_small(5);
  EXPECT_THROW(t.copy_to(std::span<float>(too_small)), ShapeError);
  std::vector<std::int32_t> wrong_type(6);
  EXPECT_THROW(t.copy_to(std::span<std::int32_t>(wrong_type)), DTypeError);
  EXPECT_THROW(t.data<double>(), DTypeError);
}

TEST(Tensor, SharingCloneAndViews) {
  Tensor a = Tensor::from({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3});
  Tensor shared = a;
  Tensor copy = a.clone();
  a.data<float>()[1] = 20;
  EXPECT_EQ(shared.data<float>()[1], 20.0f);
  EXPECT_EQ(copy.data<float>()[1], 2.0f);
  Tensor t = a.permute({1, 0});
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 4, 20, 5, 3, 6}));
  EXPECT_TRUE(t.contiguous().is_contiguous());
  EXPECT_EQ(a.reshape({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_THROW(a.reshape({4, 2}), ShapeError);
  Tensor r = a.rows(1, 2);
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{4, 5, 6}));
  EXPECT_THROW(a.rows(1, 3), ShapeError);
  Tensor d = a.to(f64);
  EXPECT_EQ(d.data<double>()[1], 20.0);
}

TEST(Rng, ReproducibleAndWellSpread) {
  Rng a(123), b(123), c(124);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Rng(123).next_u64(), c.next_u64());
  Rng r(5);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    sum += x;
    sq += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.02);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) ++counts[r.below(7)];
  for (int k : counts) EXPECT_NEAR(k, 10000, 400);
  const auto saved = r.state();
  const auto next = r.next_u64();
  r.set_state(saved);
  EXPECT_EQ(r.next_u64(), next);
  EXPECT_EQ(hash_bits(1, 2), hash_bits(1, 2));
  EXPECT_NE(hash_bits(1, 2), hash_bits(1, 3));
}

TEST(Threads, SetAndGet) {
  const int before = num_threads();
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
  EXPECT_THROW(set_num_threads(0), ValueError);
  set_num_threads(before);
}

TEST(MemoryPlan, OverlappingLifetimesNeverShareBytes) {
  Rng rng(9);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<internal::Lifetime> v;
    for (int i = 0; i < 40; ++i) {
      const auto first = static_cast<std::int64_t>(rng.below(30));
      v.push_back({first, first + static_cast<std::int64_t>(rng.below(8)),
                   static_cast<std::size_t>(1 + rng.below(5000))});
    }
    const auto plan = internal::plan_memory(v);
    std::size_t total = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      total += v[i].bytes;
      EXPECT_EQ(plan.offsets[i] % 64, 0u);
      EXPECT_LE(plan.offsets[i] + v[i].bytes, plan.arena_bytes);
      for (std::size_t j = 0; j < i; ++j) {
        const bool live_together = v[i].first <= v[j].last && v[j].first <= v[i].last;
        const bool overlap = plan.offsets[i] < plan.offsets[j] + v[j].bytes &&
                             plan.offsets[j] < plan.offsets[i] + v[i].bytes;
        EXPECT_FALSE(live_together && overlap) << i << " and " << j;
      }
    }
    EXPECT_LT(plan.arena_bytes, total + 64 * v.size());  // reuse happened or at worst no waste
  }
}

TEST(MemoryPlan, ChainReusesMemory) {
  // a -> b -> c -> d, each read only by the next: two blocks suffice.
  std::vector<internal::Lifetime> v{{0, 1, 1024}, {1, 2, 1024}, {2, 3, 1024}, {3, 3, 1024}};
  EXPECT_EQ(internal::plan_memory(v).arena_bytes, 2048u);
}

}  // namespace
}  // namespace kiln
