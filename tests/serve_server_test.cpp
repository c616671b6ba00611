// kiln::serve::ModelServer::handle without HTTP: the routes and their status codes, the
// predictions against infer::Model::run on the same rows, the body limit before parsing,
// the model description against the file, /metrics parsed back and its counters against
// the requests made, shutdown (ready() false, 503 shutting_down, health still answered,
// final snapshots written, idempotent) and the configuration errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/serve/server.hpp"
#include "tests/support/monitor_test_support.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using json = nlohmann::json;
namespace prom = kiln::test::prometheus;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class ServeServer : public kiln_test::TempDirTest {
 protected:
  ServeServer() : TempDirTest("kiln_serve_server_test_") {}

  void SetUp() override {
    TempDirTest::SetUp();
    kiln_test::save_digits_model_with_profile(path("digits.kiln").string());
  }

  kiln::serve::ServerOptions options() const {
    kiln::serve::ServerOptions o;
    o.models = {{.name = "", .reference = path("digits.kiln").string()}};
    o.max_body_bytes = 4096;
    return o;
  }

  /// Three rows of 64 pixels: row r, pixel i = (r * 7 + i) % 17.
  static std::vector<float> rows() {
    std::vector<float> v;
    for (int r = 0; r < 3; ++r)
      for (int i = 0; i < 64; ++i) v.push_back(static_cast<float>((r * 7 + i) % 17));
    return v;
  }
  static std::string predict_body() {
    const std::vector<float> v = rows();
    json list = json::array();
    for (int r = 0; r < 3; ++r)
      list.push_back(std::vector<float>(v.begin() + 64 * r, v.begin() + 64 * (r + 1)));
    return json{{"instances", list}}.dump();
  }
};

