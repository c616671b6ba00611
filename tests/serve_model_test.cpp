// The versions of a served model (src/serve/served_model.cpp): loading from a file or a
// registry reference, hot reload when the alias moves (and the refusals: an incompatible
// signature, a tampered stored file), pinned references, the feedback log routing labels to
// the monitor of the version that predicted, snapshots read back with read_drift_snapshot,
// and switching while other threads run requests.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/mlops/drift.hpp"
#include "kiln/mlops/pipeline.hpp"
#include "kiln/mlops/registry.hpp"
#include "serve/serve_internal.hpp"
#include "support/monitor_test_support.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace reg = kiln::registry;
using kiln::serve::ModelSource;
using kiln::serve::ServerOptions;
using kiln::serve::detail::LoadedVersion;
using kiln::serve::detail::ServedModel;

/// A digits MLP (`width` inputs named "pixels", 16 hidden, 10 classes "0".."9") whose
/// weights come from `seed`; with a drift profile (built on digits' training split) when
/// `width` is 64.
void save_digits_model(const fs::path& path, std::uint64_t seed, std::int64_t width = 64) {
  kiln_test::Lcg rng{seed};
  kiln::Graph g;
  auto x = g.input("pixels", {kiln::batch, width});
  auto w1 = g.parameter("w1", kiln_test::lcg_tensor(rng, {width, 16}, 0.1f));
  auto b1 = g.parameter("b1", kiln_test::lcg_tensor(rng, {16}, 0.1f));
  auto w2 = g.parameter("w2", kiln_test::lcg_tensor(rng, {16, 10}, 0.3f));
  auto b2 = g.parameter("b2", kiln_test::lcg_tensor(rng, {10}, 0.1f));
  auto p = kiln::softmax(kiln::matmul(kiln::relu(kiln::matmul(x, w1) + b1), w2) + b2);
  kiln::SaveOptions save{.inputs = {x}, .outputs = {p}};
  save.output_names = {"probabilities"};
  save.metadata.name = "digits";
  for (int c = 0; c < 10; ++c) save.metadata.labels.push_back(std::to_string(c));
  save.creation_time = "2026-01-01T00:00:00Z";
  if (width == 64) {
    auto [train, holdout] = kiln_test::digits_split();
    const auto model = kiln::infer::Model::load(kiln::serialize_model(g, save), "digits");
    const kiln::Tensor probs = model.run({{"pixels", holdout["features"]}})[0];
    const kiln::monitor::Profile profile =
        kiln::monitor::build_profile({.input = "pixels",
                                      .features = train["features"],
                                      .feature_names = train.info().feature_names,
                                      .predictions = probs,
                                      .predicted = kiln::monitor::PredictionKind::classes,
                                      .output = "probabilities",
                                      .labels = save.metadata.labels,
                                      .metrics = {{"accuracy", 0.5}}});
    save.sections[kiln::monitor::profile_section] = profile.to_bytes();
  }
  kiln::save_model(path.string(), g, save);
}

