// Loader sharding (LoaderOptions::shard_index/shard_count), the distributed sampler:
// disjoint shards whose union is the epoch's order, equal sizes by padding with the
// order's first rows, a new shuffle every epoch, and the k-th batches of all shards
// making up the k-th batch of batch_size * shard_count unsharded.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/data/loader.hpp"

namespace kiln::data {
namespace {

// Row i holds x = i and y = i, so a batch says which rows it has.
Dataset numbered(std::int64_t n) {
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (std::int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    y.push_back(static_cast<std::int32_t>(i));
  }
  return Dataset({{"x", Tensor::from(x, {n, 1})}, {"y", Tensor::from(y, {n})}});
}

std::vector<std::vector<std::int64_t>> pass(Loader& loader) {
  std::vector<std::vector<std::int64_t>> out;
  for (const Batch& b : loader) {
    const auto x = b[0].second.to_vector<float>();
    const auto y = b[1].second.to_vector<std::int32_t>();
    std::vector<std::int64_t> rows;
    for (std::size_t i = 0; i < y.size(); ++i) {
      EXPECT_EQ(x[i], static_cast<float>(y[i]));
      rows.push_back(y[i]);
    }
    out.push_back(rows);
  }
  return out;
}

std::vector<std::int64_t> flat(const std::vector<std::vector<std::int64_t>>& batches) {
  std::vector<std::int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(LoaderShard, TwoShardsWithoutShuffleTakeAlternateRows) {
  const Dataset d = numbered(7);
  Loader a(d, {.batch_size = 2, .shard_index = 0, .shard_count = 2});
  Loader b(d, {.batch_size = 2, .shard_index = 1, .shard_count = 2});
  // 7 rows padded to 8 with row 0 again: shard 0 = 0 2 4 6, shard 1 = 1 3 5 0.
  EXPECT_EQ(a.order(0), (std::vector<std::int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(b.order(0), (std::vector<std::int64_t>{1, 3, 5, 0}));
  EXPECT_EQ(a.batches(), 2);
  EXPECT_EQ(pass(a), (std::vector<std::vector<std::int64_t>>{{0, 2}, {4, 6}}));
  EXPECT_EQ(pass(b), (std::vector<std::vector<std::int64_t>>{{1, 3}, {5, 0}}));
}

TEST(LoaderShard, ShardsAreDisjointEqualAndCoverTheOrder) {
  for (const std::int64_t n : {12, 13, 14, 2}) {
    for (const std::int64_t count : {1, 2, 3, 4, 5}) {
      const Dataset d = numbered(n);
      Loader whole(d, {.batch_size = 3, .shuffle = true, .seed = 11});
      const std::vector<std::int64_t> order = whole.order(4);
      const std::int64_t per_shard = (n + count - 1) / count;
      const std::int64_t padding = per_shard * count - n;
      std::multiset<std::int64_t> all;
      for (std::int64_t i = 0; i < count; ++i) {
        Loader shard(d, {.batch_size = 3,
                         .shuffle = true,
                         .seed = 11,
                         .prefetch = (i % 2) == 0,
                         .shard_index = i,
                         .shard_count = count});
        shard.set_epoch(4);
        const auto rows = flat(pass(shard));
        EXPECT_EQ(static_cast<std::int64_t>(rows.size()), per_shard) << n << " " << count;
        EXPECT_EQ(rows, shard.order(4));
        all.insert(rows.begin(), rows.end());
      }
      // Every row once, plus the first `padding` rows of the order once more.
      std::multiset<std::int64_t> expected(order.begin(), order.end());
      for (std::int64_t j = 0; j < padding; ++j)
        expected.insert(order[static_cast<std::size_t>(j % n)]);
      EXPECT_EQ(all, expected) << n << " rows, " << count << " shards";
    }
  }
}

TEST(LoaderShard, KthBatchesOfAllShardsAreTheKthBatchOfTheWholeOrder) {
  const std::int64_t n = 40, count = 4, b = 3;
  const Dataset d = numbered(n);
  Loader whole(d, {.batch_size = b * count, .shuffle = true, .seed = 5});
  whole.set_epoch(2);
  const auto big = pass(whole);
  std::vector<std::vector<std::vector<std::int64_t>>> shards;
  for (std::int64_t i = 0; i < count; ++i) {
    Loader s(d,
             {.batch_size = b, .shuffle = true, .seed = 5, .shard_index = i, .shard_count = count});
    s.set_epoch(2);
    EXPECT_EQ(s.batches(), whole.batches());
    shards.push_back(pass(s));
  }
  ASSERT_EQ(big.size(), 4u);  // 40 rows in batches of 12: 12, 12, 12, 4
  for (std::size_t k = 0; k < big.size(); ++k) {
    std::vector<std::int64_t> together;
    for (const auto& s : shards) together.insert(together.end(), s[k].begin(), s[k].end());
    std::vector<std::int64_t> expected = big[k];
    std::sort(together.begin(), together.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(together, expected) << "batch " << k;
  }
}

TEST(LoaderShard, ReshufflesEveryEpochAndDropLastCountsPerShard) {
  const Dataset d = numbered(50);
  Loader s(d, {.batch_size = 4,
               .shuffle = true,
               .seed = 9,
               .drop_last = true,
               .shard_index = 1,
               .shard_count = 3});
  // 50 rows -> 17 per shard -> 4 full batches of 4.
  EXPECT_EQ(s.batches(), 4);
  EXPECT_EQ(static_cast<std::int64_t>(flat(pass(s)).size()), 16);
  EXPECT_NE(s.order(0), s.order(1));
  // The shard of each epoch is its positions of that epoch's whole order.
  Loader whole(d, {.batch_size = 4, .shuffle = true, .seed = 9});
  for (std::int64_t e : {0, 1, 7}) {
    const auto o = whole.order(e);
    const auto mine = s.order(e);
    ASSERT_EQ(mine.size(), 17u);
    for (std::size_t k = 0; k < mine.size(); ++k)
      EXPECT_EQ(mine[k], o[(1 + 3 * k) % 50]) << "epoch " << e << " position " << k;
  }
  // Resuming inside an epoch sees the same rows.
  s.set_epoch(1);
  const auto full = pass(s);
  s.set_epoch(1, 2);
  const auto tail = pass(s);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0], full[2]);
  EXPECT_EQ(tail[1], full[3]);
}

TEST(LoaderShard, RejectsBadShards) {
  const Dataset d = numbered(5);
  EXPECT_THROW(Loader(d, {.shard_index = 0, .shard_count = 0}), ValueError);
  EXPECT_THROW(Loader(d, {.shard_index = 2, .shard_count = 2}), ValueError);
  EXPECT_THROW(Loader(d, {.shard_index = -1, .shard_count = 2}), ValueError);
  try {
    Loader(d, {.shard_index = 3, .shard_count = 2});
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("shard_index 3 outside [0, 2)"), std::string::npos)
        << e.what();
  }
}

TEST(LoaderShard, MoreShardsThanRowsStillGiveEveryShardRows) {
  const Dataset d = numbered(2);
  for (std::int64_t i = 0; i < 5; ++i) {
    Loader s(d, {.batch_size = 1, .shard_index = i, .shard_count = 5});
    EXPECT_EQ(s.order(0), (std::vector<std::int64_t>{i % 2}));
  }
}

}  // namespace
}  // namespace kiln::data
