// DataParallel over the in-process thread communicator: p ranks with B/p rows each train
// the same weights as one process with B rows (the acceptance's equivalence, without
// MPI), whatever the buckets and overlap; rows-weighted gradients for unequal batches;
// a failing rank makes every rank throw; broadcast and checksums catch models that differ;
// batch norm's buffers are averaged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/data/loader.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/dist/data_parallel.hpp"
#include "kiln/kiln.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"
#include "support/thread_communicator.hpp"

namespace kiln {
namespace {

using dist::Communicator;
using dist::DataParallel;
using dist::DataParallelOptions;
using Weights = std::vector<std::vector<float>>;

// 96 rows of 8 features in 4 classes (the class shifts the mean), seeded.
data::Dataset blobs(std::int64_t n = 96, std::uint64_t seed = 17) {
  Rng rng(seed);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::int32_t>(i % 4);
    for (int j = 0; j < 8; ++j)
      x.push_back(static_cast<float>(rng.normal(j % 4 == c ? 1.5 : 0.0, 1.0)));
    y.push_back(c);
  }
  return data::Dataset({{"x", Tensor::from(x, {n, 8})}, {"y", Tensor::from(y, {n})}});
}

// 8 -> 16 tanh -> 12 relu -> 4, mean cross-entropy; the same initial weights everywhere.
Value mlp(Graph& g, std::int64_t hidden = 12) {
  auto x = g.input("x", {batch, 8});
  auto y = g.input("y", {batch}, i32);
  auto h = nn::dense(g, x, 16, {.activation = nn::Activation::tanh, .name = "fc1"});
  h = nn::dense(g, h, hidden, {.activation = nn::Activation::relu, .name = "fc2"});
  auto logits = nn::dense(g, h, 4, {.name = "out"});
  return softmax_cross_entropy(logits, y);
}

Weights weights_of(TrainStep& step) {
  Weights w;
  for (const Tensor& t : step.parameters()) w.push_back(t.to_vector<float>());
  return w;
}

// max |a - b| / max |b| over one parameter.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / scale;
}

enum class Optimizer { sgd_momentum, adam };

