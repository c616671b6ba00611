// The model registry's API (kiln/mlops/registry.hpp): register (versions 1, 2, ... per name,
// the file stored once by content hash, lineage defaults from the file), idempotent
// registration, references, aliases and rollback, the event log, diff, load by alias,
// tamper detection, corrupt or foreign databases, unknown names. Expected values come from
// the files themselves (kiln::model_content_hash, the bytes written) and hand-made facts
// (the FIPS 180-4 SHA-256 of "abc").
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/registry.hpp"
#include "kiln/version.hpp"
#include "tests/mlops_registry_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace reg = kiln::registry;
using kiln_test::save_tiny_model;
using kiln_test::TinyModel;

// The message of the kiln::Error subclass E that f throws (a failure if it throws nothing).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception of the expected type";
  return {};
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::uint8_t> bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class Registry : public kiln_test::TempDirTest {
 protected:
  Registry() : TempDirTest("kiln_mlops_registry_test_") {}

  // A model file with seed `seed` in the test folder.
  std::string model(std::uint64_t seed, std::vector<std::pair<std::string, double>> metrics = {},
                    std::string creation_time = "2026-01-01T00:00:00Z") {
    const fs::path p =
        path("m" + std::to_string(seed) + "-" + creation_time.substr(0, 4) + ".kiln");
    save_tiny_model(p,
                    {.seed = seed, .metrics = std::move(metrics), .creation_time = creation_time});
    return p.string();
  }
  std::string store() const { return path("models").string(); }

  // Object files in the store (not temp files).
  std::size_t object_count() const {
    std::size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(path("models") / "objects"))
      n += e.is_regular_file() && e.path().extension() == ".kiln";
    return n;
  }
};

TEST_F(Registry, RegistersVersionsStoredByContentHash) {
  const std::string a = model(1, {{"test_accuracy", 0.9}});
  const std::string b = model(2, {{"test_accuracy", 0.95}});
  reg::Registry r = reg::open(store());
  EXPECT_EQ(r.dir(), store());
  EXPECT_TRUE(fs::exists(path("models") / "registry.db"));

  const reg::Version v1 = r.register_model("tiny", a, {.run_dir = "runs/one", .note = "first"});
  const reg::Version v2 = r.register_model("tiny", b);
  EXPECT_TRUE(v1.registered);
  EXPECT_TRUE(v2.registered);
  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v1.name, "tiny");
  EXPECT_EQ(v1.hash, kiln::model_content_hash(a));
  EXPECT_EQ(v2.hash, kiln::model_content_hash(b));
  EXPECT_NE(v1.hash, v2.hash);
  // Stored at objects/<2 hex>/<hash>.kiln, byte for byte the registered file.
  const fs::path expected = path("models") / "objects" / v1.hash.substr(0, 2) / (v1.hash + ".kiln");
  EXPECT_EQ(fs::path(v1.path), expected);
  EXPECT_EQ(bytes_of(v1.path), bytes_of(a));
  EXPECT_EQ(v1.bytes, fs::file_size(a));
  EXPECT_EQ(v1.created.size(), 20u) << v1.created;  // YYYY-MM-DDTHH:MM:SSZ
  EXPECT_EQ(v1.created.back(), 'Z');

  // Lineage: what was given, and the rest from the file.
  EXPECT_EQ(v1.lineage.run_dir, "runs/one");
  EXPECT_EQ(v1.lineage.note, "first");
  EXPECT_EQ(v1.lineage.source, "user");
  ASSERT_EQ(v1.lineage.metrics.size(), 1u);
  EXPECT_EQ(v1.lineage.metrics[0].first, "test_accuracy");
  EXPECT_DOUBLE_EQ(v1.lineage.metrics[0].second, 0.9);
  EXPECT_EQ(v1.lineage.spec, kiln_test::registry_test_spec);
  EXPECT_EQ(v1.lineage.library_version, kiln::version_string);
  // Hyper-parameters: the spec's "training" object flattened.
  const std::vector<std::pair<std::string, std::string>> params = {
      {"epochs", "30"}, {"optimizer.lr", "0.003"}, {"optimizer.name", "adam"}, {"seed", "42"}};
  EXPECT_EQ(v1.lineage.params, params);

  // Read back from a fresh connection: the same.
  reg::Registry again = reg::open(store() + "/");
  EXPECT_EQ(again.dir(), store());
  EXPECT_EQ(again.resolve("tiny:1").path, v1.path);
  const std::vector<reg::Version> vs = again.versions("tiny");
  ASSERT_EQ(vs.size(), 2u);
  EXPECT_EQ(vs[0].version, 1);
  EXPECT_EQ(vs[0].hash, v1.hash);
  EXPECT_EQ(vs[0].lineage.note, "first");
  EXPECT_EQ(vs[0].lineage.params, params);
  EXPECT_FALSE(vs[0].registered);
  EXPECT_EQ(vs[1].hash, v2.hash);
  EXPECT_DOUBLE_EQ(vs[1].lineage.metrics.at(0).second, 0.95);
  EXPECT_EQ(again.models(), std::vector<std::string>{"tiny"});
  EXPECT_TRUE(again.verify().empty());
}

