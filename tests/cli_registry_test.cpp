// `kiln registry ...` run as a user would: register (idempotent), list, show, promote, alias
// set/rm, rollback, diff, log and verify, their --json output parsed back and compared with
// the files (kiln::model_content_hash, the SHA-256 of "abc" from FIPS 180-4), exit codes of
// errors, and where the registry folder is (--registry, $KILN_REGISTRY, ./models).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "kiln/io/model_file.hpp"
#include "tests/mlops_registry_support.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class CliRegistry : public kiln_test::CliTest {
 protected:
  CliRegistry() : CliTest("kiln_cli_registry_test_") {}

  // tiny<seed>.kiln in the test folder, with these metrics.
  std::string model(std::uint64_t seed, std::vector<std::pair<std::string, double>> metrics = {}) {
    const std::string name = "tiny" + std::to_string(seed) + ".kiln";
    kiln_test::save_tiny_model(path(name), {.seed = seed, .metrics = std::move(metrics)});
    return name;
  }
};

TEST_F(CliRegistry, RegistersOnceAndListsAndShowsVersions) {
  const std::string a = model(1, {{"test_accuracy", 0.9}});
  const std::string b = model(2, {{"test_accuracy", 0.95}});
  kiln_test::write(path("abc.csv"), "abc");
  json j = kiln_json("registry register tiny " + a +
                     " --data abc.csv --run-dir runs/one --note 'first one' --json");
  EXPECT_EQ(j["registered"], true);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["reference"], "tiny:1");
  EXPECT_EQ(j["hash"], kiln::model_content_hash(path(a).string()));
  // Default folder: ./models.
  EXPECT_TRUE(fs::exists(path("models") / "registry.db"));
  EXPECT_TRUE(fs::exists(dir_ / j["path"].get<std::string>()));

  j = kiln_json("registry register tiny " + a + " --json");  // again: nothing new
  EXPECT_EQ(j["registered"], false);
  EXPECT_EQ(j["version"], 1);
  kiln_test::CliResult text = kiln("registry register tiny " + a);
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("not registered again"), std::string::npos) << text.out;
  text = kiln("registry register tiny " + b + " --parent 1");
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("registered tiny:2"), std::string::npos) << text.out;

  j = kiln_json("registry list --json");
  EXPECT_EQ(j["registry"], "models");
  ASSERT_EQ(j["models"].size(), 1u);
  EXPECT_EQ(j["models"][0]["name"], "tiny");
  EXPECT_EQ(j["models"][0]["versions"], 2);
  EXPECT_EQ(j["models"][0]["latest"], 2);

  j = kiln_json("registry list tiny --json");
  ASSERT_EQ(j["versions"].size(), 2u);
  EXPECT_EQ(j["versions"][1]["hash"], kiln::model_content_hash(path(b).string()));
  EXPECT_EQ(j["versions"][1]["lineage"]["parent"], 1);
  EXPECT_TRUE(j["versions"][0]["lineage"]["parent"].is_null());

  j = kiln_json("registry show tiny:1 --json");
  const json& l = j["lineage"];
  EXPECT_EQ(l["note"], "first one");
  EXPECT_EQ(l["run_dir"], "runs/one");
  EXPECT_DOUBLE_EQ(l["metrics"]["test_accuracy"].get<double>(), 0.9);
  ASSERT_EQ(l["data"].size(), 1u);
  EXPECT_EQ(l["data"][0]["path"], "abc.csv");
  EXPECT_EQ(l["data"][0]["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(l["spec"]["training"]["optimizer"]["lr"], 0.003);  // the spec, as JSON
  EXPECT_EQ(l["params"]["optimizer.lr"], "0.003");
  EXPECT_EQ(kiln_json("registry show tiny --json")["version"], 2);  // the newest

  text = kiln("registry list tiny");
  EXPECT_EQ(kiln_test::lines(text.out).size(), 2u) << text.out;
  EXPECT_NE(text.out.find("test_accuracy=0.9"), std::string::npos) << text.out;
}

TEST_F(CliRegistry, PromotesRollsBackAndLogs) {
  for (std::uint64_t s = 1; s <= 3; ++s)
    ASSERT_EQ(kiln("registry register tiny " + model(s)).rc, 0);
  json j = kiln_json("registry promote tiny 1 --json");
  EXPECT_EQ(j["alias"], "production");
  EXPECT_EQ(j["version"], 1);
  EXPECT_TRUE(j["previous"].is_null());
  j = kiln_json("registry promote tiny 3 --json");
  EXPECT_EQ(j["previous"], 1);
  EXPECT_EQ(kiln_json("registry show tiny@production --json")["version"], 3);
  j = kiln_json("registry alias set tiny staging 2 --json");
  EXPECT_EQ(j["alias"], "staging");
  EXPECT_EQ(kiln_json("registry show tiny@staging --json")["aliases"], json({"staging"}));

  j = kiln_json("registry rollback tiny --json");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["previous"], 3);
  kiln_test::CliResult r = kiln("registry rollback tiny");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("kiln: cannot roll back tiny@production"), std::string::npos) << r.err;

  j = kiln_json("registry alias rm tiny staging --json");
  EXPECT_EQ(j["previous"], 2);
  EXPECT_TRUE(j["version"].is_null());
  r = kiln("registry show tiny@staging");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("no alias 'staging'"), std::string::npos) << r.err;

  j = kiln_json("registry log tiny --json");
  std::vector<std::string> actions;
  for (const json& e : j["events"]) actions.push_back(e["action"]);
  EXPECT_EQ(actions,
            (std::vector<std::string>{"register", "register", "register", "alias_set", "alias_set",
                                      "alias_set", "rollback", "alias_removed"}));
  EXPECT_EQ(j["events"][6]["version"], 1);
  EXPECT_EQ(j["events"][6]["previous"], 3);
  EXPECT_EQ(j["events"][6]["source"], "kiln registry rollback");
}

