// The CSV reader: exact numbers (against strtof), RFC 4180 quoting, kinds and encodings,
// targets and their labels, the schema (JSON round trip, reading new files), block edges.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "data_test_util.hpp"
#include "kiln/data/csv.hpp"

namespace kiln::data {
namespace {

using testing::mentions;
using testing::message_of;
using testing::TempDir;

std::uint32_t bits(float f) {
  std::uint32_t b = 0;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

float reference_float(const std::string& s) { return std::strtof(s.c_str(), nullptr); }

std::vector<std::string> tricky_numbers() {
  return {"0.1",
          "1e-300",
          "-1e-300",
          "1e-40",
          "1.401298464324817e-45",
          "7e-46",
          "-0",
          "0",
          "0.30000000000000004",
          "3.14159265358979323846264338327950288419716939937510582097",
          "123456789012345678901234567890",
          "7.038531e-26",
          "1.17549435e-38",
          "1.1754942e-38",
          "3.4028235e38",
          "3.40282356e38",
          "16777217",
          "16777219",
          "0.000000000000000000001",
          "2.5",
          "-2.5",
          ".5",
          "5.",
          "-.5e-3",
          "1E5",
          "4.9406564584124654e-324",
          "8.589973e9",
          "1.00000017881393432617187499",
          "1.000000178813934326171875",
          "1.00000017881393432617187501"};
}

TEST(CsvValuesTest, NumbersAreExactlyWhatStrtofGives) {
  TempDir dir;
  std::vector<std::string> numbers = tricky_numbers();
  std::mt19937_64 gen(17);
  std::uniform_real_distribution<double> mantissa(-10.0, 10.0);
  std::uniform_int_distribution<int> exponent(-44, 38);
  std::uniform_int_distribution<int> digits(1, 25);
  char buf[64];
  for (int i = 0; i < 3000; ++i) {
    const double v = mantissa(gen) * std::pow(10.0, exponent(gen));
    std::snprintf(buf, sizeof buf, "%.*g", digits(gen), v);
    if (std::isfinite(reference_float(buf))) numbers.push_back(buf);
  }
  // Two columns: the number as a feature and as a regression target.
  std::string csv = "x,y\n";
  for (const std::string& n : numbers) csv += n + "," + n + "\n";
  const auto [data, schema] =
      read_csv(dir.write("numbers.csv", csv), {.target = "y", .task = CsvTask::regression});
  const std::vector<float> x = data["features"].to_vector<float>();
  const std::vector<float> y = data["target"].to_vector<float>();
  ASSERT_EQ(x.size(), numbers.size());
  EXPECT_EQ(data["target"].shape(), Shape({static_cast<std::int64_t>(numbers.size()), 1}));
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    EXPECT_EQ(bits(x[i]), bits(reference_float(numbers[i]))) << numbers[i];
    EXPECT_EQ(bits(y[i]), bits(reference_float(numbers[i]))) << numbers[i];
  }
  EXPECT_EQ(schema.task, CsvTask::regression);
  EXPECT_TRUE(data.info().labels.empty());
}

TEST(CsvValuesTest, SpacesAndPlusSignsAroundNumbers) {
  TempDir dir;
  const auto [data, schema] = read_csv(dir.write("s.csv", "a,b\n 1.5,+2\n\t-3 ,  +4e1  \n"), {});
  EXPECT_EQ(data["features"].to_vector<float>(), (std::vector<float>{1.5f, 2, -3, 40}));
  EXPECT_EQ(schema.features[1].kind, ColumnKind::numeric);
}

TEST(CsvQuotingTest, Rfc4180Fields) {
  TempDir dir;
  // Quoted commas, doubled quotes, a line break inside quotes, CRLF line ends, a quoted
  // number, an empty quoted category would be missing, so none here.
  const std::string csv =
      "name,\"the, value\",kind\r\n"
      "\"Smith, J\",\"1.5\",\"say \"\"hi\"\"\"\r\n"
      "plain,2,\"two\r\nlines\"\r\n"
      "\"x\",3,plain\r\n";
  const auto path = dir.write("q.csv", csv);
  const auto [data, schema] =
      read_csv(path, {.target = "name", .features = {"the, value", "kind"}});
  EXPECT_EQ(data.info().labels, (std::vector<std::string>{"Smith, J", "plain", "x"}));
  EXPECT_EQ(data["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, 1, 2}));
  ASSERT_EQ(schema.features[1].kind, ColumnKind::categorical);
  EXPECT_EQ(schema.features[1].categories,
            (std::vector<std::string>{"plain", "say \"hi\"", "two\r\nlines"}));
  EXPECT_EQ(data.info().feature_names,
            (std::vector<std::string>{"the, value", "kind=plain", "kind=say \"hi\"",
                                      "kind=two\r\nlines"}));
  EXPECT_EQ(data["features"].to_vector<float>(),
            (std::vector<float>{1.5f, 0, 1, 0, 2, 0, 0, 1, 3, 1, 0, 0}));
}

TEST(CsvQuotingTest, BomBlankLinesNoFinalNewlineAndDelimiter) {
  TempDir dir;
  const auto path = dir.write("b.csv",
                              "\xEF\xBB\xBF"
                              "a;b\n\n1;2\r\n\r\n3;4");
  const auto [data, schema] =
      read_csv(path, {.target = "b", .task = CsvTask::regression, .delimiter = ';'});
  EXPECT_EQ(data["features"].to_vector<float>(), (std::vector<float>{1, 3}));
  EXPECT_EQ(data["target"].to_vector<float>(), (std::vector<float>{2, 4}));
  EXPECT_EQ(schema.features[0].name, "a");
  EXPECT_EQ(schema.delimiter, ';');
}

TEST(CsvEncodingTest, StringTargetAndStringFeatureOneHotAndIndex) {
  TempDir dir;
  const auto path = dir.write("fruit.csv",
                              "weight,color,fruit\n"
                              "150,red,apple\n"
                              "120,yellow,banana\n"
                              "160,green,apple\n"
                              "110,yellow,banana\n"
                              "90,orange,orange\n");
  const auto [data, schema] = read_csv(path, {.target = "fruit"});
  EXPECT_EQ(data.info().labels, (std::vector<std::string>{"apple", "banana", "orange"}));
  EXPECT_EQ(data["target"].dtype(), DType::i32);
  EXPECT_EQ(data["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, 1, 0, 1, 2}));
  EXPECT_EQ(data.info().feature_names,
            (std::vector<std::string>{"weight", "color=green", "color=orange", "color=red",
                                      "color=yellow"}));
  EXPECT_EQ(data["features"].shape(), Shape({5, 5}));
  EXPECT_EQ(data["features"].to_vector<float>(),
            (std::vector<float>{150, 0, 0,   1, 0, 120, 0, 0,  0, 1, 160, 1, 0,
                                0,   0, 110, 0, 0, 0,   1, 90, 0, 1, 0,   0}));
  EXPECT_EQ(data.info().source, path);
  EXPECT_EQ(schema.task, CsvTask::classification);
  EXPECT_EQ(schema.target.kind, ColumnKind::categorical);

  const auto indexed = read_csv(path, {.target = "fruit", .encoding = CategoryEncoding::index});
  EXPECT_EQ(indexed.dataset["features"].to_vector<float>(),
            (std::vector<float>{150, 2, 120, 3, 160, 0, 110, 3, 90, 1}));
  EXPECT_EQ(indexed.dataset.info().feature_names, (std::vector<std::string>{"weight", "color"}));
}

TEST(CsvEncodingTest, FeatureSelectionIgnoreAndForcedKinds) {
  TempDir dir;
  const auto path = dir.write("c.csv",
                              "id,zip,age,label\n"
                              "1,01234,30,1\n"
                              "2,99999,40,0\n"
                              "3,01234,50,1\n");
  const auto ignored = read_csv(path, {.target = "label", .ignore = {"id"}});
  EXPECT_EQ(ignored.dataset.info().feature_names, (std::vector<std::string>{"zip", "age"}));
  EXPECT_EQ(ignored.dataset["features"].to_vector<float>(),
            (std::vector<float>{1234, 30, 99999, 40, 1234, 50}));
  const auto forced = read_csv(
      path,
      {.target = "label", .features = {"age", "zip"}, .kinds = {{"zip", ColumnKind::categorical}}});
  EXPECT_EQ(forced.dataset.info().feature_names,
            (std::vector<std::string>{"age", "zip=01234", "zip=99999"}));
  EXPECT_EQ(forced.dataset["features"].to_vector<float>(),
            (std::vector<float>{30, 1, 0, 40, 0, 1, 50, 1, 0}));
  // Integer targets are classes 0..k named "0".."k".
  EXPECT_EQ(forced.schema.task, CsvTask::classification);
  EXPECT_EQ(forced.dataset.info().labels, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(forced.dataset["target"].to_vector<std::int32_t>(),
            (std::vector<std::int32_t>{1, 0, 1}));
  // A regression of the same column, and a categorical target from numbers (sorted as text).
  const auto reg =
      read_csv(path, {.target = "age", .features = {"id"}, .task = CsvTask::regression});
  EXPECT_EQ(reg.dataset["target"].to_vector<float>(), (std::vector<float>{30, 40, 50}));
  const auto named = read_csv(
      path, {.target = "zip", .features = {"age"}, .kinds = {{"zip", ColumnKind::categorical}}});
  EXPECT_EQ(named.dataset.info().labels, (std::vector<std::string>{"01234", "99999"}));
}

TEST(CsvEncodingTest, AutomaticTaskAndNumericClassesWithGaps) {
  TempDir dir;
  const auto path = dir.write("t.csv", "x,small,price\n1,0,10.5\n2,3,20\n3,3,30\n4,0,40\n");
  const auto small = read_csv(path, {.target = "small", .features = {"x"}});
  EXPECT_EQ(small.schema.task, CsvTask::classification);
  EXPECT_EQ(small.dataset.info().labels, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(small.dataset["target"].to_vector<std::int32_t>(),
            (std::vector<std::int32_t>{0, 3, 3, 0}));
  const auto price = read_csv(path, {.target = "price", .features = {"x"}});
  EXPECT_EQ(price.schema.task, CsvTask::regression);
  EXPECT_EQ(price.dataset["target"].to_vector<float>(), (std::vector<float>{10.5f, 20, 30, 40}));
  // Integer-valued floats are classes when asked for.
  const auto asked = read_csv(dir.write("f.csv", "x,y\n1,1.0\n2,2.0\n3,2\n"),
                              {.target = "y", .task = CsvTask::classification});
  EXPECT_EQ(asked.dataset["target"].to_vector<std::int32_t>(),
            (std::vector<std::int32_t>{1, 2, 2}));
  // Without a target, there is no "target" tensor.
  const auto features_only = read_csv(path, {});
  EXPECT_FALSE(features_only.dataset.contains("target"));
  EXPECT_EQ(features_only.dataset.info().target, "");
  EXPECT_EQ(features_only.dataset["features"].shape(), Shape({4, 3}));
}

TEST(CsvEncodingTest, ColumnTurningCategoricalLateIsReadAgain) {
  TempDir dir;
  // 'code' looks numeric for 5000 rows, then is not; 'v' stays numeric.
  std::string csv = "code,v,y\n";
  for (int i = 0; i < 5000; ++i)
    csv += std::to_string(i % 3) + "," + std::to_string(i) + "," + std::to_string(i % 2) + "\n";
  csv += "x7,5000,1\n";
  const auto [data, schema] = read_csv(dir.write("late.csv", csv), {.target = "y"});
  ASSERT_EQ(schema.features[0].kind, ColumnKind::categorical);
  EXPECT_EQ(schema.features[0].categories, (std::vector<std::string>{"0", "1", "2", "x7"}));
  EXPECT_EQ(schema.features[1].kind, ColumnKind::numeric);
  const auto x = data["features"].to_vector<float>();
  ASSERT_EQ(x.size(), 5001u * 5);
  for (int i = 0; i < 5000; ++i) {
    for (int k = 0; k < 4; ++k)
      EXPECT_EQ(x[static_cast<std::size_t>(i * 5 + k)], k == i % 3 ? 1.0f : 0.0f);
    EXPECT_EQ(x[static_cast<std::size_t>(i * 5 + 4)], static_cast<float>(i));
  }
  EXPECT_EQ(x[5000 * 5 + 3], 1.0f);
}

TEST(CsvBlocksTest, RecordsAcrossBlockEdgesAndLongFields) {
  TempDir dir;
  // ~3.5 MiB: fields with quotes, escaped quotes and line breaks land on every block edge.
  std::string csv = "id,text,value\n";
  std::vector<std::string> texts;
  std::mt19937 gen(3);
  for (int i = 0; i < 40000; ++i) {
    std::string t(1 + static_cast<std::size_t>(gen() % 120), 'a' + static_cast<char>(i % 26));
    if (i % 7 == 0) t += "\"q\"";
    if (i % 11 == 0) t += "\nline";
    if (i % 5 == 0) t += ",comma";
    texts.push_back(t);
    std::string quoted = "\"";
    for (char c : t) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    csv += std::to_string(i) + "," + quoted + "," + std::to_string(i * 0.25) + "\n";
  }
  // One field longer than a block.
  texts.push_back(std::string(3u << 20, 'z'));
  csv += "40000,\"" + texts.back() + "\",1\n";
  const auto [data, schema] =
      read_csv(dir.write("big.csv", csv), {.target = "text",
                                           .features = {"id", "value"},
                                           .kinds = {{"text", ColumnKind::categorical}}});
  const auto ids = data["features"].to_vector<float>();
  const auto y = data["target"].to_vector<std::int32_t>();
  ASSERT_EQ(y.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(ids[2 * i], static_cast<float>(i));
    ASSERT_EQ(data.info().labels[static_cast<std::size_t>(y[i])], texts[i]) << i;
  }
  EXPECT_EQ(ids[2 * 40000 + 1], 1.0f);
}

TEST(CsvSchemaTest, JsonRoundTripAndReadingANewFile) {
  TempDir dir;
  const auto train = dir.write("train.csv",
                               "size,color,fruit\n"
                               "1,red,apple\n2,green,pear\n3,red,apple\n4,blue,plum\n");
  const auto [data, schema] = read_csv(train, {.target = "fruit"});
  const std::string json = schema.to_json();
  const CsvSchema back = CsvSchema::from_json(json);
  EXPECT_EQ(back, schema);
  EXPECT_EQ(back.to_json(), json);
  // Columns in another order, an extra column, no target: the same encoding.
  const auto predict = dir.write("predict.csv", "color,note,size\ngreen,x,9\nred,y,8\n");
  const Dataset p = read_csv_with_schema(predict, back);
  EXPECT_FALSE(p.contains("target"));
  EXPECT_EQ(p["features"].to_vector<float>(), (std::vector<float>{9, 0, 1, 0, 8, 0, 0, 1}));
  EXPECT_EQ(p.info().labels, (std::vector<std::string>{"apple", "pear", "plum"}));
  EXPECT_EQ(p.info().feature_names, data.info().feature_names);
  // With the target: class codes as in training even when some classes are absent.
  const auto eval = dir.write("eval.csv", "size,color,fruit\n5,blue,plum\n6,red,apple\n");
  const Dataset e = read_csv_with_schema(eval, back, TargetColumn::required);
  EXPECT_EQ(e["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{2, 0}));
  EXPECT_FALSE(read_csv_with_schema(eval, back, TargetColumn::ignore).contains("target"));
  const auto message =
      message_of<DataError>([&] { read_csv_with_schema(predict, back, TargetColumn::required); });
  EXPECT_TRUE(mentions(message, {predict, "no column 'fruit'", "'color', 'note', 'size'"}));
}

TEST(CsvSchemaTest, NumericClassesAndRegressionThroughTheSchema) {
  TempDir dir;
  const auto [data, schema] = read_csv(dir.write("a.csv", "x,y\n1,0\n2,2\n3,1\n"), {.target = "y"});
  const CsvSchema back = CsvSchema::from_json(schema.to_json());
  EXPECT_EQ(back.labels, (std::vector<std::string>{"0", "1", "2"}));
  const Dataset e = read_csv_with_schema(dir.write("b.csv", "y,x\n2,7\n"), back);
  EXPECT_EQ(e["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{2}));
  const auto unseen = dir.write("c.csv", "x,y\n1,0\n7,3\n");
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_csv_with_schema(unseen, back); }),
                       {unseen, "row 3", "column 'y'", "'3'", "not one the schema knows"}));
  const auto reg = read_csv(dir.write("r.csv", "x,y\n1,0.5\n2,2.5\n"), {.target = "y"});
  const Dataset r = read_csv_with_schema(dir.write("r2.csv", "x,y\n3,-1.25\n"),
                                         CsvSchema::from_json(reg.schema.to_json()));
  EXPECT_EQ(r["target"].to_vector<float>(), (std::vector<float>{-1.25f}));
  EXPECT_EQ(r["target"].shape(), Shape({1, 1}));
}

TEST(CsvSchemaTest, TextThatIsNotUtf8RoundTrips) {
  TempDir dir;
  // Latin-1 "caf\xe9" and a stray continuation byte: kept as bytes, written as hex in JSON.
  const auto [data, schema] = read_csv(
      dir.write("latin1.csv", "x,drink,y\n1,caf\xe9,0\n2,tea,1\n3,\x80x,0\n"), {.target = "y"});
  EXPECT_EQ(schema.features[1].categories, (std::vector<std::string>{"caf\xe9", "tea", "\x80x"}));
  const std::string json = schema.to_json();
  EXPECT_NE(json.find("{\"hex\":\"636166e9\"}"), std::string::npos) << json;
  EXPECT_NE(json.find("\"tea\""), std::string::npos);
  EXPECT_EQ(CsvSchema::from_json(json), schema);
  EXPECT_THROW(CsvSchema::from_json(std::string(json).replace(json.find("636166e9"), 8, "63616")),
               FormatError);
}

TEST(CsvSchemaTest, MalformedJsonIsAFormatError) {
  TempDir dir;
  const auto [data, schema] =
      read_csv(dir.write("a.csv", "x,c,y\n1,a,0\n2,b,1\n"), {.target = "y"});
  const std::string good = schema.to_json();
  EXPECT_THROW(CsvSchema::from_json("{"), FormatError);
  EXPECT_THROW(CsvSchema::from_json("[]"), FormatError);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  EXPECT_TRUE(mentions(
      message_of<FormatError>([&] { CsvSchema::from_json(replaced("\"numeric\"", "\"weird\"")); }),
      {"unknown kind 'weird'"}));
  EXPECT_TRUE(mentions(message_of<FormatError>([&] {
                         CsvSchema::from_json(replaced("\"version\":1", "\"version\":9"));
                       }),
                       {"version"}));
  EXPECT_TRUE(mentions(message_of<FormatError>([&] {
                         CsvSchema::from_json(replaced("[\"a\",\"b\"]", "[\"a\",\"a\"]"));
                       }),
                       {"'a' twice"}));
  EXPECT_TRUE(mentions(message_of<FormatError>([&] {
                         CsvSchema::from_json(
                             replaced("\"labels\":[\"0\",\"1\"]", "\"labels\":[\"0\"]"));
                       }),
                       {"fewer than two labels"}));
}

}  // namespace
}  // namespace kiln::data
