// The Trainer with TrainerOptions::communicator, its ranks as threads of this program
// (tests/support/thread_communicator.hpp): p ranks with batch B/p train what one process
// with batch B trains, the epoch's loss and metrics are those of all ranks' rows, batch
// norm's statistics end the same on every rank, rank 0 alone writes checkpoints and model
// files (its errors are thrown on every rank), a checkpoint resumes with another number of
// ranks, and a non-finite step or a stop on one rank ends every rank alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/train/checkpoint.hpp"
#include "tests/support/thread_communicator.hpp"
#include "tests/trainer_test_util.hpp"

namespace {

using kiln_test::blobs;
using kiln_test::Model;
namespace tr = kiln::train;
namespace fs = std::filesystem;

using Weights = std::vector<std::pair<std::string, std::vector<float>>>;

// Every parameter and buffer, by name.
Weights weights_of(kiln::Graph& g) {
  Weights out;
  for (const auto& list : {g.parameters(), g.buffers()})
    for (const kiln::Value& v : list) out.emplace_back(v.name(), g.tensor(v).to_vector<float>());
  return out;
}

// |a - b| <= rel * max|b| element-wise for every tensor (the relative error of the
// largest weights; a small weight's own relative error says nothing).
void expect_close(const Weights& a, const Weights& b, double rel) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    ASSERT_EQ(a[i].second.size(), b[i].second.size());
    double scale = 0.0;
    for (float v : b[i].second) scale = std::max(scale, std::fabs(static_cast<double>(v)));
    for (std::size_t j = 0; j < a[i].second.size(); ++j)
      EXPECT_NEAR(a[i].second[j], b[i].second[j], rel * scale) << a[i].first << "[" << j << "]";
  }
}

// The results of one rank, kept for the test's thread.
struct RankResult {
  Weights weights;
  tr::History history;
  std::vector<std::int64_t> first_batches;  // position().batch at each fit's first step
};

tr::FitOptions fit_options(std::int64_t epochs, std::int64_t batch,
                           const kiln::data::Dataset* val = nullptr,
                           std::vector<std::shared_ptr<tr::Callback>> cbs = {}) {
  return {.epochs = epochs,
          .batch_size = batch,
          .seed = 5,
          .shuffle = true,
          .validation = val,
          .callbacks = std::move(cbs),
          .progress = tr::Progress::none};
}

// 96 rows, batch 16: 6 steps per epoch; 17 epochs = 102 steps.
constexpr std::int64_t rows = 96, global_batch = 16, epochs = 17;

TEST(TrainDistributed, TwoRanksWithHalfBatchesEqualOneProcessWithTheWholeBatch) {
  const auto train = blobs(rows, 3), val = blobs(30, 4);
  kiln::set_num_threads(1);
  Model ref;
  tr::Trainer ref_trainer(ref.g, ref.options({"accuracy", "log_loss"}));
  const tr::History ref_history = ref_trainer.fit(train, fit_options(epochs, global_batch, &val));
  const Weights ref_weights = weights_of(ref.g);

  std::vector<RankResult> results(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    Model m;
    // Rank 1 starts from other weights: fit() broadcasts rank 0's.
    if (comm.rank() == 1)
      for (const kiln::Value& v : m.g.parameters()) {
        kiln::Tensor& w = m.g.tensor(v);
        std::fill(w.data<float>(), w.data<float>() + w.numel(), 0.25f);
      }
    auto o = m.options({"accuracy", "log_loss"});
    o.communicator = &comm;
    o.bucket_bytes = 256;  // several buckets
    tr::Trainer t(m.g, o);
    RankResult& r = results[static_cast<std::size_t>(comm.rank())];
    r.history = t.fit(train, fit_options(epochs, global_batch / 2, &val));
    EXPECT_EQ(t.global_step(), epochs * rows / global_batch);
    r.weights = weights_of(m.g);
  });
  EXPECT_EQ(results[0].weights, results[1].weights);  // bitwise the same on every rank
  expect_close(results[0].weights, ref_weights, 1e-5);
  for (const RankResult& r : results) {
    ASSERT_EQ(r.history.epochs.size(), static_cast<std::size_t>(epochs));
    for (std::size_t e = 0; e < r.history.epochs.size(); ++e) {
      const tr::Logs& got = r.history.epochs[e];
      const tr::Logs& want = ref_history.epochs[e];
      ASSERT_EQ(got.size(), want.size());
      for (const char* key : {"loss", "log_loss", "val_loss", "val_log_loss"})
        EXPECT_NEAR(got.at(key), want.at(key), 1e-5 * std::fabs(want.at(key))) << e << key;
      // The same rows: the same number of them right.
      EXPECT_DOUBLE_EQ(got.at("accuracy"), want.at("accuracy")) << e;
      EXPECT_DOUBLE_EQ(got.at("val_accuracy"), want.at("val_accuracy")) << e;
    }
  }
  EXPECT_EQ(results[0].history.epochs, results[1].history.epochs);
}