void write_text_file(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

/// The first `rows` held-out digits rows.
kiln::Tensor digits_rows(std::int64_t rows) {
  static const kiln::Tensor all = kiln_test::digits_split().second["features"];
  return all.rows(0, rows);
}

/// Index of the largest value of each row of [rows, classes].
std::vector<double> argmax_rows(const kiln::Tensor& probs) {
  const std::vector<float> v = probs.to_vector<float>();
  const std::int64_t classes = probs.shape()[1];
  std::vector<double> out;
  for (std::int64_t r = 0; r < probs.shape()[0]; ++r) {
    const auto row = v.begin() + r * classes;
    out.push_back(static_cast<double>(std::max_element(row, row + classes) - row));
  }
  return out;
}

class ServeModel : public kiln_test::TempDirTest {
 protected:
  ServeModel() : TempDirTest("kiln_serve_model_test_") {}

  /// A registry "digits" with versions 1 and 2 (compatible, different weights) and 3 (32
  /// inputs: incompatible); production -> 1.
  reg::Registry& registry() {
    if (!registry_) {
      registry_ = std::make_unique<reg::Registry>(reg::open(path("registry").string()));
      for (const auto& [seed, width] : {std::pair{1, 64}, std::pair{2, 64}, std::pair{3, 32}}) {
        const fs::path file = path("v" + std::to_string(seed) + ".kiln");
        save_digits_model(file, static_cast<std::uint64_t>(seed), width);
        registry_->register_model("digits", file.string());
      }
      registry_->set_alias("digits", "production", 1);
    }
    return *registry_;
  }

  ServerOptions options() const {
    ServerOptions o;
    o.registry_dir = path("registry").string();
    return o;
  }

  std::unique_ptr<reg::Registry> registry_;
};

TEST_F(ServeModel, LoadsAFileAndAnAlias) {
  save_digits_model(path("my-model.kiln"), 5);
  ServedModel file(ModelSource{.reference = path("my-model.kiln").string()}, nullptr, options());
  EXPECT_EQ(file.name(), "my-model");
  const auto v = file.current();
  EXPECT_EQ(v->version, "file");
  EXPECT_EQ(v->hash, kiln::infer::Model::load(path("my-model.kiln").string()).content_hash());
  ASSERT_NE(v->monitor, nullptr);  // the file has a profile
  EXPECT_EQ(v->monitor->profile().input, "pixels");
  EXPECT_FALSE(file.check_for_update());  // a file never reloads

  ServedModel alias(ModelSource{.reference = "digits@production"}, &registry(), options());
  EXPECT_EQ(alias.name(), "digits");
  EXPECT_EQ(alias.current()->version, "1");
  EXPECT_EQ(alias.current()->hash, registry().resolve("digits:1").hash);
  EXPECT_EQ(alias.current()->path, registry().resolve("digits:1").path);
  const kiln::serve::ModelStatus s = alias.status();
  EXPECT_EQ(s.name, "digits");
  EXPECT_EQ(s.reference, "digits@production");
  EXPECT_EQ(s.version, "1");
  EXPECT_EQ(s.state, "serving");
  EXPECT_EQ(s.reloads, 0);

  // A file named by path is a file even when a registry is given.
  ServedModel named(ModelSource{.name = "a.b_c-1", .reference = path("my-model.kiln").string()},
                    &registry(), options());
  EXPECT_EQ(named.name(), "a.b_c-1");
  EXPECT_EQ(named.current()->version, "file");

  // A model without a profile is served unmonitored.
  save_digits_model(path("narrow.kiln"), 5, 32);
  ServedModel narrow(ModelSource{.reference = path("narrow.kiln").string()}, nullptr, options());
  EXPECT_EQ(narrow.current()->monitor, nullptr);
  narrow.write_snapshot(path("none").string());  // nothing to write
  EXPECT_FALSE(fs::exists(path("none")));
}

TEST_F(ServeModel, RefusesBadNamesAndReferences) {
  for (const char* bad : {"has space", "a/b", "q?", "caf\xc3\xa9"}) {
    EXPECT_THROW(ServedModel(ModelSource{.name = bad, .reference = "digits@production"},
                             &registry(), options()),
                 kiln::ValueError)
        << bad;
  }
  try {
    ServedModel(ModelSource{.reference = "digits@staging"}, &registry(), options());
    FAIL() << "no staging alias";
  } catch (const kiln::NameError& e) {
    EXPECT_NE(std::string(e.what()).find("staging"), std::string::npos) << e.what();
  }
  // A file stem that is not a name: the message says how to name it.
  save_digits_model(path("my model.kiln"), 5);
  try {
    ServedModel(ModelSource{.reference = path("my model.kiln").string()}, nullptr, options());
    FAIL() << "a space in the name";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'my model'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NAME="), std::string::npos) << e.what();
  }
  EXPECT_THROW(
      ServedModel(ModelSource{.reference = path("missing.kiln").string()}, nullptr, options()),
      kiln::IoError);
}

TEST_F(ServeModel, FollowsPromotionAndRollback) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  const std::shared_ptr<const LoadedVersion> before = m.current();
  EXPECT_FALSE(m.check_for_update());  // the alias has not moved

  registry().set_alias("digits", "production", 2);
  EXPECT_TRUE(m.check_for_update());
  EXPECT_EQ(m.current()->version, "2");
  EXPECT_EQ(m.current()->hash, registry().resolve("digits:2").hash);
  EXPECT_EQ(m.status().reloads, 1);
  EXPECT_EQ(m.status().state, "serving");
  EXPECT_FALSE(m.check_for_update());  // once

  // The version a request took before the switch still runs, and is still version 1.
  EXPECT_EQ(before->version, "1");
  const kiln::Tensor x = digits_rows(4);
  const auto direct1 =
      kiln::infer::Model::load(registry().resolve("digits:1").path).run({{"pixels", x}})[0];
  EXPECT_EQ(before->model.run({{"pixels", x}})[0].to_vector<float>(), direct1.to_vector<float>());

  EXPECT_EQ(registry().rollback("digits", "production"), 1);
  EXPECT_TRUE(m.check_for_update());
  EXPECT_EQ(m.current()->version, "1");
  EXPECT_EQ(m.status().reloads, 2);
  EXPECT_EQ(m.status().refused_reloads, 0);
}