TEST_F(Registry, RegisteringTheSameContentAgainReturnsItsVersion) {
  reg::Registry r = reg::open(store());
  const reg::Version v1 = r.register_model("tiny", model(1));
  r.register_model("tiny", model(2));
  // The same file, and the same model saved at another time (other provenance bytes, same
  // content hash): version 1 again, not registered.
  const reg::Version again = r.register_model("tiny", model(1));
  const std::string resaved = model(1, {}, "2027-05-05T10:00:00Z");
  ASSERT_NE(bytes_of(resaved), bytes_of(model(1)));
  const reg::Version resaved_v = r.register_model("tiny", resaved);
  for (const reg::Version& v : {again, resaved_v}) {
    EXPECT_FALSE(v.registered);
    EXPECT_EQ(v.version, 1);
    EXPECT_EQ(v.hash, v1.hash);
  }
  EXPECT_EQ(r.versions("tiny").size(), 2u);
  // Another model name may hold the same file: its own version 1, one stored object.
  const reg::Version other = r.register_model("other", model(1));
  EXPECT_TRUE(other.registered);
  EXPECT_EQ(other.version, 1);
  EXPECT_EQ(object_count(), 2u);
  // Only real registrations are logged.
  std::size_t registers = 0;
  for (const reg::Event& e : r.events()) registers += e.action == "register";
  EXPECT_EQ(registers, 3u);
  EXPECT_EQ(r.models(), (std::vector<std::string>{"other", "tiny"}));
}