// Callbacks' on_gradients see the averaged gradients: norm clipping (active at every step
// with max_norm 0.05) clips what one process clips.
TEST(TrainDistributed, GradientClippingSeesTheAveragedGradients) {
  const auto train = blobs(rows, 3);
  kiln::set_num_threads(1);
  Model ref;
  tr::Trainer ref_trainer(ref.g, ref.options());
  ref_trainer.fit(train, fit_options(5, global_batch, nullptr, {tr::clip_grad_norm(0.05)}));
  std::vector<Weights> results(2);
  std::vector<double> norms(2, 0.0);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    Model m;
    auto o = m.options();
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    // The norm of the first step's gradients, as the clipping callback gets them.
    auto first =
        tr::lambda_callback({.on_gradients = [&](tr::Trainer& tt, std::span<const kiln::Tensor> g) {
          if (tt.global_step() != 0) return;
          double sum = 0;
          for (const kiln::Tensor& x : g)
            for (float v : x.to_vector<float>()) sum += static_cast<double>(v) * v;
          norms[static_cast<std::size_t>(comm.rank())] = std::sqrt(sum);
        }});
    t.fit(train, fit_options(5, global_batch / 2, nullptr, {first, tr::clip_grad_norm(0.05)}));
    results[static_cast<std::size_t>(comm.rank())] = weights_of(m.g);
  });
  EXPECT_EQ(norms[0], norms[1]);
  EXPECT_GT(norms[0], 0.05);
  EXPECT_EQ(results[0], results[1]);
  expect_close(results[0], weights_of(ref.g), 1e-5);
}

// Without training (lr 0) the predictions are exact, and every metric of the epoch is
// that of one process over the same rows, padding included: 7 rows over 3 ranks of
// batch 2 (global batches of 6, the epoch's order padded to 9 rows by repeating its
// first 2) are what one process computes over the padded order with batch 6.
TEST(TrainDistributed, EpochMetricsAreThoseOfEveryRanksRows) {
  const auto train = blobs(7, 8);
  // The padded order, as one dataset fed in order (shuffle off).
  std::vector<std::int64_t> order = {0, 1, 2, 3, 4, 5, 6, 0, 1};
  std::vector<float> x;
  std::vector<std::int32_t> y;
  for (std::int64_t r : order) {
    for (int f = 0; f < 4; ++f) x.push_back(train["features"].data<float>()[r * 4 + f]);
    y.push_back(train["target"].data<std::int32_t>()[r]);
  }
  const kiln::data::Dataset padded({{"features", kiln::Tensor::from(x, kiln::Shape({9, 4}))},
                                    {"target", kiln::Tensor::from(y, kiln::Shape({9}))}});
  Model ref(false, false, 0.0);
  tr::Trainer ref_trainer(ref.g, ref.options({"accuracy", "log_loss"}));
  auto ref_options = fit_options(1, 6);
  ref_options.shuffle = false;
  const tr::Logs want = ref_trainer.fit(padded, ref_options).epochs[0];

  std::vector<tr::Logs> got(3);
  kiln_test::run_ranks(3, [&](kiln::dist::Communicator& comm) {
    Model m(false, false, 0.0);
    auto o = m.options({"accuracy", "log_loss"});
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    auto fo = fit_options(1, 2);
    fo.shuffle = false;
    got[static_cast<std::size_t>(comm.rank())] = t.fit(train, fo).epochs[0];
  });
  for (const tr::Logs& logs : got) {
    EXPECT_NEAR(logs.at("loss"), want.at("loss"), 1e-6 * want.at("loss"));
    EXPECT_NEAR(logs.at("log_loss"), want.at("log_loss"), 1e-6 * want.at("log_loss"));
    EXPECT_EQ(logs.at("accuracy"), want.at("accuracy"));
  }
}