std::unique_ptr<optim::Optimizer> make_optimizer(TrainStep& step, Optimizer which) {
  if (which == Optimizer::adam)
    return std::make_unique<optim::Adam>(step.named_parameters(), optim::AdamOptions{.lr = 0.01});
  return std::make_unique<optim::SGD>(step.named_parameters(),
                                      optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
}

constexpr int steps = 100;
constexpr std::int64_t global_batch = 24;

// One process, batch B, 100 steps over the shuffled epochs.
Weights train_alone(Optimizer which) {
  const data::Dataset d = blobs();
  Graph g;
  TrainStep step(mlp(g));
  auto opt = make_optimizer(step, which);
  data::Loader loader(d, {.batch_size = global_batch, .shuffle = true, .seed = 3});
  int done = 0;
  for (std::int64_t epoch = 0; done < steps; ++epoch) {
    loader.set_epoch(epoch);
    for (const data::Batch& b : loader) {
      if (done++ == steps) break;
      step.run(b);
      opt->step(step.gradients());
    }
  }
  return weights_of(step);
}

// p ranks, batch B/p each, 100 steps; every rank's final weights.
// With reduce = false each rank steps on its own gradient (no DataParallel): the control
// that shows the tolerance tells averaging from not averaging.
std::vector<Weights> train_parallel(int ranks, Optimizer which, DataParallelOptions options,
                                    kiln_test::ThreadGroupOptions group = {}, bool reduce = true) {
  const data::Dataset d = blobs();
  std::vector<Weights> out(static_cast<std::size_t>(ranks));
  kiln_test::run_ranks(
      ranks,
      [&](Communicator& comm) {
        Graph g;
        TrainStep step(mlp(g));
        if (comm.rank() != 0)  // a different start everywhere but rank 0: broadcast fixes it
          for (Tensor t : step.parameters()) t.data<float>()[0] += 0.5f;
        auto opt = make_optimizer(step, which);
        DataParallel dp(step, comm, options);
        dp.broadcast_parameters();
        data::Loader loader(d, {.batch_size = global_batch / ranks,
                                .shuffle = true,
                                .seed = 3,
                                .shard_index = comm.rank(),
                                .shard_count = comm.size()});
        int done = 0;
        for (std::int64_t epoch = 0; done < steps; ++epoch) {
          loader.set_epoch(epoch);
          for (const data::Batch& b : loader) {
            if (done++ == steps) break;
            if (!reduce) {
              step.run(b);
              opt->step(step.gradients());
              continue;
            }
            const double loss = dp.run(b);
            EXPECT_TRUE(std::isfinite(loss));
            EXPECT_EQ(dp.global_rows(), global_batch);
            opt->step(dp.gradients());
          }
        }
        EXPECT_EQ(dp.stats().runs, reduce ? steps : 0);
        out[static_cast<std::size_t>(comm.rank())] = weights_of(step);
      },
      group);
  return out;
}

void expect_close(const Weights& parallel, const Weights& alone, const std::string& what) {
  ASSERT_EQ(parallel.size(), alone.size());
  for (std::size_t i = 0; i < alone.size(); ++i) {
    const double rel = relative_difference(parallel[i], alone[i]);
    std::printf("%s parameter %zu: max |a-b| / max |b| = %.3g\n", what.c_str(), i, rel);
    EXPECT_LT(rel, 1e-5) << what << ", parameter " << i;
  }
}

TEST(DataParallel, TwoRanksOfHalfTheBatchTrainWhatOneProcessTrains) {
  for (const Optimizer which : {Optimizer::sgd_momentum, Optimizer::adam}) {
    const Weights alone = train_alone(which);
    const auto parallel = train_parallel(2, which, {});
    EXPECT_EQ(parallel[0], parallel[1]) << "the ranks' weights differ";
    expect_close(parallel[0], alone, which == Optimizer::adam ? "adam" : "sgd");
    // Trained: far from the initial weights.
    Graph g;
    TrainStep start(mlp(g));
    EXPECT_GT(relative_difference(weights_of(start)[0], alone[0]), 0.05);
  }
}

TEST(DataParallel, WithoutAveragingTheRanksDivergeBeyondTheTolerance) {
  const Weights alone = train_alone(Optimizer::sgd_momentum);
  const auto local = train_parallel(2, Optimizer::sgd_momentum, {}, {}, false);
  double worst = 0;
  for (std::size_t i = 0; i < alone.size(); ++i)
    worst = std::max(worst, relative_difference(local[0][i], alone[i]));
  EXPECT_GT(worst, 1e-3);
  EXPECT_NE(local[0], local[1]);
}

TEST(DataParallel, ThreeRanks) {
  const Weights alone = train_alone(Optimizer::sgd_momentum);
  const auto parallel = train_parallel(3, Optimizer::sgd_momentum, {});
  EXPECT_EQ(parallel[0], parallel[1]);
  EXPECT_EQ(parallel[0], parallel[2]);
  expect_close(parallel[0], alone, "3 ranks");
}

TEST(DataParallel, BucketSizeAndOverlapDoNotChangeTheBits) {
  const auto reference = train_parallel(2, Optimizer::adam, {});
  const auto small = train_parallel(2, Optimizer::adam, {.bucket_bytes = 64});
  const auto no_overlap =
      train_parallel(2, Optimizer::adam, {.bucket_bytes = 200, .overlap = false});
  const auto blocking =
      train_parallel(2, Optimizer::adam, {.bucket_bytes = 64}, {.deferred_requests = false});
  EXPECT_EQ(small[0], reference[0]);
  EXPECT_EQ(no_overlap[0], reference[0]);
  EXPECT_EQ(blocking[0], reference[0]);
}

// A Communicator that counts the sums started, around a thread communicator.
class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void all_reduce_sum(std::span<float> d) override { inner_.all_reduce_sum(d); }
  void all_reduce_sum(std::span<double> d) override { inner_.all_reduce_sum(d); }
  dist::RequestId start_all_reduce_sum(std::span<float> d) override {
    ++started;
    return inner_.start_all_reduce_sum(d);
  }
  bool test(dist::RequestId id) override {
    ++tests;
    return inner_.test(id);
  }
  void wait(dist::RequestId id) override { inner_.wait(id); }
  void broadcast(std::span<std::uint8_t> d, int root) override { inner_.broadcast(d, root); }
  std::vector<std::vector<std::uint8_t>> all_gather(std::span<const std::uint8_t> m) override {
    return inner_.all_gather(m);
  }
  void barrier() override { inner_.barrier(); }
  [[noreturn]] void abort(const std::string& m, int code) override {
    inner_.abort(m, code);
    std::terminate();  // not reached: inner_.abort never returns
  }
  int started = 0;
  int tests = 0;

 private:
  Communicator& inner_;
};

