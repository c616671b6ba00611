// The server's JSON (src/serve/codec.cpp): every :predict form gives the same feeds as the
// values written by hand, every error has its code and a message naming the input, row and
// element, deep nesting is refused by the pre-scan, outputs read back bit for bit, and
// feedback labels are class names, indices or numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/serve_internal.hpp"
#include "tests/support/serve_test_models.hpp"

namespace {

using kiln::serve::ServerOptions;
using kiln::serve::detail::parse_feedback;
using kiln::serve::detail::parse_predict;
using kiln::serve::detail::RequestError;
using json = nlohmann::json;

const kiln::infer::Model& classifier() {
  static const kiln::infer::Model m = kiln_test::serve_classifier();
  return m;
}
const kiln::infer::Model& two_inputs() {
  static const kiln::infer::Model m = kiln_test::serve_two_inputs();
  return m;
}

/// Row r of a 64-pixel batch: pixel i = (r * 64 + i) % 17.
json pixel_row(int r, int n = 64) {
  json row = json::array();
  for (int i = 0; i < n; ++i) row.push_back((r * 64 + i) % 17);
  return row;
}

void expect_pixels(const kiln::serve::detail::PredictRequest& req, int rows) {
  ASSERT_EQ(req.rows, rows);
  ASSERT_EQ(req.feeds.size(), 1u);
  EXPECT_EQ(req.feeds[0].first, "pixels");
  const kiln::Tensor& t = req.feeds[0].second;
  ASSERT_EQ(t.shape(), kiln::Shape({rows, 64}));
  auto v = t.to_vector<float>();
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < 64; ++i)
      ASSERT_EQ(v[static_cast<std::size_t>(r * 64 + i)], static_cast<float>((r * 64 + i) % 17));
}