TEST(TrainDistributed, BatchNormStatisticsEndTheSameOnEveryRank) {
  const auto train = blobs(48, 9);
  std::vector<Weights> results(2);
  std::vector<Weights> initial(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    kiln::Graph g;
    auto x = g.input("features", {kiln::batch, 4});
    auto y = g.input("target", {kiln::batch}, kiln::i32);
    auto h =
        kiln::relu(kiln::nn::batch_norm(kiln::nn::dense(x, 8, {.name = "fc1"}), {.name = "bn"}));
    auto logits = kiln::nn::dense(h, 3, {.name = "fc2"});
    auto loss = kiln::softmax_cross_entropy(logits, y);
    kiln::optim::SGD opt(kiln::nn::named_parameters(g), {.lr = 0.05});
    tr::Trainer t(g,
                  {.loss = loss, .predictions = logits, .optimizer = &opt, .communicator = &comm});
    initial[static_cast<std::size_t>(comm.rank())] = weights_of(g);
    t.fit(train, fit_options(3, 8));
    results[static_cast<std::size_t>(comm.rank())] = weights_of(g);
  });
  EXPECT_EQ(results[0], results[1]);
  // The running statistics moved (they are averaged, not left at their start).
  bool moved = false;
  for (std::size_t i = 0; i < results[0].size(); ++i)
    if (results[0][i].first.find("bn") != std::string::npos &&
        results[0][i].second != initial[0][i].second)
      moved = true;
  EXPECT_TRUE(moved);
}

// Rank r writes into its own folder, as on machines without a shared file system: rank 0's
// folder gets the pairs and the model file, rank 1's nothing, and both get the same pairs.
TEST(TrainDistributed, OnlyRankZeroWritesCheckpointsAndModels) {
  const auto train = blobs(rows, 3);
  const std::string root = kiln_test::fresh_dir("dist_ckpt_once");
  std::vector<tr::CheckpointPair> pairs(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    const std::string dir = root + "/rank" + std::to_string(comm.rank());
    Model m;
    auto o = m.options({"accuracy"});
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    t.fit(train,
          fit_options(2, 8, nullptr, {tr::checkpoint({.dir = dir + "/ckpt", .every_steps = 4})}));
    pairs[static_cast<std::size_t>(comm.rank())] = t.save_checkpoint(dir + "/final");
    t.save_model(dir + "/model.kiln");
  });
  EXPECT_FALSE(fs::exists(root + "/rank1"));
  ASSERT_TRUE(fs::exists(root + "/rank0/model.kiln"));
  EXPECT_TRUE(fs::exists(pairs[0].checkpoint));
  EXPECT_FALSE(fs::exists(pairs[1].checkpoint));
  EXPECT_EQ(pairs[0].step, 12);
  EXPECT_EQ(pairs[1].step, 12);
  EXPECT_EQ(fs::path(pairs[1].checkpoint).filename(), fs::path(pairs[0].checkpoint).filename());
  const auto latest = tr::latest_checkpoint(root + "/rank0/ckpt");
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->step, 12);
  // The checkpoint records the ranks and the rows of the epoch trained (all of them).
  Model m;
  const kiln::CheckpointInfo info = kiln::load_checkpoint(latest->checkpoint, m.g);
  std::int64_t world = 0, epoch_rows = -1, trained_rows = -1;
  for (const auto& [name, t] : info.extra) {
    if (name == "dist.world_size") world = t.data<std::int64_t>()[0];
    if (name == "trainer.epoch_rows") epoch_rows = t.data<std::int64_t>()[0];
    if (name == "trainer.rows") trained_rows = t.data<std::int64_t>()[0];
  }
  EXPECT_EQ(world, 2);
  EXPECT_EQ(epoch_rows, rows);  // saved at the last step of epoch 2, before its end
  EXPECT_EQ(trained_rows, rows);
}