// Records how many sums had started when the run's last step ran.
class StartedAtLastStep : public RunObserver {
 public:
  explicit StartedAtLastStep(const CountingCommunicator& c) : comm_(c) {}
  void on_step(const ObservedStep& s) override {
    ++steps;
    if (s.index + 1 == s.count) started = comm_.started;
  }
  int started = -1;
  int steps = 0;

 private:
  const CountingCommunicator& comm_;
};

TEST(DataParallel, BucketsStartWhileBackwardRunsWithOverlapOnly) {
  const data::Dataset d = blobs(16);
  for (const bool overlap : {true, false}) {
    kiln_test::run_ranks(2, [&](Communicator& comm) {
      CountingCommunicator counting(comm);
      Graph g;
      TrainStep step(mlp(g));
      DataParallel dp(step, counting, {.bucket_bytes = 64, .overlap = overlap});
      ASSERT_EQ(dp.buckets().size(), 6u);  // one per gradient: none is under 64 B but out.bias
      StartedAtLastStep seen(counting);
      dp.run(d.gather(std::vector<std::int64_t>{comm.rank(), comm.rank() + 2}), &seen);
      EXPECT_GT(seen.steps, 0);  // the caller's observer saw the steps
      EXPECT_EQ(counting.started, 6);
      EXPECT_EQ(dp.stats().runs, 1);
      EXPECT_EQ(dp.stats().buckets, 6u);
      EXPECT_GT(dp.stats().compute_seconds, 0.0);
      EXPECT_GT(dp.stats().communication_seconds, 0.0);
      dp.reset_stats();
      EXPECT_EQ(dp.stats().runs, 0);
      EXPECT_EQ(dp.stats().compute_seconds, 0.0);
      EXPECT_EQ(dp.gradients().size(), 6u);  // still the last run's
      if (overlap) {
        // All but the last bucket (it carries the loss) started during the run; pending ones
        // were tested by later steps.
        EXPECT_EQ(seen.started, 5);
        EXPECT_GT(counting.tests, 0);
      } else {
        EXPECT_EQ(seen.started, 0);
      }
    });
  }
}

TEST(DataParallel, BucketsPackGradientsInReverseOrder) {
  kiln_test::run_ranks(1, [](Communicator& comm) {
    Graph g;
    TrainStep step(mlp(g));
    // Parameters: fc1.weight [8,16] 512 B, fc1.bias 64 B, fc2.weight [16,12] 768 B,
    // fc2.bias 48 B, out.weight [12,4] 192 B, out.bias 16 B: 16 + 192 + 48 fill 256.
    ASSERT_EQ(step.parameters().size(), 6u);
    DataParallel small(step, comm, {.bucket_bytes = 256});
    EXPECT_EQ(small.buckets(), (std::vector<std::vector<std::size_t>>{{5, 4, 3}, {2}, {1}, {0}}));
    DataParallel big(step, comm, {.bucket_bytes = 1 << 20});
    EXPECT_EQ(big.buckets(), (std::vector<std::vector<std::size_t>>{{5, 4, 3, 2, 1, 0}}));
    EXPECT_THROW(DataParallel(step, comm, {.bucket_bytes = 0}), ValueError);
  });
}