TEST_F(Registry, ReferencesAliasesAndRollback) {
  reg::Registry r = reg::open(store());
  for (std::uint64_t s = 1; s <= 3; ++s) r.register_model("tiny", model(s));
  EXPECT_EQ(r.resolve("tiny").version, 3);  // the newest
  EXPECT_EQ(r.resolve("tiny:2").version, 2);
  EXPECT_EQ(r.resolve("tiny:2").hash, kiln::model_content_hash(model(2)));

  r.set_alias("tiny", "production", 1);
  r.set_alias("tiny", "production", 2, "ci");
  r.set_alias("tiny", "production", 2);  // no move: not logged
  r.set_alias("tiny", "production", 3);
  r.set_alias("tiny", "staging", 3);
  EXPECT_EQ(r.resolve("tiny@production").version, 3);
  const std::vector<reg::Version> vs = r.versions("tiny");
  EXPECT_TRUE(vs[0].aliases.empty());
  EXPECT_EQ(vs[2].aliases, (std::vector<std::string>{"production", "staging"}));
  EXPECT_EQ(r.resolve("tiny:3").aliases, (std::vector<std::string>{"production", "staging"}));

  EXPECT_EQ(r.rollback("tiny", "production"), 2);
  EXPECT_EQ(r.resolve("tiny@production").version, 2);
  EXPECT_EQ(r.rollback("tiny", "production"), 1);
  EXPECT_EQ(r.resolve("tiny@production").version, 1);
  const std::string why = error_of<kiln::ValueError>([&] { r.rollback("tiny", "production"); });
  EXPECT_NE(why.find("tiny@production"), std::string::npos) << why;
  EXPECT_EQ(r.resolve("tiny@staging").version, 3);  // untouched
  // Moving after a rollback starts from where it is: 1 -> 3, back to 1.
  r.set_alias("tiny", "production", 3);
  EXPECT_EQ(r.rollback("tiny", "production"), 1);

  r.remove_alias("tiny", "staging");
  const std::string gone = error_of<kiln::NameError>([&] { r.resolve("tiny@staging"); });
  EXPECT_NE(gone.find("staging"), std::string::npos) << gone;
  EXPECT_NE(gone.find("production"), std::string::npos) << gone;  // the aliases it has
  EXPECT_THROW(r.rollback("tiny", "staging"), kiln::NameError);
  EXPECT_THROW(r.remove_alias("tiny", "staging"), kiln::NameError);
  // A removal ends the history: set again, there is nothing to roll back to.
  r.set_alias("tiny", "staging", 2);
  EXPECT_THROW(r.rollback("tiny", "staging"), kiln::ValueError);

  // The log, in order.
  struct Expected {
    const char* action;
    const char* alias;
    std::optional<std::int64_t> version, previous;
    const char* source;
  };
  const std::vector<Expected> expected = {
      {"register", "", 1, {}, "user"},          {"register", "", 2, {}, "user"},
      {"register", "", 3, {}, "user"},          {"alias_set", "production", 1, {}, "user"},
      {"alias_set", "production", 2, 1, "ci"},  {"alias_set", "production", 3, 2, "user"},
      {"alias_set", "staging", 3, {}, "user"},  {"rollback", "production", 2, 3, "user"},
      {"rollback", "production", 1, 2, "user"}, {"alias_set", "production", 3, 1, "user"},
      {"rollback", "production", 1, 3, "user"}, {"alias_removed", "staging", {}, 3, "user"},
      {"alias_set", "staging", 2, {}, "user"},
  };
  const std::vector<reg::Event> events = r.events("tiny");
  ASSERT_EQ(events.size(), expected.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(events[i].action, expected[i].action);
    EXPECT_EQ(events[i].alias, expected[i].alias);
    EXPECT_EQ(events[i].version, expected[i].version);
    EXPECT_EQ(events[i].previous, expected[i].previous);
    EXPECT_EQ(events[i].source, expected[i].source);
    EXPECT_EQ(events[i].name, "tiny");
    if (i > 0) {
      EXPECT_GT(events[i].id, events[i - 1].id);
    }
  }
}

TEST_F(Registry, LoadsByAliasWithTheRegisteredWeights) {
  const std::string a = model(7);
  reg::Registry r = reg::open(store());
  r.register_model("tiny", a);
  r.register_model("tiny", model(8));
  r.set_alias("tiny", "production", 1);
  const kiln::infer::Model m = r.load("tiny@production");
  EXPECT_EQ(m.content_hash(), kiln::model_content_hash(a));
  const kiln::Tensor x = kiln::Tensor::from(std::vector<float>{0.5f, -1.0f, 2.0f, 0.25f}, {1, 4});
  const std::vector<float> got = m.run({{"x", x}})[0].to_vector<float>();
  const std::vector<float> want = kiln::infer::Model::load(a).run({{"x", x}})[0].to_vector<float>();
  EXPECT_EQ(got, want);
  EXPECT_EQ(r.verified_path("tiny@production"), r.resolve("tiny:1").path);
}