TEST_F(CliRegistry, DiffsTwoVersions) {
  ASSERT_EQ(kiln("registry register tiny " + model(1, {{"test_accuracy", 0.9}}) + " --note a").rc,
            0);
  ASSERT_EQ(kiln("registry register tiny " + model(2, {{"test_accuracy", 0.75}}) + " --note b").rc,
            0);
  ASSERT_EQ(kiln("registry promote tiny 2").rc, 0);
  const json j = kiln_json("registry diff tiny:1 tiny@production --json");
  EXPECT_EQ(j["a"]["version"], 1);
  EXPECT_EQ(j["b"]["version"], 2);
  bool note = false;
  for (const json& f : j["fields"])
    if (f["field"] == "note") {
      note = true;
      EXPECT_EQ(f["a"], "a");
      EXPECT_EQ(f["b"], "b");
    }
  EXPECT_TRUE(note) << j.dump();
  ASSERT_EQ(j["metrics"].size(), 1u);
  EXPECT_EQ(j["metrics"][0]["name"], "test_accuracy");
  EXPECT_DOUBLE_EQ(j["metrics"][0]["a"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(j["metrics"][0]["b"].get<double>(), 0.75);
  const kiln_test::CliResult text = kiln("registry diff tiny:1 tiny:2");
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("metric test_accuracy: 0.9 -> 0.75 (-0.15)"), std::string::npos)
      << text.out;
}

TEST_F(CliRegistry, VerifyFindsATamperedFile) {
  ASSERT_EQ(kiln("registry register tiny " + model(1)).rc, 0);
  ASSERT_EQ(kiln("registry register tiny " + model(2)).rc, 0);
  json j = kiln_json("registry verify --json");
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["versions"], 2);
  EXPECT_TRUE(j["problems"].empty());

  const std::string stored = kiln_json("registry show tiny:1 --json")["path"];
  kiln_test::CliResult p = kiln("registry path tiny:1");
  EXPECT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(p.out, stored + "\n");
  EXPECT_EQ(kiln_json("registry path tiny --json")["version"], 2);
  fs::copy_file(path(model(3)), dir_ / stored, fs::copy_options::overwrite_existing);
  kiln_test::CliResult r = kiln("registry verify --json");
  EXPECT_EQ(r.rc, 3) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["problems"].size(), 1u);
  EXPECT_NE(j["problems"][0].get<std::string>().find(stored), std::string::npos) << j.dump();
  r = kiln("registry path tiny:1");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("tampered"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  r = kiln("registry verify");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.out.find("1 problem"), std::string::npos) << r.out;
}

TEST_F(CliRegistry, FolderFromOptionOrEnvironmentAndErrors) {
  kiln_test::CliResult r = kiln("registry register tiny " + model(1) + " --registry store");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("store") / "registry.db"));
  EXPECT_FALSE(fs::exists(path("models")));
  ::setenv("KILN_REGISTRY", "store", 1);
  const json j = kiln_json("registry list --json");
  ::unsetenv("KILN_REGISTRY");
  EXPECT_EQ(j["registry"], "store");
  EXPECT_EQ(j["models"].size(), 1u);

  r = kiln("registry show nope --registry store");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("kiln: no model named 'nope'"), std::string::npos) << r.err;
  r = kiln("registry show tiny:9 --registry store");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("no version 9"), std::string::npos) << r.err;
  r = kiln("registry register tiny missing.kiln --registry store");
  EXPECT_EQ(r.rc, 4);
  EXPECT_NE(r.err.find("missing.kiln"), std::string::npos) << r.err;
  r = kiln("registry promote tiny 0 --registry store");
  EXPECT_EQ(r.rc, 1);  // a usage error: versions are 1, 2, ...
  kiln_test::write(path("store") / "registry.db", std::string(4096, 'x'));
  r = kiln("registry list --registry store");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("registry.db"), std::string::npos) << r.err;
}

}  // namespace
