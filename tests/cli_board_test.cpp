// `kiln board` as a user runs it (the built binary, KILN_CLI, as a child process) on a run
// that is still training (issue 11, acceptance 3). Two runs are followed in headless
// Chromium (tests/support/webdriver.hpp):
// - a run written with kiln::report::RunRecorder (status "running", two epoch lines): the
//   open page's loss chart (the data-x / data-y of its series, see kiln/report/report.hpp)
//   must hold the logged values, and after a third epoch line the page must show the third
//   point, with its value, without being reloaded;
// - a real fit (kiln::report::train_and_record of examples/specs/iris.json on iris.csv),
//   held after each epoch by a callback: each released epoch must appear on the open page
//   with the loss the trainer wrote to metrics.jsonl (read back from the file), and the
//   page must say "completed" when the fit ends.
// Also: the index lists the run as running, the JSON routes, the live poll's 204 while
// nothing changed, 404 for names that are not listed run folders (path traversal), the
// Host check, exit code 0 on SIGTERM and SIGINT, and the exit codes of bad arguments.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "kiln/report/run_record.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/spec.hpp"
#include "kiln/train/trainer.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/webdriver.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::seconds;

class BoardTest : public kiln_test::TempDirTest {
 protected:
  BoardTest() : TempDirTest("kiln_cli_board_test_") {}
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(runs());
  }
  fs::path runs() const { return dir_ / "runs"; }

  /// Starts `kiln board RUNS --port 0 ...` and returns the port it printed.
  int start_board(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {KILN_CLI, "board", runs().string(), "--port", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    board_ = std::make_unique<kiln_test::ChildProcess>(argv);
    const std::string line = board_->read_line(seconds(20));
    std::smatch m;
    const std::regex pattern("kiln board: serving (.*) on http://127\\.0\\.0\\.1:([0-9]+)");
    if (!std::regex_match(line, m, pattern)) {
      ADD_FAILURE() << "unexpected first line: " << line;
      return -1;
    }
    EXPECT_EQ(m[1].str(), runs().string());
    return std::stoi(m[2].str());
  }

  std::unique_ptr<kiln_test::ChildProcess> board_;
};

/// The loss-against-epoch chart's series of the page as {"x": [...], "y": [...]}, or null
/// while the page has none.
constexpr const char* loss_series_script = R"JS(
const path = document.querySelector(
    'svg[data-chart="metric-loss-epoch"] path[data-series="loss"][data-x]');
if (!path) return null;
const numbers = (s) => s.trim() === '' ? [] : s.trim().split(/\s+/).map(Number);
return {x: numbers(path.getAttribute('data-x')), y: numbers(path.getAttribute('data-y'))};
)JS";

TEST_F(BoardTest, BrowserSeesANewPointOfARunThatIsTraining) {
  KILN_REQUIRE_BROWSER();
  kiln::report::RunRecorder recorder({.dir = (runs() / "live-run").string(), .sample_every = 0});
  recorder.set_config(R"({"lr": 0.1, "hidden": 8})");
  recorder.log_epoch(0, 10, {{"loss", 0.875}, {"accuracy", 0.5}});
  recorder.log_epoch(1, 20, {{"loss", 0.625}, {"accuracy", 0.75}});

  const int port = start_board({"--poll-ms", "200"});
  ASSERT_GT(port, 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);

  kiln_test::WebDriver browser;
  // The index lists the run, links to its page and says it is running.
  browser.navigate(base + "/");
  const json row = browser.execute(R"JS(
    const link = [...document.querySelectorAll('a')].find(
        (a) => a.getAttribute('href').replace(/^\//, '') === 'run/live-run');
    if (!link) return null;
    const row = link.closest('tr') || link.parentElement;
    return row.textContent;
  )JS");
  ASSERT_TRUE(row.is_string()) << "the index has no link to run/live-run";
  EXPECT_NE(row.get<std::string>().find("running"), std::string::npos) << row;

  // The run's page draws the two logged epochs.
  browser.navigate(base + "/run/live-run");
  const json before = browser.wait_until(loss_series_script, seconds(10));
  EXPECT_EQ(before["x"], json::parse("[0, 1]"));
  EXPECT_EQ(before["y"], json::parse("[0.875, 0.625]"));
  browser.execute("window.kiln_board_test_marker = 1; return null;");

  // The run trains on: a third epoch appears on the open page (the live poll, not a reload:
  // the marker set on the window survives).
  recorder.log_epoch(2, 30, {{"loss", 0.5}, {"accuracy", 0.875}});
  const json after = browser.wait_until(std::string("const s = (function(){") + loss_series_script +
                                            "})(); return s && s.x.length >= 3 ? s : null;",
                                        seconds(20));
  EXPECT_EQ(after["x"], json::parse("[0, 1, 2]"));
  EXPECT_EQ(after["y"], json::parse("[0.875, 0.625, 0.5]"));
  EXPECT_EQ(browser.execute("return window.kiln_board_test_marker || 0;"), 1);

  // The run finishes: the page says so.
  recorder.finish("completed", {{"test_accuracy", 0.875}});
  browser.wait_until(
      "return document.getElementById('kiln-report').textContent.includes('completed');",
      seconds(20));

  browser.quit();
  EXPECT_EQ(board_->stop(SIGTERM), 0) << "kiln board should exit cleanly on SIGTERM";
}

/// Holds a fit after each epoch (after every callback's on_epoch_end, so the recorder has
/// written the epoch's line) until the test lets it go on.
class EpochGate : public kiln::train::Callback {
 public:
  void on_epoch_complete(kiln::train::Trainer&, std::int64_t epoch) override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_ = epoch + 1;
    changed_.notify_all();
    // Bounded: a failing test that never releases the gate still ends.
    changed_.wait_for(lock, std::chrono::seconds(60), [&] { return allowed_ > epoch; });
  }
  /// Waits until `epochs` epochs are complete; false on timeout.
  bool wait_for_epochs(std::int64_t epochs) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(60), [&] { return done_ >= epochs; });
  }
  /// Lets the fit run through epoch `epoch` (counting from 0) and stop after it.
  void allow(std::int64_t epochs) {
    std::lock_guard<std::mutex> lock(mutex_);
    allowed_ = epochs;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::int64_t done_ = 0;
  std::int64_t allowed_ = 0;
};

