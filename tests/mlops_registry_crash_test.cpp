// The registry under several processes and under SIGKILL (issue 12, acceptance 4):
// - three processes registering different models into one name at once lose nothing:
//   every version is listed, numbered 1..N without gaps or duplicates, each with the hash of
//   the file its process registered, and each process got the versions it reports;
// - two processes registering the same models at once register each exactly once;
// - SIGKILL at a random moment while a process registers, 100 times: after every kill the
//   registry opens, verify() finds nothing wrong, versions are numbered without gaps, every
//   listed version loads with its hash, every version the child reported is there, and
//   every "register" event has its version (one transaction). The numbers (kills, versions,
//   orphaned objects, temp files) are printed for the notes.
//
// The children are this test program itself (RegistryChild.Registers, started with
// --gtest_filter and KILN_REGISTRY_CHILD_* in the environment), printing a line per
// registration on stdout.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/registry.hpp"
#include "tests/mlops_registry_support.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace reg = kiln::registry;
using namespace std::chrono_literals;

constexpr const char* line_prefix = "kiln-registry-child: ";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The child: registers models with seeds seed, seed+1, ... (count of them; 0: until killed)
// into the model "shared" of the registry, each after saving it into its scratch folder, and
// points the alias "latest" at each. Waits for the file GO (when given) first.
TEST(RegistryChild, Registers) {
  const std::string dir = env("KILN_REGISTRY_CHILD_DIR");
  if (dir.empty()) GTEST_SKIP() << "runs only as a child of the registry crash tests";
  const std::string scratch = env("KILN_REGISTRY_CHILD_SCRATCH");
  const std::string go = env("KILN_REGISTRY_CHILD_GO");
  const std::uint64_t seed = std::stoull(env("KILN_REGISTRY_CHILD_SEED"));
  const std::int64_t count = std::stoll(env("KILN_REGISTRY_CHILD_COUNT"));
  fs::create_directories(scratch);
  reg::Registry r = reg::open(dir);
  std::printf("%sready\n", line_prefix);
  std::fflush(stdout);
  if (!go.empty())
    while (!fs::exists(go)) std::this_thread::sleep_for(200us);
  for (std::int64_t i = 0; count == 0 || i < count; ++i) {
    const fs::path file = fs::path(scratch) / ("m" + std::to_string(seed + i) + ".kiln");
    kiln_test::save_tiny_model(file, {.seed = seed + static_cast<std::uint64_t>(i)});
    const reg::Version v = r.register_model("shared", file.string(), {.source = "child"});
    std::printf("%s%lld %s %d\n", line_prefix, static_cast<long long>(v.version), v.hash.c_str(),
                v.registered ? 1 : 0);
    std::fflush(stdout);
    r.set_alias("shared", "latest", v.version, "child");
  }
}

struct Reported {
  std::int64_t version = 0;
  std::string hash;
  bool registered = false;
};

class RegistryProcesses : public kiln_test::TempDirTest {
 protected:
  RegistryProcesses() : TempDirTest("kiln_mlops_registry_crash_test_") {}

  std::unique_ptr<kiln_test::ChildProcess> spawn(std::uint64_t seed, std::int64_t count,
                                                 const std::string& scratch,
                                                 const std::string& go = "") {
    ::setenv("KILN_REGISTRY_CHILD_DIR", path("models").c_str(), 1);
    ::setenv("KILN_REGISTRY_CHILD_SCRATCH", scratch.c_str(), 1);
    ::setenv("KILN_REGISTRY_CHILD_GO", go.c_str(), 1);
    ::setenv("KILN_REGISTRY_CHILD_SEED", std::to_string(seed).c_str(), 1);
    ::setenv("KILN_REGISTRY_CHILD_COUNT", std::to_string(count).c_str(), 1);
    const std::string self = fs::read_symlink("/proc/self/exe").string();
    auto child = std::make_unique<kiln_test::ChildProcess>(
        std::vector<std::string>{self, "--gtest_filter=RegistryChild.Registers"}, true);
    for (const char* v :
         {"KILN_REGISTRY_CHILD_DIR", "KILN_REGISTRY_CHILD_SCRATCH", "KILN_REGISTRY_CHILD_GO",
          "KILN_REGISTRY_CHILD_SEED", "KILN_REGISTRY_CHILD_COUNT"})
      ::unsetenv(v);
    return child;
  }

  // The child's next line of ours ("ready", or a registration), skipping GoogleTest's;
  // nullopt when it exits first.
  static std::optional<std::string> next_line(kiln_test::ChildProcess& c,
                                              std::chrono::milliseconds timeout = 60s) {
    try {
      for (;;) {
        const std::string line = c.read_line(timeout);
        if (line.rfind(line_prefix, 0) == 0) return line.substr(std::strlen(line_prefix));
      }
    } catch (const std::runtime_error&) {
      return std::nullopt;
    }
  }

