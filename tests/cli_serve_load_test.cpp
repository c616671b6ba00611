// Acceptance 2 of issue 14: `kiln serve digits@production` under load while the alias moves.
// Two digits models that predict differently on known rows are registered as digits:1 and
// digits:2; N keep-alive clients send predict requests of 1..8 rows for
// KILN_SERVE_LOAD_SECONDS (default 60) while the test promotes version 2, rolls back,
// promotes again and rolls back again. Every answer must be 200, name version 1 or 2 with
// that version's content hash, and carry exactly the classes that version's file gives for
// those rows (infer::Model::run on the trained files, computed before the server starts);
// both versions must answer, each move must be seen within a bound, and after a move is seen
// the old version must stop answering. Label "load" (ctest -L load).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "kiln/infer/model.hpp"
#include "kiln/kiln.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kClients = 8;
constexpr std::size_t kRows = 300;  // the first rows of data/digits.csv the clients send
constexpr auto kSeenBound = std::chrono::seconds(10);  // a move is answered by then

int load_seconds() {
  const char* s = std::getenv("KILN_SERVE_LOAD_SECONDS");
  if (s == nullptr || *s == '\0') return 60;
  const int v = std::atoi(s);
  return v > 0 ? v : 60;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The pixel rows of data/digits.csv (the label column dropped), the first `count`.
std::vector<std::vector<float>> digits_rows(std::size_t count) {
  std::ifstream in(fs::path(KILN_SOURCE_DIR) / "data" / "digits.csv");
  std::string line;
  std::getline(in, line);  // header p0..p63,label
  std::vector<std::vector<float>> rows;
  while (rows.size() < count && std::getline(in, line)) {
    std::vector<float> row;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(std::stof(cell));
    row.pop_back();  // the label
    rows.push_back(std::move(row));
  }
  return rows;
}

// One version's answers for the rows, computed directly from its file.
struct Expected {
  std::string hash;
  std::vector<std::string> classes;  // per row
  std::vector<double> margin;        // top-1 minus top-2 output, per row
};

Expected expected_for(const fs::path& file, const std::vector<std::vector<float>>& rows) {
  kiln::infer::LoadOptions options;
  options.apply_preprocessing = true;  // the server gets raw pixels too
  const auto model = kiln::infer::Model::load(file.string(), options);
  const auto& labels = model.metadata().labels;
  EXPECT_EQ(labels.size(), 10u);
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  const auto n = static_cast<std::int64_t>(rows.size());
  const kiln::Tensor x = kiln::Tensor::from(flat, {n, 64});
  const std::vector<float> out =
      model.run({{"pixels", x}})[0].to(kiln::DType::f32).template to_vector<float>();
  const std::size_t k = out.size() / rows.size();
  Expected e;
  e.hash = model.content_hash();
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const float* p = out.data() + r * k;
    std::vector<float> sorted(p, p + k);
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const auto best = static_cast<std::size_t>(std::max_element(p, p + k) - p);
    e.classes.push_back(labels.at(best));
    e.margin.push_back(static_cast<double>(sorted[0]) - static_cast<double>(sorted[1]));
  }
  return e;
}

struct Answer {
  std::int64_t sent_ns;
  int version;  // 1 or 2
};

class CliServeLoad : public kiln_test::CliTest {
 protected:
  CliServeLoad() : CliTest("kiln_cli_serve_load_test_") {}

  // Trains `out` from examples/specs/digits.json with these training changes.
  void train(const std::string& out, int epochs, int units, int seed) {
    std::ifstream in(fs::path(KILN_SOURCE_DIR) / "examples" / "specs" / "digits.json");
    json spec = json::parse(in);
    spec["training"]["epochs"] = epochs;
    spec["training"]["seed"] = seed;
    spec["layers"][0]["units"] = units;
    spec["training"].erase("early_stopping");
    kiln_test::write(path(out + ".json"), spec.dump(2));
    const kiln_test::CliResult r =
        kiln("train " + out + ".json --data '" KILN_SOURCE_DIR "/data/digits.csv' --out " + out);
    ASSERT_EQ(r.rc, 0) << r.err;
  }

  void move_alias(const std::string& args, int expect_version) {
    const json j = kiln_json(args + " --registry reg --json");
    ASSERT_EQ(j["version"], expect_version) << j.dump();
  }
};

