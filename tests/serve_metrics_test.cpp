// The server's metrics (src/serve/metrics.cpp) read back with the strict Prometheus text
// parser (tests/support/prometheus_text.hpp), and that parser refusing malformed text.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "serve/serve_internal.hpp"
#include "tests/support/monitor_test_support.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace prom = kiln::test::prometheus;
using kiln::serve::ModelSource;
using kiln::serve::ServerOptions;
using kiln::serve::detail::Metrics;
using kiln::serve::detail::ServedModel;

TEST(ServeMetrics, CountersAndHistogramsByHand) {
  Metrics m;
  for (double s : {0.0003, 0.0007, 0.004, 0.2, 30.0}) m.request("digits", "predict", 200, s);
  m.request("digits", "predict", 400, 0.001);
  m.request("", "health", 200, 0.0001);
  m.batch("digits", 3, 2, 0.002);
  m.batch("digits", 32, 9, 0.01);
  m.batch("digits", 1024, 1, 0.5);
  m.batch("digits", 2000, 1, 1);
  m.reload("digits", true);
  m.reload("digits", true);
  m.reload("digits", false);
  auto text = prom::parse(m.prometheus({}, 7));
  EXPECT_EQ(text.value("kiln_requests_total",
                       {{"model", "digits"}, {"route", "predict"}, {"code", "200"}}),
            5);
  EXPECT_EQ(text.value("kiln_requests_total",
                       {{"model", "digits"}, {"route", "predict"}, {"code", "400"}}),
            1);
  EXPECT_EQ(
      text.value("kiln_requests_total", {{"model", ""}, {"route", "health"}, {"code", "200"}}), 1);
  prom::Labels predict{{"model", "digits"}, {"route", "predict"}};
  auto bucket = [&](const char* le) {
    prom::Labels l = predict;
    l["le"] = le;
    return text.value("kiln_request_duration_seconds_bucket", l);
  };
  EXPECT_EQ(bucket("0.0005"), 1);  // 0.0003
  EXPECT_EQ(bucket("0.001"), 3);   // + 0.0007 and the 400's 0.001 (le is inclusive)
  EXPECT_EQ(bucket("0.005"), 4);
  EXPECT_EQ(bucket("0.25"), 5);
  EXPECT_EQ(bucket("10"), 5);
  EXPECT_EQ(bucket("+Inf"), 6);  // 30 s only here
  EXPECT_EQ(text.value("kiln_request_duration_seconds_count", predict), 6);
  EXPECT_NEAR(text.value("kiln_request_duration_seconds_sum", predict),
              0.0003 + 0.0007 + 0.004 + 0.2 + 30.0 + 0.001, 1e-12);
  prom::Labels digits{{"model", "digits"}};
  EXPECT_EQ(text.value("kiln_batch_size_bucket", {{"model", "digits"}, {"le", "2"}}), 0);
  EXPECT_EQ(text.value("kiln_batch_size_bucket", {{"model", "digits"}, {"le", "4"}}), 1);
  EXPECT_EQ(text.value("kiln_batch_size_bucket", {{"model", "digits"}, {"le", "32"}}), 2);
  EXPECT_EQ(text.value("kiln_batch_size_bucket", {{"model", "digits"}, {"le", "1024"}}), 3);
  EXPECT_EQ(text.value("kiln_batch_size_count", digits), 4);
  EXPECT_EQ(text.value("kiln_batch_size_sum", digits), 3 + 32 + 1024 + 2000);
  EXPECT_EQ(text.value("kiln_batch_requests_sum", digits), 13);
  EXPECT_EQ(text.value("kiln_batch_requests_bucket", {{"model", "digits"}, {"le", "1"}}), 2);
  EXPECT_EQ(text.value("kiln_batch_duration_seconds_count", digits), 4);
  EXPECT_EQ(text.value("kiln_reloads_total", {{"model", "digits"}, {"result", "accepted"}}), 2);
  EXPECT_EQ(text.value("kiln_reloads_total", {{"model", "digits"}, {"result", "refused"}}), 1);
  EXPECT_EQ(text.value("kiln_queue_depth"), 7);
  for (const char* name : {"kiln_requests_total", "kiln_request_duration_seconds",
                           "kiln_batch_size", "kiln_queue_depth", "kiln_model_info"}) {
    const prom::Family* f = text.family(name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_TRUE(f->has_help && f->has_type) << name;
  }
  EXPECT_EQ(text.family("kiln_request_duration_seconds")->type, "histogram");
  EXPECT_EQ(text.family("kiln_requests_total")->type, "counter");
  EXPECT_EQ(text.family("kiln_queue_depth")->type, "gauge");
}

TEST(ServeMetrics, LabelValuesEscaped) {
  Metrics m;
  const std::string odd = "a\"b\\c\nd";
  m.request(odd, "predict", 200, 0.01);
  std::string body = m.prometheus({}, 0);
  EXPECT_NE(body.find(R"(model="a\"b\\c\nd")"), std::string::npos);
  auto text = prom::parse(body);
  EXPECT_EQ(
      text.value("kiln_requests_total", {{"model", odd}, {"route", "predict"}, {"code", "200"}}),
      1);
}

TEST(ServeMetrics, ConcurrentUpdatesAllCounted) {
  Metrics m;
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        m.request(t % 2 ? "a" : "b", "predict", 200, 0.001 * (i % 7));
        m.batch("a", 1 + i % 5, 1, 0.001);
        if (i % 500 == 0) (void)prom::parse(m.prometheus({}, 0));  // reads while writing
      }
    });
  for (auto& t : pool) t.join();
  auto text = prom::parse(m.prometheus({}, 0));
  EXPECT_EQ(text.sum("kiln_requests_total"), 8000);
  EXPECT_EQ(text.sum("kiln_request_duration_seconds_count"), 8000);
  EXPECT_EQ(text.value("kiln_batch_size_count", {{"model", "a"}}), 8000);
  EXPECT_EQ(text.value("kiln_batch_size_sum", {{"model", "a"}}), 4 * (400 * (1 + 2 + 3 + 4 + 5)));
}