TEST_F(ServeServer, AnswersEveryRouteAndPredictsWhatTheModelComputes) {
  kiln::serve::ModelServer server(options());
  ASSERT_EQ(server.models().size(), 1u);
  EXPECT_EQ(server.models()[0].name, "digits");  // the file's stem
  EXPECT_TRUE(server.ready());

  const kiln::serve::Response r =
      server.handle("POST", "/v1/models/digits:predict", predict_body());
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "X-Kiln-Model-Version");
  EXPECT_EQ(r.headers[0].second, "file");
  const json answer = json::parse(r.body);
  EXPECT_EQ(answer["model"], "digits");
  EXPECT_EQ(answer["version"], "file");
  EXPECT_EQ(answer["hash"], kiln::model_content_hash(path("digits.kiln").string()));
  // The reference: the same rows through infer::Model::run (with the recorded preprocessing).
  const auto model =
      kiln::infer::Model::load(path("digits.kiln").string(), {.apply_preprocessing = true});
  const std::vector<float> v = rows();
  const kiln::Tensor probs = model.run({{"pixels", kiln::Tensor::from(v, {3, 64})}})[0];
  const json& out = answer["outputs"]["probabilities"];
  ASSERT_EQ(out.size(), 3u);
  for (std::size_t row = 0; row < 3; ++row) {
    ASSERT_EQ(out[row].size(), 10u);
    for (std::size_t k = 0; k < 10; ++k) {
      EXPECT_EQ(out[row][k].get<float>(), probs.data<float>()[row * 10 + k]) << row << "," << k;
    }
    EXPECT_EQ(answer["ids"][row], "file-00000000000" + std::to_string(row + 1));
  }

  // Status codes of the other routes.
  const auto status = [&](const char* method, const std::string& p, const std::string& body = "") {
    return server.handle(method, p, body).status;
  };
  EXPECT_EQ(status("GET", "/healthz"), 200);
  EXPECT_EQ(status("HEAD", "/healthz"), 200);
  EXPECT_EQ(status("GET", "/readyz"), 200);
  EXPECT_EQ(status("GET", "/v1/models"), 200);
  EXPECT_EQ(status("GET", "/v1/models/digits"), 200);
  EXPECT_EQ(status("GET", "/v1/models/digits?x=1"), 200);
  EXPECT_EQ(status("POST", "/healthz"), 405);
  EXPECT_EQ(status("GET", "/v1/models/digits:predict"), 405);
  EXPECT_EQ(status("POST", "/v1/models/digits"), 405);
  EXPECT_EQ(status("GET", "/v1/models/other"), 404);
  EXPECT_EQ(status("GET", "/v1/models/digits:explain"), 404);
  EXPECT_EQ(status("GET", "/v1/models/digits/extra"), 404);
  EXPECT_EQ(status("GET", "/"), 404);
  EXPECT_EQ(status("POST", "/v1/models/digits:predict", "{"), 400);
  // The body limit comes before anything is parsed, on any route.
  const kiln::serve::Response big =
      server.handle("POST", "/v1/models/digits:predict", std::string(4097, '['));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(json::parse(big.body)["error"]["code"], "too_large");
  EXPECT_NE(json::parse(big.body)["error"]["message"].get<std::string>().find("4096"),
            std::string::npos);
  EXPECT_EQ(status("GET", "/healthz", std::string(4097, ' ')), 413);
  // An error of :predict names the model and the version too.
  const json wrong = json::parse(server.handle("POST", "/v1/models/digits:predict", "[1]").body);
  EXPECT_EQ(wrong["model"], "digits");
  EXPECT_EQ(wrong["version"], "file");
  EXPECT_TRUE(wrong["error"]["code"].is_string());

  // The description, against the file.
  const json detail = json::parse(server.handle("GET", "/v1/models/digits", "").body);
  EXPECT_EQ(detail["inputs"], json::parse(R"([{"name":"pixels","dtype":"f32","shape":[-1,64]}])"));
  EXPECT_EQ(detail["outputs"],
            json::parse(R"([{"name":"probabilities","dtype":"f32","shape":[-1,10]}])"));
  EXPECT_EQ(detail["metadata"]["name"], "digits-monitor");
  EXPECT_EQ(detail["metadata"]["semver"], "1.0.0");
  EXPECT_EQ(detail["metadata"]["created"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(detail["monitor"], true);
  EXPECT_EQ(detail["reloads"], 0);

  // /metrics: the requests above, by route and code (19 before this one).
  const kiln::serve::Response metrics = server.handle("GET", "/metrics", "");
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const prom::Exposition m = prom::parse(metrics.body);
  EXPECT_EQ(
      m.value("kiln_requests_total", {{"model", "digits"}, {"route", "predict"}, {"code", "200"}}),
      1);
  EXPECT_EQ(
      m.value("kiln_requests_total", {{"model", "digits"}, {"route", "predict"}, {"code", "400"}}),
      2);
  EXPECT_EQ(m.sum("kiln_requests_total", {{"code", "405"}}), 3);
  EXPECT_EQ(m.sum("kiln_requests_total", {{"code", "404"}}), 4);
  EXPECT_EQ(m.sum("kiln_requests_total", {{"code", "413"}}), 2);
  EXPECT_EQ(m.sum("kiln_requests_total"), 19);
  EXPECT_EQ(m.value("kiln_requests_in_flight"), 0);
  EXPECT_EQ(m.value("kiln_drift_rows", {{"model", "digits"}, {"version", "file"}}), 3);
}

TEST_F(ServeServer, ShutdownRefusesNewWorkKeepsHealthAndWritesSnapshots) {
  kiln::serve::ServerOptions o = options();
  o.snapshot_dir = path("drift").string();
  o.snapshot_interval = std::chrono::hours(1);  // only the final one
  kiln::serve::ModelServer server(o);
  ASSERT_EQ(server.handle("POST", "/v1/models/digits:predict", predict_body()).status, 200);
  EXPECT_FALSE(std::filesystem::exists(path("drift/digits-vfile.json")));
  server.shutdown();
  EXPECT_FALSE(server.ready());
  EXPECT_TRUE(std::filesystem::exists(path("drift/digits-vfile.json")));
  const json snapshot = json::parse(slurp(path("drift/digits-vfile.json")));
  EXPECT_TRUE(snapshot.is_object());
  const kiln::serve::Response p =
      server.handle("POST", "/v1/models/digits:predict", predict_body());
  EXPECT_EQ(p.status, 503);
  EXPECT_EQ(json::parse(p.body)["error"]["code"], "shutting_down");
  EXPECT_EQ(server.handle("POST", "/v1/models/digits:feedback", R"({"ids":[],"labels":[]})").status,
            503);
  EXPECT_EQ(server.handle("GET", "/readyz", "").status, 503);
  EXPECT_EQ(server.handle("GET", "/healthz", "").status, 200);
  EXPECT_EQ(server.handle("GET", "/metrics", "").status, 200);
  server.shutdown();  // idempotent
}

TEST_F(ServeServer, RefusesConfigurationsItCannotServe) {
  kiln::serve::ServerOptions o = options();
  o.models.push_back(o.models[0]);
  EXPECT_THROW(kiln::serve::ModelServer{o}, kiln::ValueError);  // two models named digits
  o = options();
  o.models[0].name = "bad name";
  EXPECT_THROW(kiln::serve::ModelServer{o}, kiln::ValueError);
  o = options();
  o.models.clear();
  EXPECT_THROW(kiln::serve::ModelServer{o}, kiln::ValueError);
  o = options();
  o.models[0].reference = path("missing.kiln").string();
  EXPECT_THROW(kiln::serve::ModelServer{o}, kiln::Error);
  o = options();
  o.workers = 0;
  EXPECT_THROW(kiln::serve::ModelServer{o}, kiln::ValueError);
}

}  // namespace