TEST_F(ServeModel, RefusesAnIncompatibleVersionAndKeepsServing) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  registry().set_alias("digits", "production", 3);  // 32 inputs
  EXPECT_FALSE(m.check_for_update());
  EXPECT_EQ(m.current()->version, "1");
  kiln::serve::ModelStatus s = m.status();
  EXPECT_EQ(s.refused_reloads, 1);
  EXPECT_EQ(s.reloads, 0);
  EXPECT_EQ(s.state,
            "serving (reload refused: version 3 is incompatible with version 1: input 'pixels' "
            "has shape [batch, 32] instead of [batch, 64])");
  // Not tried again while the alias stays there.
  EXPECT_FALSE(m.check_for_update());
  EXPECT_FALSE(m.check_for_update());
  EXPECT_EQ(m.status().refused_reloads, 1);
  // The old version still answers.
  const auto out = m.current()->model.run({{"pixels", digits_rows(2)}});
  EXPECT_EQ(out[0].shape(), kiln::Shape({2, 10}));

  // A later move to a good version is taken, and clears the state.
  registry().set_alias("digits", "production", 2);
  EXPECT_TRUE(m.check_for_update());
  s = m.status();
  EXPECT_EQ(s.version, "2");
  EXPECT_EQ(s.state, "serving");
  EXPECT_EQ(s.refused_reloads, 1);
  EXPECT_EQ(s.reloads, 1);
}

TEST(ServeIncompatibility, NamesWhatDiffers) {
  const fs::path dir = fs::temp_directory_path() / "kiln_serve_incompat_test";
  fs::create_directories(dir);
  save_digits_model(dir / "a.kiln", 1);
  save_digits_model(dir / "b.kiln", 2);
  // Other output name and no labels.
  {
    kiln_test::Lcg rng{3};
    kiln::Graph g;
    auto x = g.input("pixels", {kiln::batch, 64});
    auto w = g.parameter("w", kiln_test::lcg_tensor(rng, {64, 10}, 0.1f));
    kiln::SaveOptions save{.inputs = {x}, .outputs = {kiln::softmax(kiln::matmul(x, w))}};
    save.output_names = {"scores"};
    kiln::save_model((dir / "c.kiln").string(), g, save);
    save.output_names = {"probabilities"};
    kiln::save_model((dir / "d.kiln").string(), g, save);
  }
  ServerOptions o;
  const auto a = kiln::serve::detail::load_version((dir / "a.kiln").string(), "1", o);
  const auto b = kiln::serve::detail::load_version((dir / "b.kiln").string(), "2", o);
  const auto c = kiln::serve::detail::load_version((dir / "c.kiln").string(), "3", o);
  const auto d = kiln::serve::detail::load_version((dir / "d.kiln").string(), "4", o);
  EXPECT_EQ(kiln::serve::detail::incompatibility(*a, *b), "");
  EXPECT_EQ(kiln::serve::detail::incompatibility(*a, *c),
            "version 3 is incompatible with version 1: output 0 is named 'scores' instead of "
            "'probabilities'");
  EXPECT_EQ(kiln::serve::detail::incompatibility(*a, *d),
            "version 4 is incompatible with version 1: 0 class labels instead of 10");
  fs::remove_all(dir);
}

TEST_F(ServeModel, RefusesATamperedStoredFile) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  // Version 2's stored file replaced by another valid model: its hash no longer matches.
  const std::string stored = registry().resolve("digits:2").path;
  save_digits_model(path("other.kiln"), 9);
  fs::copy_file(path("other.kiln"), stored, fs::copy_options::overwrite_existing);
  registry().set_alias("digits", "production", 2);
  EXPECT_FALSE(m.check_for_update());
  EXPECT_EQ(m.current()->version, "1");
  const kiln::serve::ModelStatus s = m.status();
  EXPECT_EQ(s.refused_reloads, 1);
  EXPECT_TRUE(s.state.starts_with("serving (reload refused: version 2: ")) << s.state;
  EXPECT_NE(s.state.find(stored), std::string::npos) << s.state;
  EXPECT_NE(s.state.find("tampered"), std::string::npos) << s.state;
  EXPECT_FALSE(m.check_for_update());
  EXPECT_EQ(m.status().refused_reloads, 1);

  // Rolled back to the serving version: the state clears; moving to 2 again tries it again.
  registry().set_alias("digits", "production", 1);
  EXPECT_FALSE(m.check_for_update());
  EXPECT_EQ(m.status().state, "serving");
  registry().set_alias("digits", "production", 2);
  EXPECT_FALSE(m.check_for_update());
  EXPECT_EQ(m.status().refused_reloads, 2);
}

