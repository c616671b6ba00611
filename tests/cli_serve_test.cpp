// `kiln serve` run as a user would (issue 14, acceptance 1): a digits model trained by
// `kiln train`, served on a loopback port; every row of data/digits.csv posted in a few
// requests gets the class and probabilities `kiln predict` writes for it; /metrics parses
// as Prometheus text (tests/support/prometheus_text.hpp) and counts exactly the requests
// made; /healthz, /readyz, /v1/models and /v1/models/<name> answer what the file holds;
// SIGTERM while requests wait in the batcher answers all of them and exits 0.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kiln/io/model_file.hpp"
#include "tests/support/cli_test_support.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/serve_process.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace prom = kiln::test::prometheus;

const std::string& digits_csv = kiln_test::serve_digits_csv;

class CliServe : public kiln_test::CliTest {
 protected:
  CliServe() : CliTest("kiln_cli_serve_test_") {}

  void SetUp() override {
    CliTest::SetUp();
    const kiln_test::CliResult r = kiln(kiln_test::train_digits_args("m.kiln"));
    ASSERT_EQ(r.rc, 0) << r.err;
  }

  static httplib::Client client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(std::chrono::seconds(5));
    c.set_read_timeout(std::chrono::seconds(30));
    c.set_write_timeout(std::chrono::seconds(10));
    return c;
  }
};