/// The epoch lines' losses of a run's metrics.jsonl, read back from the file.
std::vector<double> epoch_losses(const fs::path& run_dir) {
  std::vector<double> losses;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (j["kind"] == "epoch") losses.push_back(j["loss"].get<double>());
  }
  return losses;
}

TEST_F(BoardTest, BrowserFollowsARealTrainingRun) {
  KILN_REQUIRE_BROWSER();
  const fs::path run_dir = runs() / "iris-live";
  auto gate = std::make_shared<EpochGate>();
  kiln::train::SpecTrainOptions train_options;
  train_options.epochs = 3;
  train_options.progress = kiln::train::Progress::none;
  train_options.callbacks = {gate};
  kiln::report::RecordedRunOptions record_options;
  record_options.record.dir = run_dir.string();
  record_options.record.sample_every = 4;
  record_options.explain = false;
  std::string fit_error;
  std::thread fit([&] {
    try {
      kiln::report::train_and_record(
          kiln::train::ModelSpec::load(std::string(KILN_SOURCE_DIR) + "/examples/specs/iris.json"),
          std::string(KILN_SOURCE_DIR) + "/data/iris.csv", train_options, record_options);
    } catch (const std::exception& e) {
      fit_error = e.what();
    }
  });
  struct Join {
    std::thread& t;
    EpochGate& g;
    ~Join() {
      g.allow(1000);
      if (t.joinable()) t.join();
    }
  } join{fit, *gate};

  ASSERT_TRUE(gate->wait_for_epochs(1)) << "the first epoch did not end";
  const int port = start_board({"--poll-ms", "200"});
  ASSERT_GT(port, 0);
  kiln_test::WebDriver browser;
  browser.navigate("http://127.0.0.1:" + std::to_string(port) + "/run/iris-live");
  const json one = browser.wait_until(loss_series_script, seconds(10));
  EXPECT_EQ(one["x"], json::parse("[0]"));
  EXPECT_EQ(one["y"], json(epoch_losses(run_dir)));
  EXPECT_TRUE(browser
                  .execute("return document.getElementById('kiln-report').textContent"
                           ".includes('running');")
                  .get<bool>());

  // Each released epoch appears on the open page with the loss the trainer logged.
  for (int epochs = 2; epochs <= 3; ++epochs) {
    gate->allow(epochs - 1);
    ASSERT_TRUE(gate->wait_for_epochs(epochs));
    const json now = browser.wait_until(
        std::string("const s = (function(){") + loss_series_script +
            "})(); return s && s.x.length >= " + std::to_string(epochs) + " ? s : null;",
        seconds(20));
    const std::vector<double> logged = epoch_losses(run_dir);
    ASSERT_EQ(logged.size(), static_cast<std::size_t>(epochs));
    EXPECT_EQ(now["y"], json(logged));
  }
  gate->allow(1000);
  fit.join();
  EXPECT_EQ(fit_error, "");
  // Finished: the page says so (the fit's end rewrites run.json).
  browser.wait_until(
      "return document.getElementById('kiln-report').textContent.includes('completed');",
      seconds(20));
  browser.quit();
  EXPECT_EQ(board_->stop(SIGTERM), 0);
}

