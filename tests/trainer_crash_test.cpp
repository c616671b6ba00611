// SIGKILL at random moments while the trainer checkpoints after every step, 50 rounds
// (each kill within 40 ms after the child's first new checkpoint):
// after every kill the folder holds a pair that loads (the model file is the checkpoint's,
// same step and weights), resuming works and runs further steps, and temporary files of
// killed saves do not accumulate (the next save removes them).
//
// The child is this test program itself (exec'd with --gtest_filter=TrainerCrash.Child and
// KILN_CRASH_CHILD_DIR set), so it starts without the parent's threads.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "tests/trainer_test_util.hpp"

extern char** environ;

namespace {

using kiln_test::blobs;
using kiln_test::Model;
namespace tr = kiln::train;
namespace fs = std::filesystem;

struct Interrupt {};

const kiln::data::Dataset& data() {
  static const kiln::data::Dataset d = blobs(64, 31);
  return d;
}

tr::FitOptions options(std::int64_t epochs, const std::string& dir,
                       std::shared_ptr<tr::Callback> extra = nullptr) {
  tr::FitOptions o{.epochs = epochs, .batch_size = 8, .seed = 3, .progress = tr::Progress::none};
  o.callbacks = {tr::checkpoint({.dir = dir, .every_steps = 1, .every_epochs = 0, .keep_last = 2})};
  if (extra) o.callbacks.push_back(extra);
  return o;
}

// The child: resume from the folder and train "forever", checkpointing every step.
TEST(TrainerCrash, Child) {
  const char* dir = std::getenv("KILN_CRASH_CHILD_DIR");
  if (!dir) GTEST_SKIP() << "runs only as the crash test's child";
  Model m(true, true, 0.01);
  tr::Trainer t(m.g, m.options());
  if (tr::latest_checkpoint(dir)) t.resume(dir);
  t.fit(data(), options(1000000, dir));
}

std::size_t temp_files(const std::string& dir) {
  std::size_t n = 0;
  for (const auto& f : fs::directory_iterator(dir))
    n += f.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

std::string checkpoint_name(std::int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "ckpt-%012lld.kiln", static_cast<long long>(step));
  return buf;
}

pid_t spawn_child(const std::string& dir) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("KILN_CRASH_CHILD_DIR=", 0) != 0) env_strings.emplace_back(*e);
  env_strings.push_back("KILN_CRASH_CHILD_DIR=" + dir);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = fs::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=TrainerCrash.Child";
  char* argv[] = {self.data(), filter.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) {
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    ::execve(self.c_str(), argv, envp.data());
    ::_exit(127);
  }
  return pid;
}

TEST(TrainerCrash, SigkillWhileCheckpointingLeavesALoadablePair) {
  const std::string dir = kiln_test::fresh_dir("crash");
  {  // A first pair, so that a kill before the child's first save still finds one.
    Model m(true, true, 0.01);
    tr::Trainer t(m.g, m.options());
    t.fit(data(), options(1, dir));
  }
  constexpr int rounds = 50;
  kiln::Rng rng(2026);
  int loaded = 0, resumed = 0, model_matches = 0;
  std::size_t temps_after_kill = 0, stale_after_save = 0;
  std::int64_t first_step = tr::latest_checkpoint(dir)->step, last_step = first_step;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < rounds; ++round) {
    const pid_t pid = spawn_child(dir);
    ASSERT_GT(pid, 0);
    // Wait until the child has trained (its first checkpoint: startup time differs between
    // builds), then kill it at a random moment of the next 40 ms of steps and saves.
    const std::string first = dir + "/" + checkpoint_name(last_step + 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(first) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    std::this_thread::sleep_for(std::chrono::microseconds(rng.below(40000)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "round " << round << ": the child ended by itself (" << status << ")";
    temps_after_kill += temp_files(dir);

    const auto pair = tr::latest_checkpoint(dir);
    ASSERT_TRUE(pair) << "round " << round;
    Model m(true, true, 0.01);
    tr::Trainer t(m.g, m.options());
    const tr::TrainerPosition pos = t.resume(dir);
    ++loaded;
    EXPECT_EQ(pos.step, pair->step) << "round " << round << ": the newest pair did not match";
    // The model file is the checkpoint's: same predictions as the restored weights.
    const auto x = data().rows(0, 6).select({"features"});
    const auto from_file =
        kiln::infer::Model::load(pair->model).run({{"features", x["features"]}})[0];
    model_matches += from_file.to_vector<float>() == t.predict(x).to_vector<float>();
    // A few more steps, checkpointing: the kill's temporary files are gone afterwards.
    const std::int64_t stop_at = pos.step + 3;
    auto stopper = tr::lambda_callback({.on_step_begin = [&](tr::Trainer&, std::int64_t s) {
      if (s == stop_at) throw Interrupt{};
    }});
    EXPECT_THROW(t.fit(data(), options(1000000, dir, stopper)), Interrupt);
    ++resumed;
    EXPECT_EQ(t.global_step(), stop_at);
    stale_after_save += temp_files(dir);
    last_step = stop_at;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "crash test: %d rounds, %d pairs loaded, %d model files matching their checkpoint, %d "
      "resumed, steps %lld -> %lld, temp files right after kills %zu, stale temp files after "
      "the next save %zu, %.1f s\n",
      rounds, loaded, model_matches, resumed, static_cast<long long>(first_step),
      static_cast<long long>(last_step), temps_after_kill, stale_after_save, seconds);
  EXPECT_EQ(loaded, rounds);
  EXPECT_EQ(model_matches, rounds);
  EXPECT_EQ(stale_after_save, 0u);
  // The children trained: the run moved well past the parent's own steps.
  EXPECT_GT(last_step - first_step, 3 * rounds);
  fs::remove_all(dir);
}

}  // namespace