// Positions: 2 ranks x batch 8 save at step 9 (epoch 1, batch 3: 48 rows of the epoch).
// One process with batch 16 continues at batch 48 / 16 = 3 and computes what the 2 ranks
// compute uninterrupted; 3 ranks x batch 5 (global 15) continue at batch 48 / 15 = 3 (rows
// 45..47 seen again), and only rank 0 has the files; 2 ranks again continue bitwise.
TEST(TrainDistributed, ResumesATwoRankCheckpointWithOneAndWithThreeRanks) {
  const auto train = blobs(rows, 3), val = blobs(30, 4);
  const std::string root = kiln_test::fresh_dir("dist_resume");
  const std::string ckpt = root + "/ckpt";
  std::vector<Weights> uninterrupted(2);
  tr::History uninterrupted_history;
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    Model m(false, true, 0.01);
    auto o = m.options({"accuracy"});
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    auto h = t.fit(train, fit_options(4, 8, &val));
    uninterrupted[static_cast<std::size_t>(comm.rank())] = weights_of(m.g);
    if (comm.rank() == 0) uninterrupted_history = h;
  });
  ASSERT_EQ(uninterrupted[0], uninterrupted[1]);

  // The interrupted run: a checkpoint at step 9, then rank 0's folder only.
  struct Interrupt {};
  const auto errors = kiln_test::run_ranks_collect(2, [&](kiln::dist::Communicator& comm) {
    Model m(false, true, 0.01);
    auto o = m.options({"accuracy"});
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    auto stop = tr::lambda_callback(
        {.on_step_end = [&](tr::Trainer& tt, std::int64_t step, const tr::Logs&) {
          if (step == 8) {
            tt.save_checkpoint(comm.rank() == 0 ? ckpt : root + "/elsewhere");
            throw Interrupt{};
          }
        }});
    t.fit(train, fit_options(4, 8, &val, {stop}));
  });
  for (const auto& e : errors) EXPECT_TRUE(e);
  EXPECT_FALSE(fs::exists(root + "/elsewhere"));

  // One process, batch 16.
  {
    Model m(false, true, 0.01);
    tr::Trainer t(m.g, m.options({"accuracy"}));
    const tr::TrainerPosition pos = t.resume(ckpt);
    EXPECT_EQ(pos.epoch, 1);
    EXPECT_EQ(pos.batch, 3);
    EXPECT_EQ(pos.step, 9);
    std::vector<std::int64_t> first;
    auto watch = tr::lambda_callback({.on_step_begin = [&](tr::Trainer& tt, std::int64_t) {
      if (first.empty()) first.push_back(tt.position().batch);
    }});
    const auto h = t.fit(train, fit_options(4, 16, &val, {watch}));
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0], 3);
    EXPECT_EQ(t.global_step(), 4 * 6);
    expect_close(weights_of(m.g), uninterrupted[0], 1e-5);
    ASSERT_EQ(h.epochs.size(), 4u);
    for (std::size_t e = 0; e < 4; ++e)
      EXPECT_NEAR(h.epochs[e].at("val_loss"), uninterrupted_history.epochs[e].at("val_loss"),
                  1e-5 * uninterrupted_history.epochs[e].at("val_loss"))
          << e;
    // The epoch of the resume: its loss and accuracy count all 96 rows once.
    EXPECT_NEAR(h.epochs[1].at("loss"), uninterrupted_history.epochs[1].at("loss"),
                1e-5 * uninterrupted_history.epochs[1].at("loss"));
    EXPECT_DOUBLE_EQ(h.epochs[1].at("accuracy"), uninterrupted_history.epochs[1].at("accuracy"));
  }

  // Three ranks, batch 5; ranks 1 and 2 are given a folder that does not exist.
  std::vector<RankResult> results(3);
  kiln_test::run_ranks(3, [&](kiln::dist::Communicator& comm) {
    Model m(false, true, 0.01);
    auto o = m.options({"accuracy"});
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    const tr::TrainerPosition pos = t.resume(comm.rank() == 0 ? ckpt : root + "/missing");
    EXPECT_EQ(pos.step, 9);
    RankResult& r = results[static_cast<std::size_t>(comm.rank())];
    auto watch = tr::lambda_callback({.on_step_begin = [&](tr::Trainer& tt, std::int64_t) {
      if (r.first_batches.empty()) r.first_batches.push_back(tt.position().batch);
    }});
    r.history = t.fit(train, fit_options(4, 5, &val, {watch}));
    EXPECT_EQ(t.global_step(), 9 + (7 - 3) + 2 * 7);  // 96 rows / 15: 7 batches an epoch
    r.weights = weights_of(m.g);
  });
  for (const RankResult& r : results) {
    ASSERT_EQ(r.first_batches.size(), 1u);
    EXPECT_EQ(r.first_batches[0], 3);
    EXPECT_EQ(r.history.epochs.size(), 4u);
    EXPECT_EQ(r.weights, results[0].weights);
    EXPECT_EQ(r.history.epochs, results[0].history.epochs);
  }
  EXPECT_FALSE(fs::exists(root + "/missing"));

  // Two ranks again, batch 8: bitwise the run that never stopped (weights, and every
  // epoch's loss, accuracy from the gathered predictions, validation and lr).
  std::vector<RankResult> again(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    Model m(false, true, 0.01);
    auto o = m.options({"accuracy"});
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    EXPECT_EQ(t.resume(comm.rank() == 0 ? ckpt : root + "/missing").batch, 3);
    RankResult& r = again[static_cast<std::size_t>(comm.rank())];
    r.history = t.fit(train, fit_options(4, 8, &val));
    r.weights = weights_of(m.g);
  });
  for (const RankResult& r : again) {
    EXPECT_EQ(r.weights, uninterrupted[0]);
    ASSERT_EQ(r.history.epochs.size(), 4u);
    for (std::size_t e = 0; e < 4; ++e)
      for (const auto& [k, v] : uninterrupted_history.epochs[e])
        EXPECT_TRUE(kiln_test::same_bits(r.history.epochs[e].at(k), v)) << e << " " << k;
  }
}