class ServeMetricsModels : public kiln_test::TempDirTest {
 protected:
  ServeMetricsModels() : TempDirTest("kiln_serve_metrics_test_") {}
};

TEST_F(ServeMetricsModels, PerModelDriftAndLabels) {
  const std::string file = path("digits.kiln").string();
  kiln_test::save_digits_model_with_profile(file);
  // A second model file without a profile: not monitored.
  kiln_test::DigitsMlp plain = kiln_test::digits_mlp();
  kiln::save_model(path("plain.kiln").string(), plain.graph, plain.save);
  ServerOptions o;
  ServedModel digits(ModelSource{.name = "digits", .reference = file}, nullptr, o);
  ServedModel other(ModelSource{.name = "plain", .reference = path("plain.kiln").string()}, nullptr,
                    o);
  auto version = digits.current();
  ASSERT_TRUE(version->monitor);
  // Show the monitor 200 rows of held-out digits, and label 150 of them.
  auto [train, holdout] = kiln_test::digits_split();
  kiln::Tensor x = holdout["features"].rows(0, 200).contiguous();
  auto outputs = version->monitor->run(version->model, {{"pixels", x}});
  auto predicted = kiln::serve::detail::predicted_values(*version, outputs);
  auto ids = digits.remember(version, predicted);
  auto y = holdout["target"].rows(0, 150).to(kiln::DType::f64).to_vector<double>();
  std::vector<std::string> unknown;
  EXPECT_EQ(digits.feedback(std::span(ids).first(150), y, unknown), 150);
  kiln::monitor::DriftReport report = version->monitor->report();

  Metrics m;
  auto text = prom::parse(m.prometheus({&digits, &other}, 0));
  prom::Labels dv{{"model", "digits"}, {"version", "file"}};
  EXPECT_EQ(text.value("kiln_model_info", {{"model", "digits"},
                                           {"version", "file"},
                                           {"hash", version->model.content_hash()}}),
            1);
  EXPECT_EQ(text.value("kiln_model_monitored", dv), 1);
  EXPECT_EQ(text.value("kiln_model_monitored", {{"model", "plain"}, {"version", "file"}}), 0);
  EXPECT_EQ(text.value("kiln_drift_rows", dv), 200);
  EXPECT_EQ(text.value("kiln_drift_any", dv), report.drifted ? 1 : 0);
  // One series per feature (64 pixels) and the prediction, values as the report has them.
  EXPECT_EQ(text.find("kiln_drift_psi", dv).size(), report.features.size() + 1);
  for (const auto& f : report.features) {
    prom::Labels l = dv;
    l["feature"] = f.name;
    EXPECT_DOUBLE_EQ(text.value("kiln_drift_psi", l), f.psi) << f.name;
    EXPECT_DOUBLE_EQ(text.value("kiln_drift_p_value", l), f.p_value) << f.name;
    EXPECT_EQ(text.value("kiln_drift_drifted", l), f.drifted ? 1 : 0) << f.name;
  }
  EXPECT_TRUE(text.find("kiln_drift_psi", {{"model", "plain"}}).empty());
  // Labels arrived: the live metric (accuracy) and the decay alarm.
  ASSERT_EQ(report.labels.labelled, 150u);
  double correct = 0;
  for (std::size_t i = 0; i < 150; ++i) correct += predicted[i] == y[i] ? 1 : 0;
  prom::Labels metric = dv;
  metric["metric"] = "accuracy";
  EXPECT_NEAR(text.value("kiln_live_metric", metric), correct / 150, 1e-12);
  EXPECT_EQ(text.value("kiln_labelled_rows", dv), 150);
  EXPECT_EQ(text.value("kiln_decay_alarm", dv), report.labels.decayed ? 1 : 0);
}