TEST_F(Registry, DiffNamesTheFieldsAndMetricsThatDiffer) {
  reg::Registry r = reg::open(store());
  r.register_model("tiny", model(1, {{"test_accuracy", 0.9}, {"test_f1", 0.8}}),
                   {.note = "baseline"});
  r.register_model("tiny", model(2, {{"test_accuracy", 0.95}, {"test_f1", 0.8}}),
                   {.parent = 1, .params = {{"epochs", "40"}}, .note = "warm start"});
  const reg::VersionDiff d = r.diff("tiny:1", "tiny:2");
  EXPECT_EQ(d.a.version, 1);
  EXPECT_EQ(d.b.version, 2);
  std::map<std::string, std::pair<std::string, std::string>> fields;
  for (const auto& [k, x, y] : d.fields) fields[k] = {x, y};
  EXPECT_EQ(fields.at("note"), std::make_pair(std::string("baseline"), std::string("warm start")));
  EXPECT_EQ(fields.at("parent"), std::make_pair(std::string(""), std::string("1")));
  EXPECT_EQ(fields.at("params.epochs"), std::make_pair(std::string("30"), std::string("40")));
  EXPECT_EQ(fields.at("params.optimizer.lr"),
            std::make_pair(std::string("0.003"), std::string("")));
  EXPECT_TRUE(fields.count("hash"));
  EXPECT_FALSE(fields.count("spec"));  // the same spec
  EXPECT_FALSE(fields.count("library_version"));
  ASSERT_EQ(d.metrics.size(), 1u);  // test_f1 is the same
  EXPECT_EQ(std::get<0>(d.metrics[0]), "test_accuracy");
  EXPECT_DOUBLE_EQ(std::get<1>(d.metrics[0]), 0.9);
  EXPECT_DOUBLE_EQ(std::get<2>(d.metrics[0]), 0.95);
  // A version against itself: nothing differs.
  const reg::VersionDiff same = r.diff("tiny:1", "tiny");
  EXPECT_EQ(same.fields.size(), d.fields.size());
  EXPECT_TRUE(r.diff("tiny:2", "tiny").fields.empty());
  EXPECT_TRUE(r.diff("tiny:2", "tiny").metrics.empty());
}

TEST_F(Registry, HashesDataFilesGivenByPath) {
  write_text(path("abc.csv"), "abc");
  reg::Registry r = reg::open(store());
  const reg::Version v = r.register_model(
      "tiny", model(1), {.data = {{path("abc.csv").string(), ""}, {"given.csv", "f00d"}}});
  ASSERT_EQ(v.lineage.data.size(), 2u);
  // FIPS 180-4's example: SHA-256("abc").
  EXPECT_EQ(v.lineage.data[0].second,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(v.lineage.data[1], std::make_pair(std::string("given.csv"), std::string("f00d")));
  EXPECT_EQ(r.resolve("tiny").lineage.data, v.lineage.data);
  const std::string missing = (path("nope.csv")).string();
  const std::string why = error_of<kiln::IoError>([&] {
    r.register_model("tiny", model(2), {.data = {{missing, ""}}});
  });
  EXPECT_NE(why.find(missing), std::string::npos) << why;
  EXPECT_EQ(r.versions("tiny").size(), 1u);  // nothing registered
}

TEST_F(Registry, ATamperedFileFailsItsHashCheck) {
  reg::Registry r = reg::open(store());
  const reg::Version v1 = r.register_model("tiny", model(1));
  const reg::Version v2 = r.register_model("tiny", model(2));
  r.set_alias("tiny", "production", 1);
  EXPECT_TRUE(r.verify().empty());

  // A valid model file put in place of version 1's: a different content hash.
  fs::copy_file(model(3), v1.path, fs::copy_options::overwrite_existing);
  std::string why = error_of<kiln::FormatError>([&] { r.load("tiny@production"); });
  EXPECT_NE(why.find(v1.path), std::string::npos) << why;
  EXPECT_NE(why.find("tampered"), std::string::npos) << why;
  EXPECT_THROW(r.verified_path("tiny:1"), kiln::FormatError);

  // One flipped byte in version 2's file: its envelope no longer checks.
  std::vector<std::uint8_t> bytes = bytes_of(v2.path);
  bytes[bytes.size() / 2] ^= 0x40;
  write_text(v2.path, std::string(bytes.begin(), bytes.end()));
  why = error_of<kiln::FormatError>([&] { r.load("tiny:2"); });
  EXPECT_NE(why.find(v2.path), std::string::npos) << why;

  std::vector<std::string> problems = r.verify();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("tiny:1"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("tiny:2"), std::string::npos) << problems[1];

  // A missing file: IoError naming it, and verify says so.
  fs::remove(v2.path);
  why = error_of<kiln::IoError>([&] { r.load("tiny:2"); });
  EXPECT_NE(why.find(v2.path), std::string::npos) << why;
  problems = r.verify();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[1].find(v2.path), std::string::npos) << problems[1];

  // Registering the model again repairs its file.
  r.register_model("tiny", model(1));
  EXPECT_EQ(r.load("tiny:1").content_hash(), v1.hash);
}