TEST_F(BoardTest, ServesJsonAndRefusesNamesThatAreNotRuns) {
  kiln::report::RunRecorder recorder({.dir = (runs() / "run-a").string(), .sample_every = 0});
  recorder.log_epoch(0, 4, {{"loss", 1.5}});
  // A folder without run.json is not a run, and a file beside RUNS_DIR is not reachable.
  fs::create_directories(runs() / "not-a-run");
  { std::ofstream(dir_ / "secret.txt") << "TOP-SECRET-CONTENT"; }

  const int port = start_board();
  ASSERT_GT(port, 0);
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(seconds(20));
  client.set_url_encode(false);  // paths go out exactly as written below

  auto res = client.Get("/api/runs");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const json list = json::parse(res->body);
  ASSERT_EQ(list.size(), 1u) << list;
  EXPECT_EQ(list[0]["name"], "run-a");
  EXPECT_EQ(list[0]["status"], "running");
  EXPECT_EQ(list[0]["epochs"], 1);
  EXPECT_EQ(list[0]["steps"], 4);
  EXPECT_EQ(list[0]["url"], "/run/run-a");

  res = client.Get("/api/run/run-a/version");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const std::string v1 = json::parse(res->body)["version"];
  EXPECT_EQ(v1, list[0]["version"]);
  recorder.log_epoch(1, 8, {{"loss", 1.25}});
  res = client.Get("/api/run/run-a/version");
  ASSERT_TRUE(res);
  const json now = json::parse(res->body);
  EXPECT_NE(now["version"], v1) << "a new metrics line must change the version";
  EXPECT_EQ(now["epochs"], 2);

  // The run's page polls itself; a poll that names the page's current version gets 204 (no
  // page sent again) until the run changes.
  res = client.Get("/run/run-a");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("data-live-url=\"/run/run-a\""), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(res->body, m, std::regex("id=\"kiln-report\" data-version=\"([^\"]+)\"")));
  const std::string page_version = m[1];
  EXPECT_EQ(page_version, now["version"]) << "the page's version is the run's";
  res = client.Get("/run/run-a?since=" + page_version);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  EXPECT_TRUE(res->body.empty());
  res = client.Get("/run/run-a?since=0123");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  recorder.log_epoch(2, 12, {{"loss", 1.125}});
  res = client.Get("/run/run-a?since=" + page_version);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << "the run changed: the new page is sent";
  EXPECT_EQ(res->body.find("data-version=\"" + page_version + "\""), std::string::npos);

  // Not listed run folders: 404, whatever the spelling.
  for (const std::string path :
       {"/run/not-a-run", "/run/..", "/run/%2e%2e", "/run/..%2Fsecret.txt", "/run/../secret.txt",
        "/run/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/api/run/../version", "/api/run/..%2f/version",
        "/compare?run=run-a&run=..", "/compare?run=%2Fetc", "/secret.txt", "/../secret.txt"}) {
    res = client.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path << ": " << res->body;
    EXPECT_EQ(res->body.find("TOP-SECRET-CONTENT"), std::string::npos) << path;
  }

  // Two runs compared: both are on the page, which polls its own URL.
  {
    kiln::report::RunRecorder other({.dir = (runs() / "run b").string(), .sample_every = 0});
    other.log_epoch(0, 4, {{"loss", 2.5}});
    other.finish();
  }
  res = client.Get("/compare?run=run-a&run=run%20b");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_NE(res->body.find("data-live-url=\"/compare?run=run-a&amp;run=run%20b\""),
            std::string::npos);
  EXPECT_NE(res->body.find("data-run=\"run b\""), std::string::npos);
  EXPECT_NE(res->body.find("data-run=\"run-a\""), std::string::npos);
  res = client.Get("/compare");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  // A request naming another host (DNS rebinding) is refused.
  res = client.Get("/api/runs", {{"Host", "attacker.example:" + std::to_string(port)}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);

  recorder.finish();
  EXPECT_EQ(board_->stop(SIGINT), 0) << "kiln board should exit cleanly on SIGINT";
}

TEST_F(BoardTest, BadArgumentsAndMissingFolder) {
  kiln_test::ChildProcess missing(
      {KILN_CLI, "board", (dir_ / "no-such-folder").string(), "--port", "0"}, true, true);
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (missing.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(missing.stop(), 4);  // IoError

  kiln_test::ChildProcess bad_port({KILN_CLI, "board", runs().string(), "--port", "70000"}, true,
                                   true);
  while (bad_port.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(bad_port.stop(), 1);  // usage
}

}  // namespace
