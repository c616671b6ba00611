// Saving under crashes, at the file level: a save removes the temp files that saves killed
// mid-way left behind (only those of the same target whose process is gone), and a process
// SIGKILLed at random moments while it saves leaves a file that loads and at most its own
// last temp file. (The trainer's kill-and-resume test is in trainer tests.)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "io/model_data.hpp"
#include "kiln/kiln.hpp"
#include "kiln/train/checkpoint.hpp"

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("kiln_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void touch(const fs::path& p) { std::ofstream(p) << "partial"; }

/// The pid of a child that has exited and been reaped: no process has it (until reused).
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

std::vector<std::string> temp_files(const fs::path& dir, const std::string& base) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(base + ".tmp.", 0) == 0) out.push_back(name);
  }
  return out;
}

TEST(AtomicSave, RemovesStaleTempFilesOfDeadProcessesOnly) {
  TempDir dir("atomic_stale");
  const fs::path target = dir.path / "m.kiln";
  const pid_t dead = dead_pid();
  ASSERT_NE(::kill(dead, 0), 0);
  // A live process other than this one: a child blocked until we kill it.
  const pid_t live = ::fork();
  if (live == 0) {
    ::pause();
    ::_exit(0);
  }
  const std::string d = std::to_string(dead), l = std::to_string(live),
                    self = std::to_string(::getpid());
  const std::vector<std::string> removed = {"m.kiln.tmp." + d + ".0", "m.kiln.tmp." + d + ".17"};
  const std::vector<std::string> kept = {
      "m.kiln.tmp." + self + ".99",   // this process's
      "m.kiln.tmp." + l + ".3",       // a live process's
      "other.kiln.tmp." + d + ".0",   // another target
      "m.kiln.tmp." + d + ".0.bak",   // not exactly the pattern
      "m.kiln.tmp." + d + ".x",       //
      "m.kiln.tmp." + d + ".",        //
      "m.kiln.tmp.0.1",               // pid 0 would be our process group
      "m.kiln.tmp.99999999999999.1",  // not a pid
      "xm.kiln.tmp." + d + ".0",      //
      "m.kiln.tmp." + d,              //
  };
  for (const auto& n : removed) touch(dir.path / n);
  for (const auto& n : kept) touch(dir.path / n);

  const std::vector<std::uint8_t> bytes = {1, 2, 3};
  kiln::internal::write_file_atomically(target.string(), bytes);
  for (const auto& n : removed) EXPECT_FALSE(fs::exists(dir.path / n)) << n;
  for (const auto& n : kept) EXPECT_TRUE(fs::exists(dir.path / n)) << n;
  EXPECT_EQ(kiln::internal::read_file(target.string()), bytes);

  ::kill(live, SIGKILL);
  ::waitpid(live, nullptr, 0);
  // Now that the live process is gone, the next save removes its temp file too.
  kiln::internal::write_file_atomically(target.string(), bytes);
  EXPECT_FALSE(fs::exists(dir.path / ("m.kiln.tmp." + l + ".3")));
  EXPECT_TRUE(fs::exists(dir.path / ("m.kiln.tmp." + self + ".99")));
}

/// A graph with ~1 MB of parameters, so a save takes long enough to be killed inside.
struct Big {
  kiln::Graph g;
  Big(float fill) {
    g.parameter("w", kiln::Tensor::full({512, 512}, fill));
    g.parameter("b", kiln::Tensor::full({512}, fill));
  }
};

TEST(AtomicSave, SigkillWhileSavingLeavesALoadableFileAndNoPileOfTemps) {
  TempDir dir("atomic_kill");
  const std::string target = (dir.path / "ckpt.kckp").string();
  Big first(0.5f);
  kiln::save_checkpoint(target, first.g, {.step = 0});
  // Two valid checkpoints the child alternates between.
  Big a(1.0f), b(2.0f);
  const auto bytes_a = kiln::serialize_checkpoint(a.g, {.step = 1});
  const auto bytes_b = kiln::serialize_checkpoint(b.g, {.step = 2});

  constexpr int rounds = 30;
  int killed_mid_save = 0;
  for (int round = 0; round < rounds; ++round) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(ready[0]);
      const char go = 1;
      if (::write(ready[1], &go, 1) != 1) ::_exit(2);
      for (unsigned i = 0;; ++i)
        kiln::internal::write_file_atomically(target, i % 2 ? bytes_b : bytes_a);
    }
    ::close(ready[1]);
    char go = 0;
    ASSERT_EQ(::read(ready[0], &go, 1), 1);
    ::close(ready[0]);
    // Kill it at a different moment each round (0.2 .. 6 ms into its saves).
    std::this_thread::sleep_for(std::chrono::microseconds(200 + (round * 977) % 5800));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));

    // The file loads: one of the three complete checkpoints.
    Big into(0.0f);
    const auto info = kiln::load_checkpoint(target, into.g);
    EXPECT_TRUE(info.step == 0 || info.step == 1 || info.step == 2) << info.step;
    const auto temps = temp_files(dir.path, "ckpt.kckp");
    EXPECT_LE(temps.size(), 1u) << "round " << round;
    killed_mid_save += static_cast<int>(temps.size());
  }
  // Some kills hit a save in progress (else the test proves nothing about cleanup).
  EXPECT_GT(killed_mid_save, 0);
  // One more save by anyone removes the last killed writer's temp file.
  kiln::save_checkpoint(target, first.g, {.step = 3});
  EXPECT_TRUE(temp_files(dir.path, "ckpt.kckp").empty());
}

}  // namespace