// The parser itself: what it must refuse, and what it must accept.
TEST(PrometheusText, RefusesMalformedText) {
  const char* bad[] = {
      "x 1",                                        // no final newline
      "x{a=\"b\\t\"} 1\n",                          // bad escape
      "x{a=\"b} 1\n",                               // unterminated value
      "x{a=b} 1\n",                                 // unquoted value
      "x{1a=\"b\"} 1\n",                            // bad label name
      "x{__name__=\"b\"} 1\n",                      // reserved label name
      "x{a=\"1\",a=\"2\"} 1\n",                     // label twice
      "1x 1\n",                                     // bad metric name
      "x 1.2.3\n",                                  // bad value
      "x nan\n",                                    // NaN is spelled NaN
      "x 1 2.5\n",                                  // bad timestamp
      "x1\n",                                       // no value
      "x 1\nx 2\n",                                 // series twice
      "x 1\ny 1\nx{a=\"b\"} 1\n",                   // family lines not together
      "x 1\n# TYPE x counter\n",                    // TYPE after samples
      "# TYPE x counter\n# TYPE x counter\nx 1\n",  // TYPE twice
      "# TYPE x kounter\nx 1\n",                    // unknown type
      "# TYPE x counter\nx -1\n",                   // negative counter
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} "
      "1\nh_sum 1\nh_count 1\n",
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",  // no _sum
      "# TYPE h histogram\nh 1\n",                                 // no suffix
  };
  for (const char* text : bad) EXPECT_THROW(prom::parse(text), std::runtime_error) << text;
}

TEST(PrometheusText, AcceptsValidText) {
  auto text = prom::parse(
      "# HELP x A help with \\\\ and \\n.\n# TYPE x gauge\nx{a=\"q\\\"\\\\\\n\",b=\"\"} NaN\n"
      "x{a=\"2\"} +Inf 1700000000000\nx{a=\"3\"} -1.5e-3\n"
      "# a comment\n\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 3\n"
      "h_sum 2.5\nh_count 3\nuntyped_thing 4\n");
  EXPECT_EQ(text.family("x")->help, "A help with \\ and \n.");
  EXPECT_TRUE(std::isnan(text.value("x", {{"a", "q\"\\\n"}, {"b", ""}})));
  EXPECT_TRUE(std::isinf(text.value("x", {{"a", "2"}})));
  EXPECT_EQ(text.value("x", {{"a", "3"}}), -1.5e-3);
  EXPECT_EQ(text.value("h_count"), 3);
  EXPECT_EQ(text.value("untyped_thing"), 4);
  EXPECT_EQ(text.family("untyped_thing")->type, "untyped");
}

}  // namespace