// A checkpoint of one process written before "trainer.epoch_rows" and "dist.world_size"
// existed (the entries taken out) still loads, alone and with 2 ranks, and continues at its
// batch index.
TEST(TrainDistributed, ACheckpointWithoutTheNewEntriesContinuesAtItsBatch) {
  const auto train = blobs(rows, 3);
  const std::string dir = kiln_test::fresh_dir("dist_old_ckpt");
  tr::CheckpointPair pair;
  {
    Model m;
    tr::Trainer t(m.g, m.options());
    auto save = tr::lambda_callback(
        {.on_step_end = [&](tr::Trainer& tt, std::int64_t step, const tr::Logs&) {
          if (step == 8) pair = tt.save_checkpoint(dir);  // epoch 1, batch 3 (of 6)
        }});
    t.fit(train, fit_options(2, global_batch, nullptr, {save}));
    kiln::CheckpointInfo info = kiln::load_checkpoint(
        pair.checkpoint, m.g, {.optimizer = m.opt.get(), .train_step = &t.step()});
    std::erase_if(info.extra, [](const auto& e) {
      return e.first == "trainer.epoch_rows" || e.first == "dist.world_size";
    });
    ASSERT_EQ(info.extra.size(), 9u);  // position (3), stop, sums (2), hash, epoch 0 (2)
    kiln::save_checkpoint(pair.checkpoint, m.g,
                          {.optimizer = m.opt.get(),
                           .step = info.step,
                           .train_step = &t.step(),
                           .extra = info.extra});
  }
  std::vector<std::int64_t> first(2, -1);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    Model m;
    auto o = m.options();
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    EXPECT_EQ(t.resume(dir).batch, 3);
    auto watch = tr::lambda_callback({.on_step_begin = [&](tr::Trainer& tt, std::int64_t) {
      if (first[static_cast<std::size_t>(comm.rank())] < 0)
        first[static_cast<std::size_t>(comm.rank())] = tt.position().batch;
    }});
    t.fit(train, fit_options(2, global_batch / 2, nullptr, {watch}));
    EXPECT_EQ(t.global_step(), 12);
  });
  EXPECT_EQ(first[0], 3);
  EXPECT_EQ(first[1], 3);
}

// A folder rank 0 cannot create: save_checkpoint and save_model throw rank 0's IoError
// (naming the folder) on both ranks, in and outside fit.
TEST(TrainDistributed, AnIoErrorOfRankZeroIsThrownOnEveryRank) {
  const auto train = blobs(rows, 3);
  const std::string root = kiln_test::fresh_dir("dist_io_error");
  std::ofstream(root + "/blocker") << "a file, not a folder";
  const std::string bad = root + "/blocker/ckpt";
  std::vector<std::string> messages(2), model_messages(2), fit_messages(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    const auto r = static_cast<std::size_t>(comm.rank());
    // Rank 1's own folder would work: rank 0's failure decides.
    const std::string dir = comm.rank() == 0 ? bad : root + "/fine";
    Model m;
    auto o = m.options();
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    try {
      t.save_checkpoint(dir);
    } catch (const kiln::IoError& e) {
      messages[r] = e.what();
    }
    try {
      t.save_model(dir + "/model.kiln");
    } catch (const kiln::IoError& e) {
      model_messages[r] = e.what();
    }
    try {
      t.fit(train, fit_options(1, 8, nullptr, {tr::checkpoint({.dir = dir, .every_steps = 2})}));
    } catch (const kiln::IoError& e) {
      fit_messages[r] = e.what();
      EXPECT_EQ(t.global_step(), 2);
    }
  });
  for (const auto* m : {&messages, &model_messages, &fit_messages}) {
    EXPECT_NE((*m)[0].find("blocker"), std::string::npos) << (*m)[0];
    EXPECT_EQ((*m)[1], (*m)[0]);
  }
  EXPECT_FALSE(fs::exists(root + "/fine"));
}

