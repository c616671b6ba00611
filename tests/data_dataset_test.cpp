// Dataset and split: validation, gather/subset/rows/select, seeded and stratified splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "kiln/data/dataset.hpp"

namespace kiln::data {
namespace {

// x[i] = [i, 10 i] (f32), y[i] = class of row i.
Dataset make_dataset(std::int64_t n, const std::vector<std::int32_t>& y) {
  std::vector<float> x;
  for (std::int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(static_cast<float>(10 * i));
  }
  return Dataset({{"features", Tensor::from(x, {n, 2})}, {"target", Tensor::from(y, {n})}},
                 {.source = "mem.csv"});
}

Dataset counted(std::int64_t n) {
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    y[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 3);
  return make_dataset(n, y);
}

template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception";
  return {};
}

TEST(DatasetTest, RejectsBadTensors) {
  EXPECT_THROW(Dataset(Batch{}), ValueError);
  EXPECT_THROW(Dataset({{"", Tensor::zeros({2})}}), ValueError);
  EXPECT_THROW(Dataset({{"a", Tensor()}}), ValueError);
  EXPECT_THROW(Dataset({{"a", Tensor::scalar(1)}}), ValueError);
  EXPECT_THROW(Dataset({{"a", Tensor::zeros({2})}, {"a", Tensor::zeros({2})}}), ValueError);
  const std::string msg = message_of<ValueError>([] {
    Dataset({{"a", Tensor::zeros({2})}, {"b", Tensor::zeros({3, 4})}});
  });
  EXPECT_NE(msg.find("'b' has 3 rows"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'a' has 2"), std::string::npos) << msg;
}

TEST(DatasetTest, LookupNamesTheTensorsThereAre) {
  const Dataset d = counted(4);
  EXPECT_EQ(d.size(), 4);
  EXPECT_TRUE(d.contains("target"));
  EXPECT_FALSE(d.contains("label"));
  const std::string msg = message_of<NameError>([&] { (void)d["label"]; });
  EXPECT_NE(msg.find("'label'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'features', 'target'"), std::string::npos) << msg;
}

TEST(DatasetTest, GatherCopiesRowsInOrder) {
  const Dataset d = counted(6);
  const std::vector<std::int64_t> rows{5, 0, 5, 2};
  const Batch b = d.gather(rows);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].first, "features");
  EXPECT_EQ(b[0].second.shape(), Shape({4, 2}));
  EXPECT_EQ(b[0].second.to_vector<float>(), (std::vector<float>{5, 50, 0, 0, 5, 50, 2, 20}));
  EXPECT_EQ(b[1].second.to_vector<std::int32_t>(), (std::vector<std::int32_t>{2, 0, 2, 2}));
  // A copy: writing the batch leaves the dataset alone.
  Tensor f = b[0].second;
  f.data<float>()[0] = -1;
  EXPECT_EQ(d["features"].to_vector<float>()[10], 5.0f);
  const std::vector<std::int64_t> bad{0, 6};
  EXPECT_THROW(d.gather(bad), ValueError);
  const std::vector<std::int64_t> negative{-1};
  EXPECT_THROW(d.gather(negative), ValueError);
}

TEST(DatasetTest, RowsSelectAndSubset) {
  const Dataset d = counted(6);
  const Dataset r = d.rows(2, 5);
  EXPECT_EQ(r.size(), 3);
  EXPECT_EQ(r["features"].to_vector<float>(), (std::vector<float>{2, 20, 3, 30, 4, 40}));
  EXPECT_EQ(r["features"].raw(), static_cast<const float*>(d["features"].raw()) + 4);  // a view
  EXPECT_EQ(r.info().source, "mem.csv");
  EXPECT_THROW(d.rows(4, 7), ValueError);
  const Dataset s = d.select({"features"});
  EXPECT_EQ(s.tensors().size(), 1u);
  EXPECT_EQ(s.info().target, "");
  EXPECT_THROW(d.select({"nope"}), NameError);
  const std::vector<std::int64_t> rows{1, 3};
  const Dataset sub = d.subset(rows);
  EXPECT_EQ(sub["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{1, 0}));
}

TEST(SplitTest, SizesDisjointAndDeterministic) {
  const Dataset d = counted(103);
  const auto [train, test] = split(d, {.test_fraction = 0.2, .seed = 9});
  EXPECT_EQ(test.size(), 21);  // round(20.6)
  EXPECT_EQ(train.size(), 82);
  std::set<float> seen;
  for (const Dataset* part : {&train, &test}) {
    const auto x = (*part)["features"].to_vector<float>();
    const auto y = (*part)["target"].to_vector<std::int32_t>();
    for (std::int64_t i = 0; i < part->size(); ++i) {
      const float id = x[static_cast<std::size_t>(2 * i)];
      EXPECT_EQ(x[static_cast<std::size_t>(2 * i + 1)], 10 * id);  // rows stay whole
      EXPECT_EQ(y[static_cast<std::size_t>(i)], static_cast<std::int32_t>(id) % 3);
      EXPECT_TRUE(seen.insert(id).second);
    }
  }
  EXPECT_EQ(seen.size(), 103u);
  const auto again = split(d, {.test_fraction = 0.2, .seed = 9});
  EXPECT_EQ(again.second["features"].to_vector<float>(), test["features"].to_vector<float>());
  const auto other = split(d, {.test_fraction = 0.2, .seed = 10});
  EXPECT_NE(other.second["features"].to_vector<float>(), test["features"].to_vector<float>());
}

TEST(SplitTest, StratifiedKeepsClassShares) {
  // 60 of class 0, 30 of class 1, 10 of class 2.
  std::vector<std::int32_t> y;
  for (int i = 0; i < 100; ++i) y.push_back(i < 60 ? 0 : (i < 90 ? 1 : 2));
  const Dataset d = make_dataset(100, y);
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const auto [train, test] = split(d, {.test_fraction = 0.3, .seed = seed, .stratify = true});
    std::map<std::int32_t, int> counts;
    for (std::int32_t c : test["target"].to_vector<std::int32_t>()) ++counts[c];
    EXPECT_EQ(counts[0], 18);
    EXPECT_EQ(counts[1], 9);
    EXPECT_EQ(counts[2], 3);
    EXPECT_EQ(train.size(), 70);
  }
  // Uneven shares: the total still matches round(fraction * n).
  const auto [train, test] = split(d, {.test_fraction = 0.25, .seed = 4, .stratify = true});
  EXPECT_EQ(test.size(), 25);
  std::map<std::int32_t, int> counts;
  for (std::int32_t c : test["target"].to_vector<std::int32_t>()) ++counts[c];
  EXPECT_EQ(counts[0], 15);
  EXPECT_GE(counts[1], 7);
  EXPECT_LE(counts[1], 8);
  EXPECT_GE(counts[2], 2);
  EXPECT_LE(counts[2], 3);
}

TEST(SplitTest, BadArguments) {
  const Dataset d = counted(10);
  EXPECT_THROW(split(d, {.test_fraction = 0.0}), ValueError);
  EXPECT_THROW(split(d, {.test_fraction = 1.0}), ValueError);
  EXPECT_THROW(split(d, {.test_fraction = 0.01}), ValueError);  // an empty test part
  const Dataset one_class = make_dataset(10, std::vector<std::int32_t>(10, 4));
  const std::string msg =
      message_of<DataError>([&] { split(one_class, {.test_fraction = 0.5, .stratify = true}); });
  EXPECT_NE(msg.find("one class"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'target'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mem.csv"), std::string::npos) << msg;
  Dataset float_target({{"features", Tensor::zeros({4, 1})}, {"target", Tensor::zeros({4})}});
  EXPECT_THROW(split(float_target, {.test_fraction = 0.5, .stratify = true}), DTypeError);
}

}  // namespace
}  // namespace kiln::data