TEST_F(ServeModel, RegistryErrorsWhilePollingKeepServing) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  registry().remove_alias("digits", "production");
  EXPECT_FALSE(m.check_for_update());
  EXPECT_FALSE(m.check_for_update());
  const kiln::serve::ModelStatus s = m.status();
  EXPECT_EQ(s.version, "1");
  EXPECT_EQ(s.refused_reloads, 1);  // one message, counted once
  EXPECT_TRUE(s.state.starts_with("serving (reload refused: registry: ")) << s.state;
  EXPECT_NE(s.state.find("production"), std::string::npos) << s.state;
  registry().set_alias("digits", "production", 2);
  EXPECT_TRUE(m.check_for_update());
  EXPECT_EQ(m.status().state, "serving");
}

TEST_F(ServeModel, PinnedReferencesNeverReloadAndBareNamesFollowTheNewest) {
  ServedModel pinned(ModelSource{.reference = "digits:2"}, &registry(), options());
  ServedModel latest(ModelSource{.name = "newest", .reference = "digits"}, &registry(), options());
  EXPECT_EQ(pinned.current()->version, "2");
  EXPECT_EQ(latest.current()->version, "3");
  save_digits_model(path("v4.kiln"), 4);
  registry().register_model("digits", path("v4.kiln").string());
  registry().set_alias("digits", "production", 4);
  EXPECT_FALSE(pinned.check_for_update());
  EXPECT_EQ(pinned.current()->version, "2");
  EXPECT_EQ(pinned.status().state, "serving");
  // Version 4 is compatible with version 3's... no: 3 has 32 inputs, 4 has 64: refused.
  EXPECT_FALSE(latest.check_for_update());
  EXPECT_EQ(latest.current()->version, "3");
  EXPECT_EQ(latest.status().refused_reloads, 1);
  save_digits_model(path("v5.kiln"), 5, 32);
  registry().register_model("digits", path("v5.kiln").string());
  EXPECT_TRUE(latest.check_for_update());
  EXPECT_EQ(latest.current()->version, "5");
}

TEST_F(ServeModel, FeedbackGoesToTheMonitorOfThePredictingVersion) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  const kiln::Tensor x = digits_rows(50);
  // 30 rows predicted by version 1, then a switch, 20 rows predicted by version 2.
  const auto v1 = m.current();
  const std::vector<double> p1 = argmax_rows(v1->model.run({{"pixels", x.rows(0, 30)}})[0]);
  const std::vector<std::string> ids1 = m.remember(v1, p1);
  registry().set_alias("digits", "production", 2);
  ASSERT_TRUE(m.check_for_update());
  const auto v2 = m.current();
  const std::vector<double> p2 = argmax_rows(v2->model.run({{"pixels", x.rows(30, 50)}})[0]);
  const std::vector<std::string> ids2 = m.remember(v2, p2);
  ASSERT_EQ(ids1.size(), 30u);
  EXPECT_EQ(ids1[0], "1-000000000001");
  EXPECT_EQ(ids1[29], "1-000000000030");
  EXPECT_EQ(ids2[0], "2-000000000031");

  // Labels: right for every third row, wrong otherwise; a subset of each version's ids,
  // interleaved, plus ids that were never given.
  std::vector<std::string> ids;
  std::vector<double> labels;
  std::int64_t labelled1 = 0, correct1 = 0, labelled2 = 0, correct2 = 0;
  for (std::size_t i = 0; i < 30; i += 2) {
    const bool right = i % 3 == 0;
    ids.push_back(ids1[i]);
    labels.push_back(right ? p1[i] : std::fmod(p1[i] + 1, 10));
    ++labelled1;
    correct1 += right;
    if (i < 20) {
      ids.push_back(ids2[i]);
      labels.push_back(right ? p2[i] : std::fmod(p2[i] + 3, 10));
      ++labelled2;
      correct2 += right;
    }
  }
  ids.push_back("1-000000000031");  // that sequence was version 2's
  ids.push_back("2-999999999999");
  ids.push_back("nonsense");
  labels.insert(labels.end(), {1, 2, 3});
  std::vector<std::string> unknown;
  EXPECT_EQ(m.feedback(ids, labels, unknown), labelled1 + labelled2);
  EXPECT_EQ(unknown, (std::vector<std::string>{"1-000000000031", "2-999999999999", "nonsense"}));

  const kiln::monitor::LabelMetrics l1 = v1->monitor->report().labels;
  const kiln::monitor::LabelMetrics l2 = v2->monitor->report().labels;
  EXPECT_EQ(l1.labelled, static_cast<std::uint64_t>(labelled1));
  EXPECT_EQ(l2.labelled, static_cast<std::uint64_t>(labelled2));
  EXPECT_EQ(l1.metric, "accuracy");
  EXPECT_DOUBLE_EQ(l1.live, static_cast<double>(correct1) / static_cast<double>(labelled1));
  EXPECT_DOUBLE_EQ(l2.live, static_cast<double>(correct2) / static_cast<double>(labelled2));

  // A label that is not a class index is refused, naming it.
  unknown.clear();
  const std::vector<std::string> one{ids1[1]};
  const std::vector<double> bad{2.5};
  try {
    m.feedback(one, bad, unknown);
    FAIL() << "2.5 is not a class";
  } catch (const kiln::serve::detail::RequestError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find(ids1[1]), std::string::npos) << e.what();
  }
  EXPECT_EQ(v1->monitor->report().labels.labelled, static_cast<std::uint64_t>(labelled1));
}