TEST_F(CliServeLoad, ZeroErrorsAndZeroWrongAnswersWhileTheAliasIsPromotedAndRolledBackTwice) {
  const int seconds = load_seconds();
  // Version 1: the spec's network, trained a few epochs; version 2: a narrow network trained
  // one epoch, which misclassifies rows the first gets right.
  train("strong.kiln", 8, 128, 42);
  train("weak.kiln", 1, 8, 7);
  if (HasFatalFailure()) return;
  const std::vector<std::vector<float>> rows = digits_rows(kRows);
  ASSERT_EQ(rows.size(), kRows);
  const Expected expected[3] = {
      {}, expected_for(path("strong.kiln"), rows), expected_for(path("weak.kiln"), rows)};
  ASSERT_NE(expected[1].hash, expected[2].hash);

  // Rows sent: those whose top class is not a near tie in either version (a batch of another
  // size may sum in another order), split into rows where the versions disagree and agree.
  std::vector<std::size_t> differ, agree;
  for (std::size_t r = 0; r < kRows; ++r) {
    if (expected[1].margin[r] < 1e-3 || expected[2].margin[r] < 1e-3) continue;
    (expected[1].classes[r] != expected[2].classes[r] ? differ : agree).push_back(r);
  }
  std::cout << "rows: " << differ.size() << " where the versions differ, " << agree.size()
            << " where they agree\n";
  ASSERT_GE(differ.size(), 20u) << "the two versions must predict differently on known rows";

  ASSERT_EQ(kiln("registry register digits strong.kiln --registry reg").rc, 0);
  ASSERT_EQ(kiln("registry register digits weak.kiln --registry reg").rc, 0);
  move_alias("registry promote digits 1", 1);
  if (HasFatalFailure()) return;

  kiln_test::ChildProcess server(
      {KILN_CLI, "serve", "digits@production", "--registry", path("reg").string(), "--port", "0",
       "--port-file", path("port").string(), "--reload-ms", "200", "--threads",
       std::to_string(2 * kClients), "--keep-alive-max", "1000000", "--max-batch", "32",
       "--max-delay-us", "1000"},
      /*capture_stdout=*/false);
  int port = 0;
  for (auto until = Clock::now() + std::chrono::seconds(30); Clock::now() < until;) {
    if (!server.running()) FAIL() << "kiln serve exited before listening";
    const std::string text = kiln_test::slurp(path("port"));
    if (!text.empty() && text.back() == '\n') {
      port = std::stoi(text);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(port, 0) << "no port file within 30 s";

  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> last_sent_ns[3] = {0, 0, 0};  // per version: newest request it answered
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  std::atomic<std::int64_t> failure_count{0};
  auto fail = [&](std::string what) {
    failure_count.fetch_add(1);
    stop.store(true);
    std::lock_guard lock(failures_mutex);
    if (failures.size() < 10) failures.push_back(std::move(what));
  };
  std::vector<std::vector<Answer>> answers(kClients);
  std::vector<std::int64_t> rows_sent(kClients, 0);

  // The clients run until the main thread has made every move, seen each answered by its
  // version and `seconds` have passed: a fixed end for the clients could come before a slow
  // switch (a loaded machine, a sanitizer build) had been answered, failing a correct server.
  std::atomic<bool> finished{false};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(seconds);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_connection_timeout(std::chrono::seconds(5));
      client.set_read_timeout(std::chrono::seconds(15));
      client.set_write_timeout(std::chrono::seconds(15));
      std::mt19937 rng(static_cast<unsigned>(1000 + c));
      std::uniform_int_distribution<std::size_t> size_of(1, 8);
      std::uniform_int_distribution<std::size_t> pick_differ(0, differ.size() - 1);
      std::uniform_int_distribution<std::size_t> pick_any(0, kRows - 1);
      while (!stop.load() && !finished.load()) {
        // Every request holds a row the versions disagree on, so an answer from one version
        // that names the other cannot pass.
        std::vector<std::size_t> req{differ[pick_differ(rng)]};
        for (std::size_t n = size_of(rng); req.size() < n;) {
          const std::size_t r = pick_any(rng);
          if (expected[1].margin[r] >= 1e-3 && expected[2].margin[r] >= 1e-3) req.push_back(r);
        }
        std::shuffle(req.begin(), req.end(), rng);
        json body = {{"instances", json::array()}};
        for (std::size_t r : req) body["instances"].push_back(rows[r]);
        const std::int64_t sent = now_ns();
        const auto res = client.Post("/v1/models/digits:predict", body.dump(), "application/json");
        if (!res) {
          fail("client " + std::to_string(c) + ": no answer (" + httplib::to_string(res.error()) +
               ")");
          return;
        }
        if (res->status != 200) {
          fail("client " + std::to_string(c) + ": status " + std::to_string(res->status) + ": " +
               res->body);
          return;
        }
        json a;
        try {
          a = json::parse(res->body);
        } catch (const std::exception& e) {
          fail("unparsable answer: " + res->body);
          return;
        }
        const std::string v = a.value("version", "");
        if (v != "1" && v != "2") {
          fail("the answer names version \"" + v + "\": " + res->body);
          return;
        }
        const int version = v == "1" ? 1 : 2;
        const Expected& e = expected[version];
        if (a.value("hash", "") != e.hash || res->get_header_value("X-Kiln-Model-Version") != v) {
          fail("version " + v + " answered with hash " + a.value("hash", "") + " and header " +
               res->get_header_value("X-Kiln-Model-Version") + ", expected hash " + e.hash);
          return;
        }
        const json& classes = a["classes"];
        bool right = classes.is_array() && classes.size() == req.size();
        for (std::size_t i = 0; right && i < req.size(); ++i)
          right = classes[i].is_string() && classes[i].get<std::string>() == e.classes[req[i]];
        if (!right) {
          std::string want;
          for (std::size_t r : req) want += e.classes[r] + " ";
          fail("wrong answer from version " + v + ": classes " + classes.dump() + ", expected " +
               want);
          return;
        }
        answers[c].push_back({sent, version});
        rows_sent[c] += static_cast<std::int64_t>(req.size());
        std::int64_t seen = last_sent_ns[version].load();
        while (seen < sent && !last_sent_ns[version].compare_exchange_weak(seen, sent)) {
        }
      }
    });
  }

  // The moves, spread over the run: 2 at 1/5, 1 at 2/5, 2 at 3/5, 1 at 4/5. After each, the
  // test waits until a request sent after the move is answered by the new version.
  struct Move {
    std::string args;
    int version;
    std::int64_t moved_ns = 0;
    std::int64_t seen_ns = 0;  // the first answer of the new version to a request sent after
  };
  std::vector<Move> moves = {{"registry alias set digits production 2", 2},
                             {"registry rollback digits", 1},
                             {"registry alias set digits production 2", 2},
                             {"registry rollback digits", 1}};
  for (std::size_t m = 0; m < moves.size() && !stop.load(); ++m) {
    const auto at =
        start + std::chrono::milliseconds(1000LL * seconds * static_cast<long long>(m + 1) / 5);
    while (Clock::now() < at && !stop.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (stop.load()) break;
    moves[m].moved_ns = now_ns();
    const kiln_test::CliResult r = kiln(moves[m].args + " --registry reg --json");
    const json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (r.rc != 0 || !j.is_object() || j.value("version", 0) != moves[m].version) {
      fail("`kiln " + moves[m].args + "` exited with " + std::to_string(r.rc) + ": " + r.out +
           r.err);
      break;
    }
    const auto bound = Clock::now() + kSeenBound;
    while (!stop.load() && last_sent_ns[moves[m].version].load() <= moves[m].moved_ns &&
           Clock::now() < bound)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (stop.load()) break;
    if (last_sent_ns[moves[m].version].load() <= moves[m].moved_ns) {
      fail("version " + std::to_string(moves[m].version) + " did not answer within " +
           std::to_string(kSeenBound.count()) + " s of `kiln " + moves[m].args + "`");
      break;
    }
    moves[m].seen_ns = now_ns();
  }
  while (!stop.load() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  finished.store(true);
  for (std::thread& t : clients) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const int exit_code = server.stop(SIGTERM, std::chrono::seconds(20));

  for (const std::string& f : failures) ADD_FAILURE() << f;
  ASSERT_EQ(failure_count.load(), 0);
  EXPECT_EQ(exit_code, 0) << "kiln serve did not stop cleanly on SIGTERM";

  std::int64_t total = 0, rows_total = 0, per_version[3] = {0, 0, 0};
  for (int c = 0; c < kClients; ++c) {
    total += static_cast<std::int64_t>(answers[c].size());
    rows_total += rows_sent[c];
    for (const Answer& a : answers[c]) ++per_version[a.version];
  }
  std::cout << "load: " << kClients << " clients, " << elapsed << " s, " << total << " requests ("
            << rows_total << " rows, " << static_cast<double>(total) / elapsed
            << " requests/s), version 1: " << per_version[1] << ", version 2: " << per_version[2]
            << ", errors: 0, wrong answers: 0\n";
  for (const Move& m : moves)
    std::cout << "  `kiln " << m.args << "`: version " << m.version << " answering after "
              << static_cast<double>(m.seen_ns - m.moved_ns) / 1e6 << " ms\n";
  EXPECT_GT(per_version[1], 0);
  EXPECT_GT(per_version[2], 0);

  // Once the new version has answered a request sent after the move, a request sent one
  // second later is never answered by the old one (the switch is not undone or mixed), until
  // the next move.
  for (std::size_t m = 0; m < moves.size(); ++m) {
    const std::int64_t from = moves[m].seen_ns + 1'000'000'000;
    const std::int64_t to = m + 1 < moves.size() ? moves[m + 1].moved_ns : now_ns();
    const int old_version = 3 - moves[m].version;
    std::int64_t stale = 0, checked = 0;
    for (const auto& list : answers)
      for (const Answer& a : list)
        if (a.sent_ns > from && a.sent_ns < to) {
          ++checked;
          if (a.version == old_version) ++stale;
        }
    EXPECT_EQ(stale, 0) << "version " << old_version << " answered " << stale << " of " << checked
                        << " requests sent over 1 s after version " << moves[m].version
                        << " took over";
  }
}

}  // namespace
