// Stop and resume equals never stopping, bitwise (dropout, shuffle, Adam, early-stopping
// state, mid-epoch stops), and two fits with the same seed write byte-identical model files.
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/train/checkpoint.hpp"
#include "tests/trainer_test_util.hpp"

namespace {

using kiln_test::blobs;
using kiln_test::Model;
namespace tr = kiln::train;
namespace fs = std::filesystem;

struct Interrupt {};

// Callbacks both runs use, whose state must survive: early stopping with best weights, and
// an LR schedule or reduce-on-plateau ("max" on a falling val_loss: a plateau every
// epoch, so its counters matter; a schedule would override its LR).
std::vector<std::shared_ptr<tr::Callback>> usual(Model& m, bool schedule = true) {
  std::vector<std::shared_ptr<tr::Callback>> out{
      tr::early_stopping({.monitor = "val_loss", .patience = 50, .restore_best_weights = true})};
  if (schedule)
    out.push_back(tr::lr_schedule(std::make_shared<kiln::optim::ExponentialLR>(*m.opt, 0.9)));
  else
    out.push_back(tr::reduce_on_plateau(
        {.monitor = "val_loss", .mode = tr::Mode::max, .factor = 0.5, .patience = 0}));
  return out;
}

tr::FitOptions fit_options(std::int64_t epochs, const kiln::data::Dataset* val,
                           std::vector<std::shared_ptr<tr::Callback>> cbs) {
  return {.epochs = epochs,
          .batch_size = 7,
          .seed = 99,
          .validation = val,
          .callbacks = std::move(cbs),
          .progress = tr::Progress::none};
}

TEST(TrainerResume, StopAtEpochAndResumeEqualsUninterruptedBitwise) {
  const auto train = blobs(50, 21), val = blobs(12, 22);
  const std::string dir = kiln_test::fresh_dir("resume_epoch");

  // Uninterrupted: 4 epochs.
  Model ref(true, true, 0.01);
  tr::Trainer ref_trainer(ref.g, ref.options({"accuracy"}));
  const auto ref_history = ref_trainer.fit(train, fit_options(4, &val, usual(ref)));
  ref_trainer.save_model(dir + "/ref.kiln");

  // 2 epochs with a checkpoint every epoch, then new objects resume and run 2 more.
  {
    Model a(true, true, 0.01);
    tr::Trainer t(a.g, a.options({"accuracy"}));
    auto cbs = usual(a);
    cbs.push_back(tr::checkpoint({.dir = dir + "/ckpt", .every_epochs = 1}));
    t.fit(train, fit_options(2, &val, cbs));
  }
  // A schedule made after resume() would start from the restored LR: refused.
  {
    Model c(true, true, 0.01);
    tr::Trainer t(c.g, c.options({"accuracy"}));
    t.resume(dir + "/ckpt");
    EXPECT_THROW(t.fit(train, fit_options(4, &val, usual(c))), kiln::ValueError);
  }
  Model b(true, true, 0.01);
  tr::Trainer t(b.g, b.options({"accuracy"}));
  auto cbs = usual(b);  // before resume: the schedule's base LR is the original one
  const tr::TrainerPosition pos = t.resume(dir + "/ckpt");
  EXPECT_EQ(pos.epoch, 2);
  EXPECT_EQ(pos.batch, 0);
  EXPECT_EQ(pos.step, 2 * 8);
  cbs.push_back(tr::checkpoint({.dir = dir + "/ckpt", .every_epochs = 1}));
  const auto history = t.fit(train, fit_options(4, &val, cbs));
  EXPECT_EQ(b.weights(), ref.weights());
  ASSERT_EQ(history.epochs.size(), 4u);
  for (std::size_t e = 0; e < 4; ++e)
    for (const auto& [k, v] : ref_history.epochs[e])
      EXPECT_TRUE(kiln_test::same_bits(history.epochs[e].at(k), v)) << e << " " << k;
  t.save_model(dir + "/resumed.kiln");
  EXPECT_EQ(kiln_test::file_bytes(dir + "/resumed.kiln"), kiln_test::file_bytes(dir + "/ref.kiln"));
  fs::remove_all(dir);
}

TEST(TrainerResume, StopMidEpochAndResumeEqualsUninterruptedBitwise) {
  const auto train = blobs(50, 23), val = blobs(12, 24);
  const std::string dir = kiln_test::fresh_dir("resume_step");
  Model ref(true, true, 0.01);
  tr::Trainer ref_trainer(ref.g, ref.options({"accuracy"}));
  const auto ref_history = ref_trainer.fit(train, fit_options(3, &val, usual(ref, false)));

  // Checkpoints every 5 steps; the run dies at step 13 (epoch 1, batch 5: after the
  // checkpoint of step 10, mid-epoch), the next resumes from step 10.
  {
    Model a(true, true, 0.01);
    tr::Trainer t(a.g, a.options({"accuracy"}));
    auto cbs = usual(a, false);
    cbs.push_back(
        tr::checkpoint({.dir = dir, .every_steps = 5, .every_epochs = 0, .keep_last = 2}));
    cbs.push_back(tr::lambda_callback({.on_step_begin = [](tr::Trainer&, std::int64_t s) {
      if (s == 13) throw Interrupt{};
    }}));
    EXPECT_THROW(t.fit(train, fit_options(3, &val, cbs)), Interrupt);
  }
  int pairs = 0;
  for (const auto& f : fs::directory_iterator(dir)) pairs += f.path().filename().string()[0] == 'c';
  EXPECT_EQ(pairs, 2);  // keep_last
  Model b(true, true, 0.01);
  tr::Trainer t(b.g, b.options({"accuracy"}));
  auto cbs = usual(b, false);
  const auto pos = t.resume(dir);
  EXPECT_EQ(pos.step, 10);
  EXPECT_EQ(pos.epoch, 1);
  EXPECT_EQ(pos.batch, 2);  // 8 batches per epoch
  cbs.push_back(tr::checkpoint({.dir = dir, .every_steps = 5, .every_epochs = 0, .keep_last = 2}));
  cbs.push_back(tr::lambda_callback({}));
  const auto history = t.fit(train, fit_options(3, &val, cbs));
  EXPECT_EQ(ref_history.epochs[2].at("lr"), 0.005);  // reduce-on-plateau acted
  EXPECT_EQ(b.weights(), ref.weights());
  ASSERT_EQ(history.epochs.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e)
    for (const auto& [k, v] : ref_history.epochs[e])
      EXPECT_TRUE(kiln_test::same_bits(history.epochs[e].at(k), v)) << e << " " << k;
  fs::remove_all(dir);
}

TEST(TrainerResume, SameSeedGivesByteIdenticalModelFiles) {
  const auto train = blobs(40, 25);
  const std::string dir = kiln_test::fresh_dir("repro");
  for (int run = 0; run < 2; ++run) {
    Model m(true, true, 0.01);
    tr::Trainer t(m.g, m.options());
    t.fit(train, {.epochs = 3,
                  .batch_size = 6,
                  .seed = 5,
                  .validation_split = 0.2,
                  .progress = tr::Progress::none});
    t.save_model(dir + "/run" + std::to_string(run) + ".kiln");
  }
  const auto a = kiln_test::file_bytes(dir + "/run0.kiln");
  EXPECT_GT(a.size(), 100u);
  EXPECT_EQ(a, kiln_test::file_bytes(dir + "/run1.kiln"));
  // Another seed gives other weights.
  Model m(true, true, 0.01);
  tr::Trainer t(m.g, m.options());
  t.fit(train, {.epochs = 3,
                .batch_size = 6,
                .seed = 6,
                .validation_split = 0.2,
                .progress = tr::Progress::none});
  t.save_model(dir + "/other.kiln");
  EXPECT_NE(a, kiln_test::file_bytes(dir + "/other.kiln"));
  fs::remove_all(dir);
}

TEST(TrainerResume, PairsMatchAndMismatchesAreRefused) {
  const auto train = blobs(30, 26);
  const std::string dir = kiln_test::fresh_dir("pairs");
  Model m;
  tr::Trainer t(m.g, m.options());
  t.fit(train, {.epochs = 2,
                .batch_size = 10,
                .callbacks = {tr::checkpoint({.dir = dir, .every_steps = 1, .keep_last = 3})},
                .progress = tr::Progress::none});
  auto latest = tr::latest_checkpoint(dir);
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->step, 6);
  // The model file of the pair holds the checkpoint's weights.
  auto model = kiln::infer::Model::load(latest->model);
  const auto x = train.rows(0, 5).select({"features"});
  const auto from_file = model.run({{"features", x["features"]}})[0].to_vector<float>();
  EXPECT_EQ(from_file, t.predict(x).to_vector<float>());
  std::size_t files = 0;
  for (const auto& f : fs::directory_iterator(dir)) files += f.is_regular_file();
  EXPECT_EQ(files, 6u);  // 3 pairs