// The gradient of the mean loss over all rows, from ranks holding 5 and 11 of them.
TEST(DataParallel, UnequalBatchesAreWeightedByRows) {
  const data::Dataset d = blobs(16);
  const data::Batch all = d.tensors();
  Graph ref_graph;
  TrainStep ref(mlp(ref_graph));
  const double ref_loss = ref.run(all);
  std::vector<std::vector<float>> expected;
  for (const Tensor& t : ref.gradients()) expected.push_back(t.to_vector<float>());

  kiln_test::run_ranks(2, [&](Communicator& comm) {
    Graph g;
    TrainStep step(mlp(g));
    DataParallel dp(step, comm, {.bucket_bytes = 300});
    const std::int64_t begin = comm.rank() == 0 ? 0 : 5, end = comm.rank() == 0 ? 5 : 16;
    data::Batch mine;
    for (const auto& [name, t] : all) mine.emplace_back(name, t.rows(begin, end).contiguous());
    const double loss = dp.run(mine);
    EXPECT_EQ(dp.global_rows(), 16);
    EXPECT_NEAR(loss, ref_loss, 1e-6 * std::abs(ref_loss));
    ASSERT_EQ(dp.gradients().size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
      EXPECT_LT(relative_difference(dp.gradients()[i].to_vector<float>(), expected[i]), 1e-6)
          << "rank " << comm.rank() << " gradient " << i;
    // Not the local gradient: the unweighted mean of the two halves' gradients differs.
    EXPECT_EQ(dp.stats().buckets, dp.buckets().size());
    EXPECT_EQ(dp.stats().bytes_per_run, std::size_t{(8 * 16 + 16 + 16 * 12 + 12 + 12 * 4 + 4) * 4});
  });
}

// d loss / d c is a constant (0.1, whatever the data) and d loss / d unused is zero: the
// averages are exact, and the plan still computes each rank's own gradients afterwards.
TEST(DataParallel, ConstantGradientsAreAveragedWithoutTouchingThePlan) {
  kiln_test::run_ranks(3, [](Communicator& comm) {
    Graph g;
    auto x = g.input("x", {batch, 3});
    auto t = g.input("t", {batch, 1});
    auto w = g.parameter("w", Tensor::full({3, 1}, 0.25));
    auto c = g.parameter("c", Tensor::zeros({1}));
    g.parameter("unused", Tensor::zeros({2}));  // its gradient: zeros, whatever the rows
    TrainStep step(add(mse(matmul(x, w), t), sum(mul(c, 0.1))));
    ASSERT_EQ(step.parameters().size(), 3u);
    DataParallel dp(step, comm, {.bucket_bytes = 8});
    const std::int64_t rows = std::int64_t{1} << comm.rank();  // 1, 2 and 4 rows
    const Feeds feeds{{"x", Tensor::full({rows, 3}, 1.0 + comm.rank())},
                      {"t", Tensor::full({rows, 1}, 0.5)}};
    for (int i = 0; i < 3; ++i) {
      dp.run(feeds);
      EXPECT_EQ(dp.global_rows(), 7);
      EXPECT_NEAR(dp.gradients()[1].item(), 0.1, 1e-7);
      // (rows-weighted) mean over ranks of d mse / d w = 2 (x w - t) x, per rank: x = r + 1.
      double expected = 0;
      for (int r = 0; r < 3; ++r)
        expected += double(1 << r) * 2 * (3 * 0.25 * (r + 1) - 0.5) * (r + 1);
      EXPECT_NEAR(dp.gradients()[0].at(0), expected / 7, 1e-5);
      EXPECT_EQ(dp.gradients()[2].to_vector<float>(), std::vector<float>(2, 0.0f));
      EXPECT_EQ(dp.gradients()[0].raw(), step.gradients()[0].raw());  // in place
    }
    // The plan still computes this rank's own gradient, exactly.
    step.run(feeds);
    EXPECT_EQ(step.gradients()[1].to_vector<float>()[0], 0.1f);
  });
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
  return {};
}

TEST(DataParallel, ANonFiniteRankMakesEveryRankThrowAndTheNextRunWorks) {
  const data::Dataset d = blobs(12);
  std::mutex mutex;
  std::vector<std::string> messages(3);
  kiln_test::run_ranks(3, [&](Communicator& comm) {
    Graph g;
    TrainStep step(mlp(g));
    DataParallel dp(step, comm, {.bucket_bytes = 128});
    data::Batch mine = d.gather(std::vector<std::int64_t>{comm.rank() * 4, comm.rank() * 4 + 1});
    data::Batch bad = d.gather(std::vector<std::int64_t>{0, 1});
    if (comm.rank() == 1) bad[0].second.data<float>()[3] = std::nanf("");
    try {
      dp.run(comm.rank() == 1 ? bad : mine);
      ADD_FAILURE() << "rank " << comm.rank() << " did not throw";
    } catch (const NonFiniteError& e) {
      std::lock_guard lock(mutex);
      messages[static_cast<std::size_t>(comm.rank())] = e.what();
    }
    // A rank whose run throws something else: DistributedError everywhere, naming it.
    data::Batch wrong = mine;
    if (comm.rank() == 2) wrong[0].second = Tensor::zeros({2, 5});  // 5 features, not 8
    try {
      dp.run(wrong);
      ADD_FAILURE() << "rank " << comm.rank() << " did not throw";
    } catch (const DistributedError& e) {
      EXPECT_NE(std::string(e.what()).find("failed on rank 2 of 3"), std::string::npos) << e.what();
    }
    // Nobody was left behind: the next run works on every rank.
    const double loss = dp.run(mine);
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_EQ(dp.global_rows(), 6);
  });
  for (const std::string& m : messages) {
    EXPECT_EQ(m, messages[0]);
    EXPECT_NE(m.find("failed on rank 1 of 3"), std::string::npos) << m;
    EXPECT_NE(m.find("the loss is nan"), std::string::npos) << m;
  }
}

TEST(DataParallel, AModelOfAnotherShapeIsRefusedOnEveryRank) {
  const auto errors = kiln_test::run_ranks_collect(3, [](Communicator& comm) {
    Graph g;
    TrainStep step(mlp(g, comm.rank() == 2 ? 13 : 12));
    DataParallel dp(step, comm);
    dp.broadcast_parameters();
  });
  for (const auto& e : errors) {
    ASSERT_TRUE(e);
    const std::string m = message_of(e);
    EXPECT_NE(m.find("rank 2: parameter 2 is 'fc2.weight' (trainable f32 [16, 13]) there, "
                     "'fc2.weight' (trainable f32 [16, 12]) on rank 0"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find("rank 1:"), std::string::npos) << m;
    EXPECT_THROW(std::rethrow_exception(e), DistributedError);
  }
}

TEST(DataParallel, RunRefusesRanksWithOtherBucketsInsteadOfHanging) {
  const data::Dataset d = blobs(8);
  const auto errors = kiln_test::run_ranks_collect(2, [&](Communicator& comm) {
    Graph g;
    TrainStep step(mlp(g, comm.rank() == 1 ? 13 : 12));
    DataParallel dp(step, comm, {.bucket_bytes = 256});
    dp.run(d.tensors());
  });
  for (const auto& e : errors) {
    ASSERT_TRUE(e);
    const std::string m = message_of(e);
    EXPECT_NE(m.find("buckets (floats per bucket) differ"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1: "), std::string::npos) << m;
  }
}

TEST(DataParallel, BatchNormBuffersAreAveraged) {
  // x -> dense -> batch_norm -> dense; each rank sees other rows, so its own running
  // statistics differ; averaged, every rank holds their mean.
  const data::Dataset d = blobs(16);
  const auto build = [](Graph& g) {
    auto x = g.input("x", {batch, 8});
    auto y = g.input("y", {batch}, i32);
    auto h = nn::dense(g, x, 6, {.name = "fc1"});
    h = nn::batch_norm(g, h, {.name = "bn"});
    return softmax_cross_entropy(nn::dense(g, relu(h), 4, {.name = "out"}), y);
  };
  const auto buffers = [](Graph& g) {
    std::vector<float> v;
    for (Value b : g.buffers())
      for (float f : g.tensor(b).to_vector<float>()) v.push_back(f);
    return v;
  };
  std::vector<std::vector<float>> local(2), averaged(2);
  for (const bool average : {false, true}) {
    kiln_test::run_ranks(2, [&](Communicator& comm) {
      Graph g;
      TrainStep step(build(g));
      DataParallel dp(step, comm, {.average_buffers = average});
      const std::int64_t r = comm.rank();
      dp.run(d.gather(std::vector<std::int64_t>{8 * r, 8 * r + 1, 8 * r + 2, 8 * r + 3}));
      (average ? averaged : local)[static_cast<std::size_t>(r)] = buffers(g);
    });
  }
  ASSERT_EQ(local[0].size(), 12u);  // running mean and variance of 6 channels
  EXPECT_NE(local[0], local[1]);
  EXPECT_EQ(averaged[0], averaged[1]);
  for (std::size_t i = 0; i < local[0].size(); ++i)
    EXPECT_NEAR(averaged[0][i], (local[0][i] + local[1][i]) / 2, 1e-6) << i;
}

TEST(DataParallel, ChecksumSeesOneBitOfOneWeight) {
  Graph g;
  TrainStep step(mlp(g));
  const std::uint64_t before = dist::parameter_checksum(g);
  Tensor w = step.parameters()[2];
  std::uint32_t bits;
  std::memcpy(&bits, &w.data<float>()[7], 4);
  bits ^= 1u;
  std::memcpy(&w.data<float>()[7], &bits, 4);
  const std::uint64_t flipped = dist::parameter_checksum(g);
  EXPECT_NE(flipped, before);
  bits ^= 1u;
  std::memcpy(&w.data<float>()[7], &bits, 4);
  EXPECT_EQ(dist::parameter_checksum(g), before);

  // verify_parameters names the rank that differs.
  const auto errors = kiln_test::run_ranks_collect(3, [](Communicator& comm) {
    Graph rg;
    TrainStep s(mlp(rg));
    if (comm.rank() == 1) s.parameters()[0].data<float>()[0] += 1e-7f;
    dist::verify_parameters(comm, rg);
  });
  for (const auto& e : errors) {
    ASSERT_TRUE(e);
    const std::string m = message_of(e);
    EXPECT_NE(m.find("rank 1 ("), std::string::npos) << m;
    EXPECT_EQ(m.find("rank 2"), std::string::npos) << m;
  }
}

TEST(DataParallel, BroadcastBytesOfAnySize) {
  kiln_test::run_ranks(3, [](Communicator& comm) {
    std::vector<std::uint8_t> b;
    if (comm.rank() == 1) b = {1, 2, 3, 4, 5};
    dist::broadcast_bytes(comm, b, 1);
    EXPECT_EQ(b, (std::vector<std::uint8_t>{1, 2, 3, 4, 5}));
  });
}

}  // namespace
}  // namespace kiln