/// The RequestError parse_predict throws for `body`.
RequestError predict_error(const std::string& body, const kiln::infer::Model& model,
                           ServerOptions options = {}) {
  try {
    parse_predict(body, model, options);
  } catch (const RequestError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body.substr(0, 200);
  return RequestError(0, "", "");
}

#define EXPECT_REQUEST_ERROR(e, status_, code_, ...)                      \
  do {                                                                    \
    EXPECT_EQ((e).status, status_);                                       \
    EXPECT_EQ((e).code, code_);                                           \
    for (const std::string& part : std::vector<std::string>{__VA_ARGS__}) \
      EXPECT_NE(std::string((e).what()).find(part), std::string::npos)    \
          << "'" << part << "' not in: " << (e).what();                   \
  } while (0)

TEST(ServeCodec, InputsForm) {
  json body = {{"inputs", {{"pixels", {pixel_row(0), pixel_row(1), pixel_row(2)}}}}};
  expect_pixels(parse_predict(body.dump(), classifier(), {}), 3);
}

TEST(ServeCodec, InstancesRowsForm) {
  json body = {{"instances", {pixel_row(0), pixel_row(1)}}};
  expect_pixels(parse_predict(body.dump(), classifier(), {}), 2);
}

TEST(ServeCodec, InstancesObjectsForm) {
  json body = {{"instances", {{{"pixels", pixel_row(0)}}, {{"pixels", pixel_row(1)}}}}};
  expect_pixels(parse_predict(body.dump(), classifier(), {}), 2);
}

TEST(ServeCodec, TwoInputsBothForms) {
  json x0 = {{1, 2, 3}, {4, 5, 6.5}}, x1 = {{-1, 0, 0.25}, {7, 8, 9}};
  json a = {{"inputs", {{"x", {x0, x1}}, {"k", {3, 0}}}}};
  json b = {{"instances", {{{"k", 3}, {"x", x0}}, {{"x", x1}, {"k", 0}}}}};
  for (const json& body : {a, b}) {
    auto req = parse_predict(body.dump(), two_inputs(), {});
    ASSERT_EQ(req.rows, 2);
    ASSERT_EQ(req.feeds.size(), 2u);
    EXPECT_EQ(req.feeds[0].first, "x");
    EXPECT_EQ(req.feeds[0].second.shape(), kiln::Shape({2, 2, 3}));
    EXPECT_EQ(req.feeds[0].second.to_vector<float>(),
              (std::vector<float>{1, 2, 3, 4, 5, 6.5f, -1, 0, 0.25f, 7, 8, 9}));
    EXPECT_EQ(req.feeds[1].first, "k");
    EXPECT_EQ(req.feeds[1].second.dtype(), kiln::DType::i64);
    EXPECT_EQ(req.feeds[1].second.to_vector<std::int64_t>(), (std::vector<std::int64_t>{3, 0}));
  }
  // Several inputs: a bare row does not say which input it is.
  auto e = predict_error(json{{"instances", {x0}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "instance 0", "'x'", "'k'");
}

TEST(ServeCodec, LargeIntegersKeepTheirValue) {
  std::int64_t big = (std::int64_t{1} << 53) + 1;  // not representable as a double
  json body = {{"inputs", {{"x", {{{0, 0, 0}, {0, 0, 0}}}}, {"k", {big}}}}};
  auto req = parse_predict(body.dump(), two_inputs(), {});
  EXPECT_EQ(req.feeds[1].second.to_vector<std::int64_t>()[0], big);
}

TEST(ServeCodec, MissingAndUnknownInputs) {
  json x = {{{1, 2, 3}, {4, 5, 6}}};
  auto e = predict_error(json{{"inputs", {{"x", x}}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "missing_input", "'k'");
  e = predict_error(json{{"inputs", {{"x", x}, {"k", {1}}, {"extra", {1}}}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "unknown_input", "'extra'");
  e = predict_error(json{{"instances", {{{"x", x[0]}, {"k", 1}, {"kk", 2}}}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "unknown_input", "instance 0", "'kk'");
  e = predict_error(json{{"instances", {{{"x", x[0]}, {"k", 1}}, {{"x", x[0]}}}}}.dump(),
                    two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "missing_input", "instance 1", "'k'");
}

TEST(ServeCodec, WrongShapes) {
  json rows = {pixel_row(0), pixel_row(1, 63)};
  auto e = predict_error(json{{"instances", rows}}.dump(), classifier());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_shape", "input 'pixels' row 1", "[64]", "got 63");
  e = predict_error(json{{"inputs", {{"pixels", pixel_row(0)}}}}.dump(), classifier());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_shape", "input 'pixels' row 0", "[64]", "got 0");
  // A row nested one level too deep, and an inner dimension wrong.
  json deep = pixel_row(0);
  deep[5] = json::array({1});
  e = predict_error(json{{"instances", {deep}}}.dump(), classifier());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_shape", "input 'pixels' row 0 element [5]");
  json x = {{{1, 2, 3}, {4, 5}}};
  e = predict_error(json{{"inputs", {{"x", x}, {"k", {1}}}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_shape", "input 'x' row 0", "[2, 3]", "got 2");
  // Inputs that disagree on the number of rows.
  json x2 = {{{1, 2, 3}, {4, 5, 6}}, {{1, 2, 3}, {4, 5, 6}}};
  e = predict_error(json{{"inputs", {{"x", x2}, {"k", {1}}}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_shape", "'k' has 1 rows", "'x' has 2");
}

TEST(ServeCodec, WrongTypes) {
  for (json bad :
       {json("NaN"), json("Infinity"), json(nullptr), json(true), json("7"), json::object()}) {
    json row = pixel_row(0);
    row[10] = bad;
    auto e = predict_error(json{{"instances", {pixel_row(0), row}}}.dump(), classifier());
    EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "input 'pixels' row 1 element [10]");
  }
  json x = {{{1, 2, 3}, {4, 5, 6}}};
  auto e = predict_error(json{{"inputs", {{"x", x}, {"k", {1.5}}}}}.dump(), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "input 'k' row 0", "1.5", "integer", "i64");
  e = predict_error(R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": [18446744073709551615]}})",
                    two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "input 'k' row 0", "out of range");
  // Integers are fine for a float input.
  auto ok = parse_predict(json{{"inputs", {{"x", x}, {"k", {2}}}}}.dump(), two_inputs(), {});
  EXPECT_EQ(ok.feeds[0].second.to_vector<float>()[5], 6.0f);
}

TEST(ServeCodec, NonFiniteRefused) {
  // 1e39 is a finite double but not a finite f32; 1e400 is not even a finite double.
  for (std::string v : {"1e39", "-1e39", "1e400", "-1e400"}) {
    std::string row = "[";
    for (int i = 0; i < 63; ++i) row += std::to_string(i % 17) + ",";
    row += v + "]";
    auto e = predict_error(R"({"instances": [)" + row + "]}", classifier());
    if (v.ends_with("e39"))
      EXPECT_REQUEST_ERROR(e, 400, "not_finite", "input 'pixels' row 0 element [63]", "e+39");
    else  // beyond a double: refused by the parser, which names the number
      EXPECT_REQUEST_ERROR(e, 400, "not_finite", v);
  }
}

TEST(ServeCodec, RowLimitsAndEmptyBatches) {
  ServerOptions o;
  o.max_rows = 3;
  json rows = {pixel_row(0), pixel_row(1), pixel_row(2), pixel_row(3)};
  auto e = predict_error(json{{"instances", rows}}.dump(), classifier(), o);
  EXPECT_REQUEST_ERROR(e, 413, "too_many_rows", "4 rows", "limit of 3");
  e = predict_error(json{{"inputs", {{"pixels", rows}}}}.dump(), classifier(), o);
  EXPECT_REQUEST_ERROR(e, 413, "too_many_rows", "'pixels'", "4 rows", "limit of 3");
  rows.erase(3);
  EXPECT_EQ(parse_predict(json{{"instances", rows}}.dump(), classifier(), o).rows, 3);
  e = predict_error(R"({"instances": []})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "no rows");
  e = predict_error(R"({"inputs": {"pixels": []}})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "no rows");
}

TEST(ServeCodec, BadBodies) {
  auto e = predict_error("{\"instances\": [[1, 2", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_json", "not JSON");
  e = predict_error("", classifier());
  EXPECT_EQ(e.code, "bad_json");
  e = predict_error("[1, 2]", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "\"inputs\"", "\"instances\"");
  e = predict_error(R"({"rows": []})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "neither");
  e = predict_error(R"({"inputs": {}, "instances": []})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "both");
  e = predict_error(R"({"inputs": [1]})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "\"inputs\" must be an object");
  ServerOptions o;
  o.max_body_bytes = 100;
  e = predict_error(json{{"instances", {pixel_row(0)}}}.dump(), classifier(), o);
  EXPECT_REQUEST_ERROR(e, 413, "too_large", "limit of 100");
}

TEST(ServeCodec, DeepNestingRefusedBeforeParsing) {
  // A megabyte of '[': refused by the scan (the parser would otherwise build a million
  // nested arrays).
  auto e = predict_error(std::string(1 << 20, '['), classifier());
  EXPECT_REQUEST_ERROR(e, 400, "too_deep", "deeper than 32");
  ServerOptions o;
  o.max_json_depth = 4;
  // Depth 4 is fine (object, object, array, array)...
  json ok = {{"inputs", {{"x", {{{1, 2, 3}, {4, 5, 6}}}}, {"k", {1}}}}};
  // ... which is 5 for x: {inputs: {x: [ [ [ ...
  e = predict_error(ok.dump(), two_inputs(), o);
  EXPECT_REQUEST_ERROR(e, 400, "too_deep", "deeper than 4");
  o.max_json_depth = 5;
  EXPECT_EQ(parse_predict(ok.dump(), two_inputs(), o).rows, 1);
  // Brackets inside strings (escaped quotes included) do not count.
  std::string s = R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": [1]}, "note": "[[[[[[\"[[[[[["})";
  EXPECT_EQ(parse_predict(s, two_inputs(), o).rows, 1);
}

TEST(ServeCodec, FormatPredictReadsBackExactly) {
  const kiln::infer::Model& model = classifier();
  json body = {{"instances", {pixel_row(0), pixel_row(1), pixel_row(2)}}};
  auto req = parse_predict(body.dump(), model, {});
  std::vector<kiln::Tensor> outputs = model.run(req.feeds);
  kiln::serve::detail::LoadedVersion version{.model = model,
                                             .version = "3",
                                             .hash = "abc\"def",
                                             .path = "m.kiln",
                                             .monitor = nullptr,
                                             .loaded_at = {}};
  std::string text =
      kiln::serve::detail::format_predict("digits", version, outputs, {"3-1", "3-2", "3-3"});
  json answer = json::parse(text);
  EXPECT_EQ(answer["model"], "digits");
  EXPECT_EQ(answer["version"], "3");
  EXPECT_EQ(answer["hash"], "abc\"def");
  EXPECT_EQ(answer["ids"], json({"3-1", "3-2", "3-3"}));
  const json& probs = answer["outputs"]["probabilities"];
  ASSERT_EQ(probs.size(), 3u);
  auto expected = outputs[0].to_vector<float>();
  std::vector<double> predicted = kiln::serve::detail::predicted_values(model, outputs);
  ASSERT_EQ(predicted.size(), 3u);
  for (std::size_t r = 0; r < 3; ++r) {
    ASSERT_EQ(probs[r].size(), 10u);
    std::size_t best = 0;
    for (std::size_t c = 0; c < 10; ++c) {
      // Bit for bit: the text reads back as the same float.
      EXPECT_EQ(static_cast<float>(probs[r][c].get<double>()), expected[r * 10 + c]);
      if (expected[r * 10 + c] > expected[r * 10 + best]) best = c;
    }
    EXPECT_EQ(predicted[r], static_cast<double>(best));
    EXPECT_EQ(answer["classes"][r], "c" + std::to_string(best));
  }
}

TEST(ServeCodec, FormatPredictWithoutLabels) {
  const kiln::infer::Model& model = two_inputs();
  json body = {
      {"inputs",
       {{"x", {{{1, 2, 3}, {4, 5, 6.125}}, {{0.1, 0.2, 0.3}, {0, 0, 1e-8}}}}, {"k", {3, 1}}}}};
  auto req = parse_predict(body.dump(), model, {});
  std::vector<kiln::Tensor> outputs = model.run(req.feeds);
  kiln::serve::detail::LoadedVersion version{.model = model,
                                             .version = "file",
                                             .hash = "h",
                                             .path = "",
                                             .monitor = nullptr,
                                             .loaded_at = {}};
  json answer =
      json::parse(kiln::serve::detail::format_predict("two", version, outputs, {"a", "b"}));
  EXPECT_FALSE(answer.contains("classes"));
  auto totals = outputs[0].to_vector<float>();
  EXPECT_EQ(static_cast<float>(answer["outputs"]["total"][0].get<double>()), totals[0]);
  EXPECT_EQ(static_cast<float>(answer["outputs"]["total"][1].get<double>()), totals[1]);
  EXPECT_FLOAT_EQ(totals[0], 21.125f);
  EXPECT_EQ(answer["outputs"]["onehot"], json({{0, 0, 0, 1}, {0, 1, 0, 0}}));
  // Regression: the predicted value is the first element of the first output.
  auto predicted = kiln::serve::detail::predicted_values(model, outputs);
  EXPECT_EQ(predicted, (std::vector<double>{totals[0], totals[1]}));
}

TEST(ServeCodec, Feedback) {
  ServerOptions o;
  auto f =
      parse_feedback(R"({"ids": ["a", "b", "c"], "labels": ["c7", 3, "c0"]})", classifier(), o);
  EXPECT_EQ(f.ids, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(f.labels, (std::vector<double>{7, 3, 0}));
  auto g = parse_feedback(R"({"ids": ["a"], "labels": [2.5]})", two_inputs(), o);
  EXPECT_EQ(g.labels, (std::vector<double>{2.5}));
  auto error = [&](const std::string& body, const kiln::infer::Model& m) {
    try {
      parse_feedback(body, m, o);
    } catch (const RequestError& e) {
      return e;
    }
    ADD_FAILURE() << "no error for " << body;
    return RequestError(0, "", "");
  };
  auto e = error(R"({"ids": ["a", "b"], "labels": ["c1"]})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "2 elements", "has 1");
  e = error(R"({"ids": ["a"], "labels": ["dog"]})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "labels[0]", "\"dog\"");
  e = error(R"({"ids": ["a", "b"], "labels": [1, 10]})", classifier());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "labels[1]", "10", "0 to 9");
  e = error(R"({"ids": ["a"], "labels": ["1.5"]})", two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "labels[0]");
  e = error(R"({"ids": [1], "labels": [1]})", two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "wrong_type", "ids[0]");
  e = error(R"({"labels": [1]})", two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "\"ids\"");
  e = error(R"({"ids": [], "labels": []})", two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "bad_request", "empty");
  e = error(std::string(100000, '{'), two_inputs());
  EXPECT_REQUEST_ERROR(e, 400, "too_deep");
}

TEST(ServeCodec, ErrorResponse) {
  auto r = kiln::serve::detail::error_response(
      RequestError(413, "too_many_rows", "input 'x' has \"5\" rows"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.content_type, "application/json");
  json body = json::parse(r.body);
  EXPECT_EQ(
      body,
      json({{"error", {{"code", "too_many_rows"}, {"message", "input 'x' has \"5\" rows"}}}}));
  // Bytes that are not UTF-8 (from a client's input name) still give valid JSON.
  auto bad = kiln::serve::detail::error_response(RequestError(400, "unknown_input", "no '\xff'"));
  json parsed;
  EXPECT_NO_THROW(parsed = json::parse(bad.body));
}

}  // namespace