  // A model file that is not the checkpoint's: the newest pair is refused, the one before
  // is used.
  const auto older = tr::latest_checkpoint(dir);
  fs::copy_file(dir + "/model-000000000004.kiln", latest->model,
                fs::copy_options::overwrite_existing);
  Model r;
  tr::Trainer tr2(r.g, r.options());
  EXPECT_EQ(tr2.resume(dir).step, 5);
  // A checkpoint file given directly with a wrong model file next to it: an error.
  EXPECT_THROW(tr2.resume(latest->checkpoint), kiln::ValueError);
  // A checkpoint cut short (a crash mid-write without the atomic rename) is skipped.
  fs::resize_file(dir + "/ckpt-000000000005.kiln", 100);
  EXPECT_EQ(tr::latest_checkpoint(dir)->step, 6);  // envelope of 6 is fine (model differs)
  EXPECT_EQ(tr2.resume(dir).step, 4);
  fs::remove_all(dir);
  (void)older;
}

}  // namespace

namespace {

TEST(TrainerResume, CallbackStateNeedsTheSameCallbacks) {
  const auto train = blobs(20, 27), val = blobs(6, 28);
  const std::string dir = kiln_test::fresh_dir("cb_state");
  {
    Model a;
    tr::Trainer t(a.g, a.options());
    t.fit(train, {.epochs = 2,
                  .batch_size = 10,
                  .validation = &val,
                  .callbacks = {tr::early_stopping({.patience = 3}), tr::checkpoint({.dir = dir})},
                  .progress = tr::Progress::none});
  }
  Model b;
  tr::Trainer t(b.g, b.options());
  t.resume(dir);
  try {
    t.fit(train,
          {.epochs = 3, .batch_size = 10, .validation = &val, .progress = tr::Progress::none});
    FAIL() << "no error";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("0.early_stopping"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