TEST_F(Registry, UnknownNamesVersionsAndAliasesAreNamed) {
  reg::Registry r = reg::open(store());
  std::string why = error_of<kiln::NameError>([&] { r.resolve("digits"); });
  EXPECT_NE(why.find("'digits'"), std::string::npos) << why;
  EXPECT_NE(why.find("empty"), std::string::npos) << why;
  r.register_model("tiny", model(1));
  why = error_of<kiln::NameError>([&] { r.resolve("digits@production"); });
  EXPECT_NE(why.find("'digits'"), std::string::npos) << why;
  EXPECT_NE(why.find("tiny"), std::string::npos) << why;  // the models there are
  why = error_of<kiln::NameError>([&] { r.resolve("tiny:7"); });
  EXPECT_NE(why.find("version 7"), std::string::npos) << why;
  why = error_of<kiln::NameError>([&] { r.resolve("tiny@production"); });
  EXPECT_NE(why.find("'production'"), std::string::npos) << why;
  why = error_of<kiln::NameError>([&] { r.set_alias("tiny", "production", 2); });
  EXPECT_NE(why.find("version 2"), std::string::npos) << why;
  EXPECT_THROW(r.versions("digits"), kiln::NameError);
  EXPECT_THROW(r.events("digits"), kiln::NameError);
  EXPECT_THROW(r.diff("tiny", "digits:1"), kiln::NameError);
  why = error_of<kiln::NameError>([&] { r.register_model("tiny", model(2), {.parent = 5}); });
  EXPECT_NE(why.find("parent version 5"), std::string::npos) << why;

  // Malformed references and names.
  for (const char* bad : {"tiny:", "tiny:0", "tiny:x", "tiny@", "tiny:1@production", "", "a b",
                          "../tiny", "tiny/1"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(r.resolve(bad), kiln::ValueError);
  }
  EXPECT_THROW(r.register_model("a b", model(2)), kiln::ValueError);
  EXPECT_THROW(r.set_alias("tiny", "pro duction", 1), kiln::ValueError);

  // Files that are not models.
  why = error_of<kiln::IoError>([&] { r.register_model("tiny", path("none.kiln").string()); });
  EXPECT_NE(why.find("none.kiln"), std::string::npos) << why;
  write_text(path("junk.kiln"), "not a model at all");
  why = error_of<kiln::FormatError>([&] { r.register_model("tiny", path("junk.kiln").string()); });
  EXPECT_NE(why.find("junk.kiln"), std::string::npos) << why;
  EXPECT_EQ(r.versions("tiny").size(), 1u);
}

TEST_F(Registry, CorruptOrForeignDatabasesAreFormatErrors) {
  fs::create_directories(path("garbage"));
  write_text(path("garbage") / "registry.db", std::string(4096, 'x'));
  std::string why = error_of<kiln::FormatError>([&] { reg::open(path("garbage").string()); });
  EXPECT_NE(why.find((path("garbage") / "registry.db").string()), std::string::npos) << why;

  // An SQLite database of something else.
  fs::create_directories(path("foreign"));
  const std::string foreign = (path("foreign") / "registry.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  why = error_of<kiln::FormatError>([&] { reg::open(path("foreign").string()); });
  EXPECT_NE(why.find(foreign), std::string::npos) << why;
  EXPECT_NE(why.find("not a Kiln model registry"), std::string::npos) << why;

  // A registry written by a newer Kiln (a higher schema version).
  { reg::open(path("newer").string()); }
  const std::string newer = (path("newer") / "registry.db").string();
  ASSERT_EQ(sqlite3_open(newer.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  why = error_of<kiln::FormatError>([&] { reg::open(path("newer").string()); });
  EXPECT_NE(why.find("newer Kiln"), std::string::npos) << why;

  // A row whose hash is not a hash (it would name a file outside the store).
  {
    reg::Registry r = reg::open(store());
    r.register_model("tiny", model(1));
  }
  const std::string good = (path("models") / "registry.db").string();
  ASSERT_EQ(sqlite3_open(good.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "UPDATE versions SET hash = '../../etc/passwd'", nullptr, nullptr, nullptr),
      SQLITE_OK);
  // The event log refuses changes.
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM events", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  reg::Registry r = reg::open(store());
  why = error_of<kiln::FormatError>([&] { r.load("tiny"); });
  EXPECT_NE(why.find(good), std::string::npos) << why;
  EXPECT_EQ(r.events("tiny").size(), 1u);

  // A folder that cannot be created.
  write_text(path("file"), "x");
  EXPECT_THROW(reg::open((path("file") / "models").string()), kiln::IoError);
}

TEST_F(Registry, ThreadsSharingOneRegistryAndASecondConnection) {
  // Model files first (saving builds graphs); then four threads register at once, two
  // through one shared Registry and two through their own connections.
  constexpr int threads = 4, each = 6;
  std::vector<std::string> files;
  for (int i = 0; i < threads * each; ++i) files.push_back(model(100 + i));
  reg::Registry shared = reg::open(store());
  std::vector<std::vector<std::int64_t>> got(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::optional<reg::Registry> own;
      if (t >= 2) own.emplace(reg::open(store()));
      reg::Registry& r = own ? *own : shared;
      for (int i = 0; i < each; ++i) {
        got[t].push_back(r.register_model("tiny", files[t * each + i]).version);
        r.set_alias("tiny", "latest", got[t].back());
        r.resolve("tiny@latest");
      }
    });
  }
  for (std::thread& th : pool) th.join();
  std::set<std::int64_t> all;
  for (const auto& g : got) all.insert(g.begin(), g.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(threads * each));
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), threads * each);
  const std::vector<reg::Version> vs = shared.versions("tiny");
  ASSERT_EQ(vs.size(), static_cast<std::size_t>(threads * each));
  for (int t = 0; t < threads; ++t)
    for (int i = 0; i < each; ++i)
      EXPECT_EQ(vs[got[t][i] - 1].hash, kiln::model_content_hash(files[t * each + i]));
  EXPECT_TRUE(shared.verify().empty());
}