TEST_F(CliServe, PredictsTheClassesOfKilnPredictAndCountsEveryRequest) {
  // What `kiln predict` says for every row: the class and the probabilities.
  const kiln_test::CliResult predicted =
      kiln("predict m.kiln --data " + digits_csv + " --probabilities --out predicted.csv");
  ASSERT_EQ(predicted.rc, 0) << predicted.err;
  const kiln_test::CsvRows expected = kiln_test::read_csv_rows(path("predicted.csv"), "label");
  std::vector<std::string> expected_class;
  {
    const std::vector<std::string> lines =
        kiln_test::lines(kiln_test::slurp(path("predicted.csv")));
    for (std::size_t i = 1; i < lines.size(); ++i) {
      expected_class.push_back(lines[i].substr(0, lines[i].find(',')));
    }
  }
  const kiln_test::CsvRows data = kiln_test::read_csv_rows(digits_csv, "label");
  ASSERT_EQ(data.rows.size(), 1797u);
  ASSERT_EQ(data.header.size(), 64u);
  ASSERT_EQ(expected.rows.size(), data.rows.size());
  ASSERT_EQ(expected_class.size(), data.rows.size());

  kiln_test::ServeProcess server(dir_, {"digits=m.kiln", "--max-batch", "64"});
  EXPECT_EQ(server.first_line(),
            "serving digits (file m.kiln) on http://127.0.0.1:" + std::to_string(server.port()));
  httplib::Client c = client(server.port());
  const std::string hash = kiln::model_content_hash(path("m.kiln").string());

  // Requests of 500 rows (the last one shorter): 4 requests.
  std::int64_t predict_requests = 0;
  std::set<std::string> ids;
  for (std::size_t begin = 0; begin < data.rows.size(); begin += 500) {
    const std::size_t end = std::min(begin + 500, data.rows.size());
    const auto res = c.Post("/v1/models/digits:predict",
                            kiln_test::instances_body(data.rows, begin, end), "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ++predict_requests;
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("X-Kiln-Model-Version"), "file");
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    const json answer = json::parse(res->body);
    EXPECT_EQ(answer["model"], "digits");
    EXPECT_EQ(answer["version"], "file");
    EXPECT_EQ(answer["hash"], hash);
    const json& classes = answer["classes"];
    const json& probs = answer["outputs"]["probs"];
    ASSERT_EQ(classes.size(), end - begin);
    ASSERT_EQ(probs.size(), end - begin);
    ASSERT_EQ(answer["ids"].size(), end - begin);
    for (const auto& id : answer["ids"]) ids.insert(id.get<std::string>());
    for (std::size_t i = begin; i < end; ++i) {
      EXPECT_EQ(classes[i - begin].get<std::string>(), expected_class[i]) << "row " << i;
      ASSERT_EQ(probs[i - begin].size(), 10u);
      for (std::size_t k = 0; k < 10; ++k) {
        // kiln predict prints 9 significant digits; batches of other sizes may round the
        // last float bit differently.
        EXPECT_NEAR(probs[i - begin][k].get<double>(), expected.rows[i][k], 2e-6)
            << "row " << i << " class " << k;
      }
    }
  }
  EXPECT_EQ(ids.size(), data.rows.size());  // every row its own id

  // Health, readiness, the model list and the model's description.
  auto res = c.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["status"], "ok");
  res = c.Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = c.Get("/v1/models");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  json list = json::parse(res->body)["models"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "digits");
  EXPECT_EQ(list[0]["reference"], "m.kiln");
  EXPECT_EQ(list[0]["version"], "file");
  EXPECT_EQ(list[0]["hash"], hash);
  EXPECT_EQ(list[0]["state"], "serving");
  res = c.Get("/v1/models/digits");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const json detail = json::parse(res->body);
  const json inspect = kiln_json("inspect m.kiln --json");
  ASSERT_EQ(detail["inputs"].size(), 1u);
  EXPECT_EQ(detail["inputs"][0]["name"], inspect["inputs"][0]["name"]);
  EXPECT_EQ(detail["inputs"][0]["dtype"], "f32");
  EXPECT_EQ(detail["inputs"][0]["shape"], json::parse("[-1, 64]"));
  EXPECT_EQ(detail["outputs"][0]["name"], "probs");
  EXPECT_EQ(detail["outputs"][0]["shape"], json::parse("[-1, 10]"));
  EXPECT_EQ(detail["metadata"]["labels"],
            json::parse(R"(["0","1","2","3","4","5","6","7","8","9"])"));
  EXPECT_EQ(detail["hash"], inspect["content_hash"]);
  EXPECT_TRUE(detail["monitor"].get<bool>());  // kiln train records a reference profile
  EXPECT_NEAR(detail["metadata"]["metrics"]["test_accuracy"].get<double>(),
              inspect["metrics"]["test_accuracy"].get<double>(), 1e-12);
  res = c.Get("/v1/models/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "unknown_model");

  // /metrics: valid Prometheus text whose counters are the requests above (the /metrics
  // request itself is counted after its answer is made).
  res = c.Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  prom::Exposition m;
  ASSERT_NO_THROW(m = prom::parse(res->body)) << res->body;
  EXPECT_EQ(
      m.value("kiln_requests_total", {{"model", "digits"}, {"route", "predict"}, {"code", "200"}}),
      predict_requests);
  EXPECT_EQ(m.value("kiln_requests_total", {{"model", ""}, {"route", "health"}, {"code", "200"}}),
            2);
  EXPECT_EQ(m.value("kiln_requests_total", {{"model", ""}, {"route", "models"}, {"code", "200"}}),
            1);
  EXPECT_EQ(
      m.value("kiln_requests_total", {{"model", "digits"}, {"route", "models"}, {"code", "200"}}),
      1);
  EXPECT_EQ(m.sum("kiln_requests_total", {{"code", "404"}}), 1);
  EXPECT_EQ(m.sum("kiln_requests_total"), predict_requests + 5);
  EXPECT_EQ(m.sum("kiln_request_duration_seconds_count"), predict_requests + 5);
  // Every row ran (each request alone: it has more rows than --max-batch) and was seen by
  // the drift monitor.
  EXPECT_EQ(m.value("kiln_batch_size_sum", {{"model", "digits"}}), 1797);
  EXPECT_EQ(m.value("kiln_batch_size_count", {{"model", "digits"}}), predict_requests);
  EXPECT_EQ(m.sum("kiln_drift_rows", {{"model", "digits"}}), 1797);
  EXPECT_EQ(m.value("kiln_model_info", {{"model", "digits"}, {"version", "file"}, {"hash", hash}}),
            1);
  res = c.Get("/metrics");
  ASSERT_TRUE(res);
  m = prom::parse(res->body);
  EXPECT_EQ(m.value("kiln_requests_total", {{"model", ""}, {"route", "metrics"}, {"code", "200"}}),
            1);

  EXPECT_EQ(server.process().stop(SIGTERM, std::chrono::seconds(20)), 0);
}