// A NaN in rank 1's first batch (row 1 of the unshuffled order: shard 1's first row):
// both ranks throw NonFiniteError and keep their weights.
TEST(TrainDistributed, ANonFiniteLossOnOneRankStopsEveryRank) {
  auto train = blobs(rows, 3);
  kiln::Tensor x = train["features"].clone();
  x.data<float>()[1 * 4 + 2] = NAN;
  const kiln::data::Dataset bad({{"features", x}, {"target", train["target"]}});
  std::vector<Weights> before(2), after(2);
  const auto errors = kiln_test::run_ranks_collect(2, [&](kiln::dist::Communicator& comm) {
    Model m;
    auto o = m.options();
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    auto fo = fit_options(1, 8);
    fo.shuffle = false;
    kiln::dist::broadcast_parameters(comm, m.g);
    before[static_cast<std::size_t>(comm.rank())] = weights_of(m.g);
    try {
      t.fit(bad, fo);
    } catch (...) {
      after[static_cast<std::size_t>(comm.rank())] = weights_of(m.g);
      throw;
    }
  });
  for (std::size_t r = 0; r < 2; ++r) {
    ASSERT_TRUE(errors[r]) << r;
    EXPECT_THROW(std::rethrow_exception(errors[r]), kiln::NonFiniteError) << r;
    EXPECT_EQ(after[r], before[r]) << r;
  }
}

// Early stopping decides alike on every rank (the same logs); a stop() asked on one rank
// only stops every rank after the same epoch.
TEST(TrainDistributed, StopsEveryRankAtTheSameEpoch) {
  const auto train = blobs(rows, 3), val = blobs(30, 4);
  std::vector<std::size_t> early(2), one_rank(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    const auto r = static_cast<std::size_t>(comm.rank());
    {
      Model m;
      auto o = m.options();
      o.communicator = &comm;
      tr::Trainer t(m.g, o);
      // The loss falls every epoch, which "max" counts as no improvement: epoch 0 is the
      // best, epochs 1 and 2 exceed patience 1, so the fit stops after epoch 2.
      auto h = t.fit(
          train,
          fit_options(
              20, 8, &val,
              {tr::early_stopping({.monitor = "loss", .mode = tr::Mode::max, .patience = 1})}));
      early[r] = h.epochs.size();
    }
    Model m;
    auto o = m.options();
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    auto stop_on_1 =
        tr::lambda_callback({.on_epoch_end = [&](tr::Trainer& tt, std::int64_t epoch, tr::Logs&) {
          if (comm.rank() == 1 && epoch == 1) tt.stop();
        }});
    one_rank[r] = t.fit(train, fit_options(20, 8, nullptr, {stop_on_1})).epochs.size();
  });
  EXPECT_EQ(early[0], 3u);
  EXPECT_EQ(early[1], 3u);
  EXPECT_EQ(one_rank[0], 2u);
  EXPECT_EQ(one_rank[1], 2u);
}

// Ranks that would not fit alike are refused on every rank before any training.
TEST(TrainDistributed, RanksFittingDifferentlyAreRefused) {
  const auto train = blobs(rows, 3), shorter = blobs(rows - 8, 3);
  std::vector<std::string> messages(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    Model m;
    auto o = m.options();
    o.communicator = &comm;
    tr::Trainer t(m.g, o);
    try {
      t.fit(comm.rank() == 0 ? train : shorter, fit_options(1, 8));
    } catch (const kiln::DistributedError& e) {
      messages[static_cast<std::size_t>(comm.rank())] = e.what();
    }
    EXPECT_EQ(t.global_step(), 0);
  });
  EXPECT_NE(messages[0].find("rank 1 has training rows 88, rank 0 96"), std::string::npos)
      << messages[0];
  EXPECT_EQ(messages[1], messages[0]);
}

}  // namespace