TEST_F(ServeModel, FeedbackForAValueModelGivesItsLiveMse) {
  // A regression model (64 inputs -> 1 value, no class labels) with a value profile.
  kiln_test::Lcg rng{21};
  kiln::Graph g;
  auto x = g.input("pixels", {kiln::batch, 64});
  auto w = g.parameter("w", kiln_test::lcg_tensor(rng, {64, 1}, 0.1f));
  kiln::SaveOptions save{.inputs = {x}, .outputs = {kiln::matmul(x, w)}};
  save.output_names = {"value"};
  auto [train, holdout] = kiln_test::digits_split();
  const auto reference = kiln::infer::Model::load(kiln::serialize_model(g, save), "value");
  save.sections[kiln::monitor::profile_section] =
      kiln::monitor::build_profile(
          {.input = "pixels",
           .features = train["features"],
           .predictions = reference.run({{"pixels", holdout["features"]}})[0],
           .predicted = kiln::monitor::PredictionKind::values,
           .output = "value",
           .metrics = {{"mse", 1.0}}})
          .to_bytes();
  kiln::save_model(path("value.kiln").string(), g, save);

  ServedModel m(ModelSource{.reference = path("value.kiln").string()}, nullptr, options());
  const auto v = m.current();
  const std::vector<float> out = v->model.run({{"pixels", digits_rows(6)}})[0].to_vector<float>();
  const std::vector<double> predicted(out.begin(), out.end());
  const std::vector<std::string> ids = m.remember(v, predicted);
  EXPECT_EQ(ids[0], "file-000000000001");
  const std::vector<double> labels{predicted[0] + 1, predicted[1] - 2, predicted[2]};
  std::vector<std::string> unknown;
  const std::vector<std::string> three(ids.begin(), ids.begin() + 3);
  EXPECT_EQ(m.feedback(three, labels, unknown), 3);
  const kiln::monitor::LabelMetrics l = v->monitor->report().labels;
  EXPECT_EQ(l.metric, "mse");
  EXPECT_EQ(l.labelled, 3u);
  EXPECT_NEAR(l.live, (1.0 + 4.0 + 0.0) / 3.0, 1e-9);
  // A value label need not be a whole number, but must be finite.
  const std::vector<std::string> one{ids[3]};
  EXPECT_EQ(m.feedback(one, std::vector<double>{0.25}, unknown), 1);
  EXPECT_THROW(m.feedback(std::vector<std::string>{ids[4]}, std::vector<double>{NAN}, unknown),
               kiln::serve::detail::RequestError);
}