  // Waits for a child that was told how much to do to exit by itself; its exit code.
  static int wait_exit(kiln_test::ChildProcess& c) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (c.running() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    return c.stop();  // the exit code when it has exited (else it is killed: a failure)
  }

  static Reported parse(const std::string& line) {
    Reported r;
    char hash[80] = {};
    long long v = 0;
    int registered = 0;
    if (std::sscanf(line.c_str(), "%lld %64s %d", &v, hash, &registered) != 3)
      ADD_FAILURE() << "bad child line: " << line;
    r.version = v;
    r.hash = hash;
    r.registered = registered != 0;
    return r;
  }

  // The content hash of the tiny model with this seed, computed here from its own file.
  std::string hash_of_seed(std::uint64_t seed) {
    const fs::path p = path("expected.kiln");
    kiln_test::save_tiny_model(p, {.seed = seed});
    return kiln::model_content_hash(p.string());
  }
};

TEST_F(RegistryProcesses, ConcurrentWritersLoseNothing) {
  constexpr int writers = 3;
  constexpr std::int64_t each = 15;
  const std::string go = path("go").string();
  std::vector<std::unique_ptr<kiln_test::ChildProcess>> children;
  for (int k = 0; k < writers; ++k)
    children.push_back(
        spawn(1000 * (k + 1), each, path("scratch" + std::to_string(k)).string(), go));
  for (auto& c : children) ASSERT_EQ(next_line(*c), "ready");
  { std::ofstream(go).put('\n'); }  // all at once

  std::map<std::uint64_t, Reported> by_seed;
  for (int k = 0; k < writers; ++k) {
    for (std::int64_t i = 0; i < each; ++i) {
      const std::optional<std::string> line = next_line(*children[k]);
      ASSERT_TRUE(line) << "writer " << k << " stopped after " << i << " registrations";
      by_seed[1000 * (k + 1) + static_cast<std::uint64_t>(i)] = parse(*line);
    }
    EXPECT_EQ(wait_exit(*children[k]), 0) << "writer " << k;
  }

  reg::Registry r = reg::open(path("models").string());
  const std::vector<reg::Version> versions = r.versions("shared");
  ASSERT_EQ(versions.size(), static_cast<std::size_t>(writers * each));
  std::map<std::string, std::int64_t> version_of_hash;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    EXPECT_EQ(versions[i].version, static_cast<std::int64_t>(i + 1));  // no gap, no duplicate
    version_of_hash[versions[i].hash] = versions[i].version;
  }
  EXPECT_EQ(version_of_hash.size(), versions.size());
  // Each child's registrations are in the registry under the version it was told, with
  // the hash of its model (computed here independently).
  std::set<std::int64_t> reported;
  for (const auto& [seed, rep] : by_seed) {
    EXPECT_TRUE(rep.registered) << seed;
    EXPECT_EQ(rep.hash, hash_of_seed(seed)) << seed;
    ASSERT_TRUE(version_of_hash.count(rep.hash)) << seed;
    EXPECT_EQ(version_of_hash.at(rep.hash), rep.version) << seed;
    reported.insert(rep.version);
  }
  EXPECT_EQ(reported.size(), versions.size());
  EXPECT_TRUE(r.verify().empty());
  std::size_t registers = 0, alias_moves = 0;
  for (const reg::Event& e : r.events("shared")) {
    registers += e.action == "register";
    alias_moves += e.action == "alias_set";
  }
  EXPECT_EQ(registers, versions.size());
  EXPECT_EQ(alias_moves, versions.size());  // each child moved "latest" to a new version
  std::printf(
      "concurrent writers: %d processes x %lld registrations -> %zu versions, numbered "
      "1..%zu, %zu register events\n",
      writers, static_cast<long long>(each), versions.size(), versions.size(), registers);
}

TEST_F(RegistryProcesses, ConcurrentWritersOfTheSameModelsRegisterEachOnce) {
  constexpr std::int64_t models = 12;
  const std::string go = path("go").string();
  auto a = spawn(500, models, path("scratch_a").string(), go);
  auto b = spawn(500, models, path("scratch_b").string(), go);
  ASSERT_EQ(next_line(*a), "ready");
  ASSERT_EQ(next_line(*b), "ready");
  { std::ofstream(go).put('\n'); }
  std::vector<Reported> from_a, from_b;
  for (std::int64_t i = 0; i < models; ++i) {
    const auto la = next_line(*a);
    const auto lb = next_line(*b);
    ASSERT_TRUE(la && lb);
    from_a.push_back(parse(*la));
    from_b.push_back(parse(*lb));
  }
  EXPECT_EQ(wait_exit(*a), 0);
  EXPECT_EQ(wait_exit(*b), 0);
  reg::Registry r = reg::open(path("models").string());
  ASSERT_EQ(r.versions("shared").size(), static_cast<std::size_t>(models));
  int registered = 0;
  for (std::int64_t i = 0; i < models; ++i) {
    // Both were told the same version for the same model; exactly one registered it.
    EXPECT_EQ(from_a[i].version, from_b[i].version) << i;
    EXPECT_EQ(from_a[i].hash, from_b[i].hash) << i;
    EXPECT_EQ(from_a[i].registered + from_b[i].registered, 1) << i;
    registered += from_a[i].registered + from_b[i].registered;
  }
  EXPECT_EQ(registered, models);
  EXPECT_TRUE(r.verify().empty());
}