TEST_F(CliServe, SigtermAnswersTheRequestsInFlightAndExitsZero) {
  // One batch worker and batches that wait up to 30 s for rows to join them: the first
  // request holds the worker in its open batch, the requests to the other model (they
  // cannot join it) wait in the queue. SIGTERM must answer all of them at once.
  kiln_test::ServeProcess server(
      dir_, {"a=m.kiln", "b=m.kiln", "--workers", "1", "--max-batch", "1000", "--max-delay-us",
             "30000000", "--timeout-ms", "60000", "--threads", "16"});
  const kiln_test::CsvRows data = kiln_test::read_csv_rows(digits_csv, "label");
  const kiln_test::CliResult predicted =
      kiln("predict m.kiln --data " + digits_csv + " --out p.csv");
  ASSERT_EQ(predicted.rc, 0) << predicted.err;
  const std::vector<std::string> lines = kiln_test::lines(kiln_test::slurp(path("p.csv")));

  constexpr int requests = 8;  // request 0 to a, the others to b
  std::vector<int> status(requests, -1);
  std::vector<std::string> bodies(requests);
  std::vector<std::thread> clients;
  const auto post = [&](int r) {
    httplib::Client c = client(server.port());
    const auto res =
        c.Post(r == 0 ? "/v1/models/a:predict" : "/v1/models/b:predict",
               kiln_test::instances_body(data.rows, 10 * r, 10 * r + 10), "application/json");
    if (res) {
      status[r] = res->status;
      bodies[r] = res->body;
    }
  };
  clients.emplace_back(post, 0);
  for (int r = 1; r < requests; ++r) clients.emplace_back(post, r);
  // Wait until all of them are in the server (kiln_requests_in_flight) and the other
  // model's requests are queued (a request counts as in flight before its body is parsed,
  // and only then enters the queue): whichever model's request came first holds the worker
  // in its open batch, the others' wait in the queue.
  httplib::Client c = client(server.port());
  double in_flight = 0, queued = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  const auto settled = [&] { return in_flight == requests && queued >= 1; };
  while (!settled() && std::chrono::steady_clock::now() < give_up) {
    const auto res = c.Get("/metrics");
    if (res && res->status == 200) {
      const prom::Exposition m = prom::parse(res->body);
      in_flight = m.value("kiln_requests_in_flight");
      queued = m.value("kiln_queue_depth");
    }
    if (!settled()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(in_flight, requests);
  EXPECT_GE(queued, 1);  // the other model's requests cannot join the open batch
  EXPECT_EQ(::kill(server.process().pid(), SIGTERM), 0);
  int exit_code = -100;
  if (in_flight == requests) exit_code = server.wait_exit(std::chrono::seconds(20));
  if (exit_code != 0) server.process().stop(SIGKILL);  // the clients are not left waiting
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(exit_code, 0);

  for (int r = 0; r < requests; ++r) {
    ASSERT_EQ(status[r], 200) << "request " << r << ": " << bodies[r];
    const json answer = json::parse(bodies[r]);
    EXPECT_EQ(answer["model"], r == 0 ? "a" : "b");
    ASSERT_EQ(answer["classes"].size(), 10u);
    for (int i = 0; i < 10; ++i) {
      const std::string& line = lines[static_cast<std::size_t>(1 + 10 * r + i)];
      EXPECT_EQ(answer["classes"][static_cast<std::size_t>(i)].get<std::string>(),
                line.substr(0, line.find(',')))
          << "request " << r << " row " << i;
    }
  }
}

TEST_F(CliServe, RefusesBadCommandLines) {
  kiln_test::CliResult r = kiln("serve missing.kiln --port 0");
  EXPECT_EQ(r.rc, 4) << r.err;  // IoError: no such file, no registry
  EXPECT_NE(r.err.find("missing.kiln"), std::string::npos) << r.err;
  r = kiln("serve a=m.kiln a=m.kiln --port 0");
  EXPECT_EQ(r.rc, 3) << r.err;  // two models with one name
  EXPECT_NE(r.err.find("\"a\""), std::string::npos) << r.err;
  r = kiln("serve m.kiln --port 70000");
  EXPECT_EQ(r.rc, 1) << r.err;
  r = kiln("serve");
  EXPECT_EQ(r.rc, 1) << r.err;
  kiln_test::write(path("bad.kiln"), "not a model");
  r = kiln("serve bad.kiln --port 0");
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("bad.kiln"), std::string::npos) << r.err;
}

}  // namespace