TEST_F(ServeModel, FeedbackNeverConvertsWhatIsNotAClass) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  // A NaN prediction (an output without elements) matches no label.
  const std::vector<std::string> ids = m.remember(m.current(), std::vector<double>{NAN, 2});
  std::vector<std::string> unknown;
  EXPECT_EQ(m.feedback(ids, std::vector<double>{3, 2}, unknown), 2);
  const kiln::monitor::LabelMetrics l = m.current()->monitor->report().labels;
  EXPECT_EQ(l.labelled, 2u);
  EXPECT_DOUBLE_EQ(l.live, 0.5);
  for (const double bad : {1e300, -1.0, 0.5, double(INFINITY)})
    EXPECT_THROW(m.feedback(std::vector<std::string>{ids[1]}, std::vector<double>{bad}, unknown),
                 kiln::serve::detail::RequestError)
        << bad;
  EXPECT_EQ(m.current()->monitor->report().labels.labelled, 2u);
}

TEST_F(ServeModel, TheFeedbackRingForgetsTheOldest) {
  ServerOptions o = options();
  o.feedback_capacity = 5;
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), o);
  const std::vector<double> predicted{0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<std::string> ids = m.remember(m.current(), predicted);
  ASSERT_EQ(ids.size(), 8u);
  std::vector<std::string> unknown;
  EXPECT_EQ(m.feedback(ids, predicted, unknown), 5);  // the last five
  EXPECT_EQ(unknown, (std::vector<std::string>{ids[0], ids[1], ids[2]}));
  const kiln::monitor::LabelMetrics l = m.current()->monitor->report().labels;
  EXPECT_EQ(l.labelled, 5u);
  EXPECT_DOUBLE_EQ(l.live, 1.0);
}

TEST_F(ServeModel, SnapshotsReadBackWithTheRowsObserved) {
  ServerOptions o = options();
  o.snapshot_dir = path("snapshots").string();
  fs::create_directories(o.snapshot_dir);
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), o);
  const auto v1 = m.current();
  v1->monitor->run(v1->model, {{"pixels", digits_rows(37)}});
  m.write_snapshot(o.snapshot_dir);
  const kiln::monitor::DriftReport r =
      kiln::mlops::read_drift_snapshot(path("snapshots/digits-v1.json").string());
  EXPECT_EQ(r.rows_observed, 37u);
  EXPECT_EQ(r.model_hash, v1->hash);
  const kiln::monitor::DriftReport stable =
      kiln::mlops::read_drift_snapshot(path("snapshots/digits.json").string());
  EXPECT_EQ(stable.rows_observed, 37u);
  EXPECT_EQ(stable.model_hash, v1->hash);

  // More rows, then a switch: the old version's final counts are written at the switch.
  v1->monitor->run(v1->model, {{"pixels", digits_rows(5)}});
  registry().set_alias("digits", "production", 2);
  ASSERT_TRUE(m.check_for_update());
  EXPECT_EQ(
      kiln::mlops::read_drift_snapshot(path("snapshots/digits-v1.json").string()).rows_observed,
      42u);
  const auto v2 = m.current();
  v2->monitor->run(v2->model, {{"pixels", digits_rows(11)}});
  m.write_snapshot(o.snapshot_dir);
  const kiln::monitor::DriftReport r2 =
      kiln::mlops::read_drift_snapshot(path("snapshots/digits-v2.json").string());
  EXPECT_EQ(r2.rows_observed, 11u);
  EXPECT_EQ(r2.model_hash, registry().resolve("digits:2").hash);
  EXPECT_EQ(kiln::mlops::read_drift_snapshot(path("snapshots/digits.json").string()).model_hash,
            r2.model_hash);
  // A folder that cannot be written: IoError naming the file.
  write_text_file(path("not-a-folder"), "x");
  try {
    m.write_snapshot(path("not-a-folder").string());
    FAIL() << "not a folder";
  } catch (const kiln::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("digits-v2.json"), std::string::npos) << e.what();
  }
  // No temporary files left behind.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(o.snapshot_dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"digits-v1.json", "digits-v2.json", "digits.json"}));
}