TEST_F(RegistryProcesses, SigkillDuringRegistrationLeavesItConsistent) {
  constexpr int rounds = 100;
  std::mt19937_64 rng(2026);
  std::uniform_int_distribution<int> delay_us(0, 100000);
  const fs::path objects = path("models") / "objects";
  std::size_t versions_before = 0, reported_total = 0, committed_unreported = 0;
  std::size_t max_temp_files = 0, loads = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto child =
        spawn(100000 + 1000 * static_cast<std::uint64_t>(round), 0, path("scratch").string());
    ASSERT_EQ(next_line(*child), "ready");
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    ASSERT_EQ(child->stop(SIGKILL), -SIGKILL) << "the child ended by itself";
    std::vector<Reported> reported;
    while (const auto line = next_line(*child, 100ms)) reported.push_back(parse(*line));
    reported_total += reported.size();

    // The registry after the kill.
    reg::Registry r = reg::open(path("models").string());
    const std::vector<std::string> problems = r.verify();
    EXPECT_TRUE(problems.empty()) << problems.front();
    std::vector<reg::Version> versions;
    if (versions_before > 0 || !r.models().empty()) versions = r.versions("shared");
    ASSERT_GE(versions.size(), versions_before);
    std::map<std::int64_t, std::string> hash_of;
    for (std::size_t i = 0; i < versions.size(); ++i) {
      ASSERT_EQ(versions[i].version, static_cast<std::int64_t>(i + 1));
      hash_of[versions[i].version] = versions[i].hash;
      const kiln::infer::Model m = r.load("shared:" + std::to_string(versions[i].version));
      EXPECT_EQ(m.content_hash(), versions[i].hash);
      ++loads;
    }
    // What the child was told is there; at most one more (killed between its commit and
    // its line) was committed.
    for (const Reported& rep : reported) {
      ASSERT_TRUE(hash_of.count(rep.version)) << "reported version " << rep.version << " is lost";
      EXPECT_EQ(hash_of.at(rep.version), rep.hash);
    }
    const std::size_t added = versions.size() - versions_before;
    ASSERT_GE(added, reported.size());
    ASSERT_LE(added, reported.size() + 1);
    committed_unreported += added - reported.size();
    std::size_t registers = 0;
    for (const reg::Event& e : r.events()) registers += e.action == "register";
    EXPECT_EQ(registers, versions.size());
    // The alias, when set, names a listed version.
    for (const reg::Version& v : versions)
      for (const std::string& alias : v.aliases) EXPECT_EQ(alias, "latest");
    versions_before = versions.size();

    std::size_t temp_files = 0;
    for (const auto& e : fs::recursive_directory_iterator(objects))
      temp_files += e.path().filename().string().find(".tmp.") != std::string::npos;
    max_temp_files = std::max(max_temp_files, temp_files);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Objects no version names: written, then the kill came before the row committed.
  reg::Registry r = reg::open(path("models").string());
  std::set<std::string> referenced;
  if (!r.models().empty())
    for (const reg::Version& v : r.versions("shared")) referenced.insert(v.path);
  std::size_t objects_total = 0, orphans = 0, temp_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(objects)) {
    if (!e.is_regular_file()) continue;
    if (e.path().filename().string().find(".tmp.") != std::string::npos) {
      ++temp_files;
      continue;
    }
    ++objects_total;
    orphans += !referenced.count(e.path().string());
  }
  EXPECT_EQ(objects_total, referenced.size() + orphans);
  EXPECT_GT(versions_before, 0u);
  std::printf(
      "SIGKILL during registration: %d kills in %.1f s; %zu versions registered and consistent "
      "after every kill (%zu loads checked), %zu registrations reported by the children, %zu "
      "committed but killed before reporting; %zu orphaned object files (written, killed before "
      "the commit), %zu temp files left (at most %zu after a kill)\n",
      rounds, seconds, versions_before, loads, reported_total, committed_unreported, orphans,
      temp_files, max_temp_files);
}

}  // namespace