TEST_F(Registry, ConnectionsOpeningANewRegistryAtOnceAllOpenIt) {
  // While one connection switches a new database to WAL, SQLite answers the others SQLITE_BUSY
  // without waiting (what two processes starting on an empty folder hit); open() must wait
  // it out. Four connections open each of 100 new registries together.
  constexpr int rounds = 100, openers = 4;
  for (int round = 0; round < rounds; ++round) {
    const std::string dir = path("fresh" + std::to_string(round)).string();
    std::atomic<int> arrived{0};
    std::vector<std::string> errors(openers);
    std::vector<std::thread> pool;
    for (int t = 0; t < openers; ++t) {
      pool.emplace_back([&, t] {
        arrived.fetch_add(1);
        while (arrived.load() < openers) std::this_thread::yield();
        try {
          reg::Registry r = reg::open(dir);
          r.models();
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    }
    for (std::thread& th : pool) th.join();
    for (int t = 0; t < openers; ++t) ASSERT_EQ(errors[t], "") << "round " << round;
  }
}

TEST_F(Registry, WhatAKilledRegistrationLeavesIsReusedOrRemoved) {
  // A kill between the object write and the commit leaves the object unreferenced; a kill
  // during the write leaves a temp file of a dead process (pid 2147483000 does not exist).
  const std::string a = model(1);
  const std::string hash = kiln::model_content_hash(a);
  const fs::path folder = path("models") / "objects" / hash.substr(0, 2);
  fs::create_directories(folder);
  // The leftover: the same model saved at another time (same content hash, other bytes).
  const std::string leftover = model(1, {}, "2027-05-05T10:00:00Z");
  ASSERT_EQ(kiln::model_content_hash(leftover), hash);
  fs::copy_file(leftover, folder / (hash + ".kiln"));
  const fs::path stale = folder / (hash + ".kiln.tmp.2147483000.0");
  write_text(stale, "half a model");
  const fs::path other_stale = folder / "0123.kiln.tmp.2147483000.7";
  write_text(other_stale, "half of another");

  reg::Registry r = reg::open(store());
  const reg::Version v = r.register_model("tiny", a);
  EXPECT_TRUE(v.registered);  // the leftover object is not a version
  EXPECT_EQ(v.path, (folder / (hash + ".kiln")).string());
  EXPECT_EQ(object_count(), 1u);
  EXPECT_EQ(bytes_of(v.path), bytes_of(leftover));  // reused, not written again
  EXPECT_EQ(v.bytes, fs::file_size(leftover));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(other_stale));
  EXPECT_TRUE(r.verify().empty());
}

}  // namespace