TEST_F(ServeModel, LabelsForAReplacedVersionReachItsSnapshotAndARollbackContinuesItsCounts) {
  ServerOptions o = options();
  o.snapshot_dir = path("snapshots").string();
  fs::create_directories(o.snapshot_dir);
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), o);
  const auto v1 = m.current();
  const kiln::Tensor x = digits_rows(12);
  const std::vector<double> p1 = argmax_rows(v1->monitor->run(v1->model, {{"pixels", x}})[0]);
  const std::vector<std::string> ids = m.remember(v1, p1);
  registry().set_alias("digits", "production", 2);
  ASSERT_TRUE(m.check_for_update());
  const auto path_v1 = path("snapshots/digits-v1.json").string();
  EXPECT_EQ(kiln::mlops::read_drift_snapshot(path_v1).labels.labelled, 0u);

  // Labels for 4 of version 1's rows arrive after the switch (3 right, 1 wrong): the next
  // snapshot rewrites version 1's file too.
  const std::vector<std::string> first(ids.begin(), ids.begin() + 4);
  std::vector<double> labels(p1.begin(), p1.begin() + 4);
  labels[2] = std::fmod(labels[2] + 1, 10);
  std::vector<std::string> unknown;
  EXPECT_EQ(m.feedback(first, labels, unknown), 4);
  m.write_snapshot(o.snapshot_dir);
  kiln::monitor::DriftReport r1 = kiln::mlops::read_drift_snapshot(path_v1);
  EXPECT_EQ(r1.rows_observed, 12u);
  EXPECT_EQ(r1.labels.labelled, 4u);
  EXPECT_DOUBLE_EQ(r1.labels.live, 0.75);
  EXPECT_EQ(r1.model_hash, v1->hash);
  EXPECT_EQ(kiln::mlops::read_drift_snapshot(path("snapshots/digits.json").string()).model_hash,
            registry().resolve("digits:2").hash);

  // Back to version 1: a new load that continues the first load's monitor (its counts, and
  // the labels for its ids).
  registry().rollback("digits", "production");
  ASSERT_TRUE(m.check_for_update());
  const auto back = m.current();
  ASSERT_NE(back, v1);
  EXPECT_EQ(back->version, "1");
  const std::vector<std::string> more{ids[4], ids[5]};
  EXPECT_EQ(m.feedback(more, std::vector<double>{p1[4], p1[5]}, unknown), 2);
  EXPECT_TRUE(unknown.empty());
  const kiln::monitor::DriftReport now = back->monitor->report();
  EXPECT_EQ(now.rows_observed, 12u);
  EXPECT_EQ(now.labels.labelled, 6u);
  EXPECT_DOUBLE_EQ(now.labels.live, 5.0 / 6.0);
  EXPECT_EQ(back->monitor, v1->monitor);
  m.write_snapshot(o.snapshot_dir);
  r1 = kiln::mlops::read_drift_snapshot(path_v1);
  EXPECT_EQ(r1.rows_observed, 12u);
  EXPECT_EQ(r1.labels.labelled, 6u);
}

/// The summary of a pipeline's trigger step (the run is stopped right after it).
std::string ct_trigger(const std::string& registry_dir, const std::string& snapshot,
                       const std::string& work_dir) {
  kiln::mlops::PipelineSpec spec;
  spec.name = "digits";
  spec.registry = registry_dir;
  spec.spec = std::string(KILN_DATASETS_DIR) + "/../examples/specs/digits.json";
  spec.train_data = std::string(KILN_DATASETS_DIR) + "/digits.csv";
  spec.holdout = spec.train_data;
  spec.trigger = kiln::mlops::TriggerType::drift;
  spec.trigger_snapshot = snapshot;
  spec.work_dir = work_dir;
  spec.gate["accuracy"] = {.min = 0.5};
  struct Stop {};
  std::string summary;
  try {
    kiln::mlops::run_pipeline(spec,
                              {.on_step = [&](const std::string& step, const std::string& line) {
                                if (step != "trigger") return;
                                summary = line;
                                throw Stop{};
                              }});
  } catch (const Stop&) {
  }
  return summary;
}

TEST_F(ServeModel, TheStableSnapshotDrivesTheDriftTriggerOfProductionOnly) {
  ServerOptions o = options();
  o.snapshot_dir = path("snapshots").string();
  fs::create_directories(o.snapshot_dir);
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), o);
  // 150 rows unlike anything in the profile (every pixel 16): drift on version 1.
  const auto v1 = m.current();
  v1->monitor->run(v1->model, {{"pixels", kiln::Tensor::full({150, 64}, 16.0)}});
  m.write_snapshot(o.snapshot_dir);
  const std::string stable = path("snapshots/digits.json").string();
  ASSERT_TRUE(kiln::mlops::read_drift_snapshot(stable).drifted);
  std::string t = ct_trigger(path("registry").string(), stable, path("ct").string());
  EXPECT_TRUE(t.starts_with("fired: digits.json: drift detected")) << t;

  // Promoted: until the new version's first snapshot, the file is of the replaced one and
  // the trigger skips it; then it is the new version's (no drift yet).
  registry().set_alias("digits", "production", 2);
  ASSERT_TRUE(m.check_for_update());
  t = ct_trigger(path("registry").string(), stable, path("ct").string());
  EXPECT_TRUE(t.starts_with("not fired: digits.json was taken on another model")) << t;
  EXPECT_NE(t.find("already replaced"), std::string::npos) << t;
  m.write_snapshot(o.snapshot_dir);
  t = ct_trigger(path("registry").string(), stable, path("ct").string());
  EXPECT_TRUE(t.starts_with("not fired: digits.json: no drift")) << t;
}

