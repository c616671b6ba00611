// Issue 14: `kiln serve` over loopback HTTP, as users see it. The digits MLP of
// examples/specs/digits.json, trained once with `kiln train` (5 epochs: what a request costs
// does not depend on the weights) so that it carries its drift profile and every row is
// monitored, is served by the kiln binary on 127.0.0.1; C client
// threads (keep-alive cpp-httplib clients with TCP_NODELAY) each send their share of a fixed
// count of 1-row predict requests per iteration, one at a time. Reported per case: requests
// per second (all clients together, wall clock) and the p50 and p99 latency of one request
// (send to answer), with dynamic batching off (max_delay_us:-1, --no-batching) and on with
// --max-batch 32 and --max-delay-us 0 (a batch is what queued while the worker was busy) or
// 1000; all with the server's default single batch worker. The server is started once per
// case, outside the timing.
//
//   bench_serve --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <httplib.h>

#include "tests/support/child_process.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

/// Requests per iteration, split evenly over the clients: 2000, or
/// $KILN_BENCH_SERVE_REQUESTS (the smoke test's 200).
int requests_per_iteration() {
  const char* s = std::getenv("KILN_BENCH_SERVE_REQUESTS");
  const int n = s == nullptr ? 0 : std::atoi(s);
  return n > 0 ? n : 2000;
}

/// A folder with the trained digits model (digits.kiln), made once per process.
const fs::path& work_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() /
                 ("kiln_bench_serve_" + std::to_string(static_cast<long>(::getpid())));
    fs::create_directories(d);
    const std::string cmd = "cd '" + d.string() +
                            "' && '" KILN_CLI "' train '" KILN_SOURCE_DIR
                            "/examples/specs/digits.json' --data '" KILN_SOURCE_DIR
                            "/data/digits.csv' --epochs 5 --out digits.kiln >train.log 2>&1";
    if (std::system(cmd.c_str()) != 0) return fs::path();
    return d;
  }();
  return dir;
}

struct Cleanup {
  ~Cleanup() {
    std::error_code ec;
    if (!work_dir().empty()) fs::remove_all(work_dir(), ec);
  }
};

/// 1-row request bodies from the first rows of data/digits.csv.
std::vector<std::string> bodies() {
  std::ifstream in(KILN_SOURCE_DIR "/data/digits.csv");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> out;
  while (out.size() < 256 && std::getline(in, line)) {
    line.erase(line.rfind(','));  // the label
    out.push_back("{\"instances\":[[" + line + "]]}");
  }
  return out;
}

void BM_Serve(benchmark::State& state) {
  const fs::path& dir = work_dir();  // before `cleanup`, so destroyed after it
  static Cleanup cleanup;
  const int clients = static_cast<int>(state.range(0));
  const std::int64_t max_delay_us = state.range(1);  // -1: --no-batching
  if (dir.empty()) {
    state.SkipWithError("kiln train failed (see the train.log of the bench folder)");
    return;
  }
  const fs::path port_file = dir / "port";
  fs::remove(port_file);
  std::vector<std::string> argv = {
      KILN_CLI,           "serve",     (dir / "digits.kiln").string(),
      "--port",           "0",         "--port-file",
      port_file.string(), "--threads", std::to_string(std::max(8, 2 * clients)),
      "--keep-alive-max", "1000000"};
  if (max_delay_us >= 0) {
    argv.insert(argv.end(), {"--max-batch", "32", "--max-delay-us", std::to_string(max_delay_us)});
  } else {
    argv.push_back("--no-batching");
  }
  kiln_test::ChildProcess server(argv, /*capture_stdout=*/false, /*quiet=*/true);
  int port = 0;
  for (auto until = Clock::now() + std::chrono::seconds(30); Clock::now() < until && port == 0;) {
    std::ifstream in(port_file);
    std::string text;
    // A whole line (ending in a newline): the file is complete.
    if (std::getline(in, text) && !text.empty() && !in.eof()) port = std::stoi(text);
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (port == 0) {
    state.SkipWithError("kiln serve did not write its port within 30 s");
    return;
  }

  const std::vector<std::string> requests = bodies();
  std::vector<std::unique_ptr<httplib::Client>> connections;
  for (int c = 0; c < clients; ++c) {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);
    client->set_read_timeout(std::chrono::seconds(30));
    if (!client->Post("/v1/models/digits:predict", requests[0], "application/json")) {
      state.SkipWithError("no answer from kiln serve");  // also opens the connection
      return;
    }
    connections.push_back(std::move(client));
  }

  const int per_client = std::max(1, requests_per_iteration() / clients);
  std::vector<std::vector<double>> latency_us(static_cast<std::size_t>(clients));
  std::vector<int> failed(static_cast<std::size_t>(clients), 0);
  double seconds = 0;
  std::int64_t total = 0;
  for (auto _ : state) {
    const auto start = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        auto& mine = latency_us[static_cast<std::size_t>(c)];
        for (int i = 0; i < per_client; ++i) {
          const std::string& body =
              requests[static_cast<std::size_t>(c * 31 + i) % requests.size()];
          const auto t0 = Clock::now();
          const auto res = connections[static_cast<std::size_t>(c)]->Post(
              "/v1/models/digits:predict", body, "application/json");
          const auto t1 = Clock::now();
          if (!res || res->status != 200) ++failed[static_cast<std::size_t>(c)];
          mine.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
      });
    }
    for (std::thread& t : threads) t.join();
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
    total += static_cast<std::int64_t>(per_client) * clients;
  }
  connections.clear();  // closes the keep-alive connections, so the server stops at once
  server.stop();

  int failures = 0;
  for (int f : failed) failures += f;
  if (failures > 0) {
    state.SkipWithError((std::to_string(failures) + " requests failed").c_str());
    return;
  }
  std::vector<double> all;
  for (const auto& l : latency_us) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto quantile = [&](double q) {
    return all.empty()
               ? 0.0
               : all[std::min(all.size() - 1,
                              static_cast<std::size_t>(q * static_cast<double>(all.size())))];
  };
  state.counters["req_per_s"] = static_cast<double>(total) / seconds;
  state.counters["p50_us"] = quantile(0.50);
  state.counters["p99_us"] = quantile(0.99);
  state.SetItemsProcessed(total);
}

}  // namespace

BENCHMARK(BM_Serve)
    ->ArgNames({"clients", "max_delay_us"})
    ->ArgsProduct({{1, 8, 32}, {-1, 0, 1000}})
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
