// Loader: per-epoch seeded order, batch sizes, drop_last, resume with set_epoch, prefetch on
// and off giving the same batches, errors of background batches rethrown by next().
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "kiln/data/loader.hpp"

namespace kiln::data {
namespace {

// Row i holds [i, -i] and target i, so a batch says which rows it has.
Dataset numbered(std::int64_t n) {
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (std::int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(-static_cast<float>(i));
    y.push_back(static_cast<std::int32_t>(i));
  }
  return Dataset({{"x", Tensor::from(x, {n, 2})}, {"y", Tensor::from(y, {n})}});
}

std::vector<std::int32_t> rows_of(const Batch& b) {
  const auto x = b[0].second.to_vector<float>();
  const auto y = b[1].second.to_vector<std::int32_t>();
  for (std::size_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(x[2 * i], static_cast<float>(y[i]));
    EXPECT_EQ(x[2 * i + 1], -static_cast<float>(y[i]));
  }
  return y;
}

std::vector<std::vector<std::int32_t>> pass(Loader& loader) {
  std::vector<std::vector<std::int32_t>> out;
  for (const Batch& b : loader) out.push_back(rows_of(b));
  return out;
}

TEST(LoaderTest, SequentialBatches) {
  const Dataset d = numbered(10);
  Loader loader(d, {.batch_size = 4});
  EXPECT_EQ(loader.batches(), 3);
  const auto batches = pass(loader);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(batches[1], (std::vector<std::int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(batches[2], (std::vector<std::int32_t>{8, 9}));
  // The next pass starts again at the first batch.
  EXPECT_EQ(pass(loader), batches);
}

TEST(LoaderTest, DropLast) {
  const Dataset d = numbered(10);
  Loader loader(d, {.batch_size = 4, .shuffle = true, .seed = 3, .drop_last = true});
  EXPECT_EQ(loader.batches(), 2);
  const auto batches = pass(loader);
  ASSERT_EQ(batches.size(), 2u);
  for (const auto& b : batches) EXPECT_EQ(b.size(), 4u);
  Loader exact(d, {.batch_size = 5, .drop_last = true});
  EXPECT_EQ(exact.batches(), 2);
  Loader too_big(d, {.batch_size = 11, .drop_last = true});
  EXPECT_EQ(too_big.batches(), 0);
  EXPECT_FALSE(too_big.next().has_value());
}

TEST(LoaderTest, ShuffleIsAPermutationPerEpochFromSeedAndEpochOnly) {
  const Dataset d = numbered(50);
  Loader a(d, {.batch_size = 7, .shuffle = true, .seed = 11});
  Loader b(d, {.batch_size = 7, .shuffle = true, .seed = 11});
  Loader c(d, {.batch_size = 7, .shuffle = true, .seed = 12});
  std::vector<std::int64_t> sorted(50);
  std::iota(sorted.begin(), sorted.end(), 0);
  for (std::int64_t e = 0; e < 3; ++e) {
    auto order = a.order(e);
    EXPECT_NE(order, sorted);
    EXPECT_NE(order, c.order(e));
    EXPECT_NE(order, a.order(e + 1));
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, sorted);
  }
  // Epoch 2 seen directly equals epoch 2 after epochs 0 and 1.
  for (std::int64_t e = 0; e < 3; ++e) {
    a.set_epoch(e);
    pass(a);
  }
  b.set_epoch(2);
  a.set_epoch(2);
  const auto direct = pass(b);
  EXPECT_EQ(pass(a), direct);
  std::vector<std::int32_t> flat;
  for (const auto& batch : direct) flat.insert(flat.end(), batch.begin(), batch.end());
  const auto order = a.order(2);
  EXPECT_EQ(std::vector<std::int64_t>(flat.begin(), flat.end()), order);
}

TEST(LoaderTest, ResumeInsideAnEpochEqualsTheTailOfAFullPass) {
  const Dataset d = numbered(37);
  for (bool prefetch : {false, true}) {
    Loader full(d, {.batch_size = 5, .shuffle = true, .seed = 5, .prefetch = prefetch});
    full.set_epoch(4);
    const auto all = pass(full);
    ASSERT_EQ(all.size(), 8u);
    for (std::int64_t k : {0, 3, 7, 8}) {
      Loader resumed(d, {.batch_size = 5, .shuffle = true, .seed = 5, .prefetch = prefetch});
      resumed.set_epoch(4, k);
      const auto tail = pass(resumed);
      EXPECT_EQ(tail, std::vector<std::vector<std::int32_t>>(all.begin() + k, all.end()));
      // Then a whole pass of the same epoch.
      EXPECT_EQ(pass(resumed), all);
    }
  }
  Loader loader(d, {.batch_size = 5});
  EXPECT_THROW(loader.set_epoch(0, 9), ValueError);
  EXPECT_THROW(loader.set_epoch(-1), ValueError);
}

TEST(LoaderTest, PrefetchOnAndOffGiveTheSameBatches) {
  const Dataset d = numbered(203);
  Loader on(d, {.batch_size = 16, .shuffle = true, .seed = 1, .prefetch = true});
  Loader off(d, {.batch_size = 16, .shuffle = true, .seed = 1, .prefetch = false});
  for (std::int64_t e = 0; e < 4; ++e) {
    on.set_epoch(e);
    off.set_epoch(e);
    EXPECT_EQ(pass(on), pass(off));
  }
}

TEST(LoaderTest, ResetAndSetEpochMidPassDiscardThePrefetchedBatch) {
  const Dataset d = numbered(40);
  Loader loader(d, {.batch_size = 8, .shuffle = true, .seed = 2});
  Loader reference(d, {.batch_size = 8, .shuffle = true, .seed = 2, .prefetch = false});
  const auto epoch0 = pass(reference);
  reference.set_epoch(1);
  const auto epoch1 = pass(reference);
  ASSERT_EQ(rows_of(*loader.next()), epoch0[0]);
  ASSERT_EQ(rows_of(*loader.next()), epoch0[1]);
  loader.reset();  // batch 2 was being prefetched
  EXPECT_EQ(rows_of(*loader.next()), epoch0[0]);
  loader.set_epoch(1, 3);
  EXPECT_EQ(rows_of(*loader.next()), epoch1[3]);
  EXPECT_EQ(rows_of(*loader.next()), epoch1[4]);
  EXPECT_FALSE(loader.next().has_value());
  EXPECT_EQ(loader.epoch(), 1);
}

TEST(LoaderTest, TransformSeesEpochAndIndexAndNeverRunsTwiceAtOnce) {
  const Dataset d = numbered(20);
  std::mutex mutex;
  std::set<std::pair<std::int64_t, std::int64_t>> calls;
  std::atomic<int> active{0};
  std::atomic<bool> overlapped{false};
  Loader loader(
      d, {.batch_size = 6, .transform = [&](Batch& b, std::int64_t epoch, std::int64_t index) {
            if (++active > 1) overlapped = true;
            {
              std::lock_guard lock(mutex);
              calls.emplace(epoch, index);
            }
            b.emplace_back(
                "tag", Tensor::full({b[0].second.dim(0)}, static_cast<double>(100 * epoch + index),
                                    DType::i32));
            --active;
          }});
  for (int round = 0; round < 20; ++round) {
    loader.set_epoch(3);
    std::int64_t index = 0;
    for (const Batch& b : loader) {
      ASSERT_EQ(b.size(), 3u);
      EXPECT_EQ(b[2].second.at(0), 300 + index);
      ++index;
    }
    EXPECT_EQ(index, 4);
  }
  EXPECT_FALSE(overlapped.load());
  std::lock_guard lock(mutex);
  for (std::int64_t i = 0; i < 4; ++i) EXPECT_TRUE(calls.count({3, i}));
  // Beyond those, at most the first batch of epoch 4, assembled ahead.
  calls.erase({4, 0});
  EXPECT_EQ(calls.size(), 4u);
}

TEST(LoaderTest, TheNextEpochsFirstBatchIsAssembledAhead) {
  const Dataset d = numbered(30);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> ahead{0};  // (1, 0) assembled by the background thread
  std::atomic<int> total{0};  // (1, 0) assembled anywhere
  Loader loader(d, {.batch_size = 10,
                    .shuffle = true,
                    .seed = 4,
                    .transform = [&](Batch&, std::int64_t epoch, std::int64_t index) {
                      if (epoch == 1 && index == 0) {
                        ++total;
                        if (std::this_thread::get_id() != caller) ++ahead;
                      }
                    }});
  Loader reference(d, {.batch_size = 10, .shuffle = true, .seed = 4, .prefetch = false});
  reference.set_epoch(1);
  const auto epoch1 = pass(reference);
  pass(loader);  // epoch 0; taking its last batch posts epoch 1's first
  for (int i = 0; i < 500 && ahead.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(ahead.load(), 1);
  loader.set_epoch(1);
  EXPECT_EQ(pass(loader), epoch1);
  EXPECT_EQ(total.load(), 1);  // the batch made ahead was the one handed out
}

TEST(LoaderTest, ErrorOfABackgroundBatchIsRethrownByNext) {
  const Dataset d = numbered(20);
  for (bool prefetch : {true, false}) {
    Loader loader(d, {.batch_size = 5,
                      .prefetch = prefetch,
                      .transform = [](Batch&, std::int64_t, std::int64_t index) {
                        if (index == 2) throw DataError("batch 2 is bad");
                      }});
    EXPECT_TRUE(loader.next().has_value());
    EXPECT_TRUE(loader.next().has_value());  // batch 2 is now assembled in the background
    try {
      loader.next();
      ADD_FAILURE() << "no exception";
    } catch (const DataError& e) {
      EXPECT_STREQ(e.what(), "batch 2 is bad");
    }
    // The failed batch is not skipped: trying again fails again.
    EXPECT_THROW(loader.next(), DataError);
    loader.set_epoch(0, 3);
    EXPECT_EQ(rows_of(*loader.next()), (std::vector<std::int32_t>{15, 16, 17, 18, 19}));
  }
}

TEST(LoaderTest, DestroyedMidPassWhilePrefetching) {
  const Dataset d = numbered(1000);
  for (int i = 0; i < 20; ++i) {
    Loader loader(d, {.batch_size = 100, .shuffle = true, .seed = static_cast<std::uint64_t>(i)});
    ASSERT_TRUE(loader.next().has_value());
  }
}

TEST(LoaderTest, BadBatchSize) {
  const Dataset d = numbered(3);
  EXPECT_THROW(Loader(d, {.batch_size = 0}), ValueError);
}

}  // namespace
}  // namespace kiln::data