TEST_F(ServeModel, SwitchingWhileRequestsRunDropsNothing) {
  ServedModel m(ModelSource{.reference = "digits@production"}, &registry(), options());
  const kiln::Tensor x = digits_rows(8);
  // The answers of each version, from the registered files run directly.
  std::map<std::string, std::vector<float>> expected;
  for (const char* v : {"1", "2"})
    expected[v] = kiln::infer::Model::load(registry().resolve(std::string("digits:") + v).path)
                      .run({{"pixels", x}})[0]
                      .to_vector<float>();
  float apart = 0;
  for (std::size_t i = 0; i < expected["1"].size(); ++i)
    apart = std::max(apart, std::abs(expected["1"][i] - expected["2"][i]));
  ASSERT_GT(apart, 1e-2f);  // the versions are told apart by their answers

  // Each client also posts labels for its rows at once (half right): every row and every
  // label must reach the monitor of the version that ran it, across loads of the version.
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> wrong{0}, answered{0}, labelled1{0}, labelled2{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t)
    clients.emplace_back([&] {
      while (!stop.load()) {
        const std::shared_ptr<const LoadedVersion> v = m.current();
        // As the batcher runs a batch: through the version's monitor.
        const kiln::Tensor probs = v->monitor->run(v->model, {{"pixels", x}})[0];
        const std::vector<float> got = probs.to_vector<float>();
        const std::vector<float>& want = expected.at(v->version);
        for (std::size_t i = 0; i < got.size(); ++i)
          if (std::abs(got[i] - want[i]) > 1e-5f) {
            ++wrong;
            break;
          }
        ++answered;
        const std::vector<double> predicted = argmax_rows(probs);
        const std::vector<std::string> ids = m.remember(v, predicted);
        std::vector<double> labels = predicted;
        for (std::size_t i = 4; i < labels.size(); ++i) labels[i] = std::fmod(labels[i] + 1, 10);
        std::vector<std::string> unknown;
        (v->version == "1" ? labelled1 : labelled2) += m.feedback(ids, labels, unknown);
        wrong += static_cast<std::int64_t>(unknown.size());
      }
    });
  std::int64_t switches = 0;
  for (int i = 0; i < 20; ++i) {
    registry().set_alias("digits", "production", i % 2 == 0 ? 2 : 1);
    switches += m.check_for_update();
    EXPECT_EQ(m.current()->version, i % 2 == 0 ? "2" : "1");
  }
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(switches, 20);
  EXPECT_EQ(m.status().reloads, 20);
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  // Version 1 serves (its monitor continues every earlier one of version 1); then 2.
  kiln::monitor::DriftReport r = m.current()->monitor->report();
  kiln::monitor::LabelMetrics l = r.labels;
  EXPECT_EQ(m.current()->version, "1");
  EXPECT_EQ(r.rows_observed, static_cast<std::uint64_t>(labelled1.load()));  // all labelled
  EXPECT_EQ(l.labelled, static_cast<std::uint64_t>(labelled1.load()));
  if (l.labelled > 0) {
    EXPECT_DOUBLE_EQ(l.live, 0.5);
  }
  registry().set_alias("digits", "production", 2);
  ASSERT_TRUE(m.check_for_update());
  r = m.current()->monitor->report();
  l = r.labels;
  EXPECT_EQ(r.rows_observed, static_cast<std::uint64_t>(labelled2.load()));
  EXPECT_EQ(l.labelled, static_cast<std::uint64_t>(labelled2.load()));
  if (l.labelled > 0) {
    EXPECT_DOUBLE_EQ(l.live, 0.5);
  }
  EXPECT_EQ(labelled1.load() + labelled2.load(), answered.load() * 8);
}

}  // namespace
