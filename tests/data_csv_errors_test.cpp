// Bad CSV data: each kind raises its error type with a message naming the file, the row (the
// header is row 1) and the column.
#include <gtest/gtest.h>

#include "data_test_util.hpp"
#include "kiln/data/csv.hpp"

namespace kiln::data {
namespace {

using testing::mentions;
using testing::message_of;
using testing::TempDir;

class CsvErrorsTest : public ::testing::Test {
 protected:
  // The DataError of reading `csv` with `options`.
  std::string data_error(const std::string& csv, const CsvOptions& options = {}) {
    path_ = dir_.write("bad.csv", csv);
    return message_of<DataError>([&] { read_csv(path_, options); });
  }
  TempDir dir_;
  std::string path_;
};

TEST_F(CsvErrorsTest, RaggedRows) {
  EXPECT_TRUE(
      mentions(data_error("a,b,c\n1,2,3\n4,5\n"),
               {path_, "row 3", "has 2 fields but the header has 3", "column 'c' is missing"}));
  EXPECT_TRUE(mentions(data_error("a,b,c\n1,2,3\n\n4,5,6,7\n"),
                       {path_, "row 4", "4 fields", "a field after column 'c'"}));
  // Rows count lines: a quoted line break makes the next record start two lines on.
  EXPECT_TRUE(
      mentions(data_error("a,b\n\"x\ny\",1\n2\n", {.kinds = {{"a", ColumnKind::categorical}}}),
               {path_, "row 4", "column 'b' is missing"}));
}

TEST_F(CsvErrorsTest, UnparseableNumbers) {
  const CsvOptions numeric{.target = "y", .kinds = {{"x", ColumnKind::numeric}}};
  EXPECT_TRUE(mentions(data_error("x,y\n1,0\n2,1\n3x,0\n", numeric),
                       {path_, "row 4", "column 'x'", "cannot parse '3x' as a number"}));
  EXPECT_TRUE(
      mentions(data_error("x,y\n1,0\n1.2.3,1\n", numeric), {"row 3", "column 'x'", "'1.2.3'"}));
  EXPECT_TRUE(mentions(data_error("x,y\n1,0\n0x10,1\n", numeric), {"row 3", "'0x10'"}));
  // A regression target must be numbers.
  EXPECT_TRUE(
      mentions(data_error("x,y\n1,0.5\n2,abc\n", {.target = "y", .task = CsvTask::regression}),
               {path_, "row 3", "column 'y'", "'abc'"}));
  // Infinite and out-of-range numbers.
  EXPECT_TRUE(mentions(data_error("x,y\n1,0\ninf,1\n"),
                       {path_, "row 3", "column 'x'", "'inf'", "not a finite"}));
  EXPECT_TRUE(mentions(data_error("x,y\n1e39,0\n2,1\n"),
                       {path_, "row 2", "column 'x'", "'1e39'", "not a finite"}));
  EXPECT_TRUE(
      mentions(data_error("x,y\n1,0\n2,-1e40\n", {.target = "y", .task = CsvTask::regression}),
               {"row 3", "column 'y'", "not a finite"}));
}

TEST_F(CsvErrorsTest, MissingValues) {
  for (const std::string missing : {"", "NA", "N/A", "nan", "NaN", "null", "NULL", "  "}) {
    EXPECT_TRUE(mentions(data_error("x,c,y\n1,a,0\n" + missing + ",b,1\n", {.target = "y"}),
                         {path_, "row 3", "column 'x'", "missing value"}))
        << "'" << missing << "'";
    EXPECT_TRUE(mentions(data_error("x,c,y\n1,a,0\n2," + missing + ",1\n", {.target = "y"}),
                         {path_, "row 3", "column 'c'", "missing value"}));
    EXPECT_TRUE(mentions(data_error("x,c,y\n1,a,0\n2,b," + missing + "\n", {.target = "y"}),
                         {path_, "row 3", "column 'y'", "missing value"}));
  }
  // A quoted empty field is missing too; an empty last field of the row as well.
  EXPECT_TRUE(mentions(data_error("x,y\n\"\",1\n"), {"row 2", "column 'x'", "missing value"}));
  EXPECT_TRUE(mentions(data_error("x,y\n1,\n"), {"row 2", "column 'y'", "missing value"}));
}

TEST_F(CsvErrorsTest, UnknownColumnsListTheHeader) {
  const std::string csv = "sepal,petal,species\n1,2,a\n3,4,b\n";
  for (const CsvOptions& options :
       {CsvOptions{.target = "Species"},
        CsvOptions{.target = "species", .features = {"sepal", "width"}},
        CsvOptions{.target = "species", .ignore = {"nope"}},
        CsvOptions{.target = "species", .kinds = {{"petl", ColumnKind::numeric}}}}) {
    EXPECT_TRUE(
        mentions(data_error(csv, options), {path_, "no column", "'sepal', 'petal', 'species'"}));
  }
  EXPECT_TRUE(mentions(data_error("a,b,a\n1,2,3\n"), {path_, "row 1", "'a' appears twice"}));
}

TEST_F(CsvErrorsTest, EmptyFileAndHeaderOnly) {
  EXPECT_TRUE(mentions(data_error(""), {path_, "empty"}));
  EXPECT_TRUE(mentions(data_error("\n\r\n\n"), {path_, "empty"}));
  EXPECT_TRUE(mentions(data_error("a,b\n"), {path_, "no data rows", "row 1"}));
  EXPECT_TRUE(mentions(data_error("a,b\n\n\n"), {path_, "no data rows"}));
  EXPECT_TRUE(mentions(data_error("y\n1\n2\n", {.target = "y"}), {path_, "no feature columns"}));
}

TEST_F(CsvErrorsTest, TargetWithOneClass) {
  EXPECT_TRUE(mentions(data_error("x,y\n1,cat\n2,cat\n3,cat\n", {.target = "y"}),
                       {path_, "column 'y'", "every one of the 3 rows", "'cat'", "two classes"}));
  EXPECT_TRUE(
      mentions(data_error("x,y\n1,4\n2,4\n", {.target = "y", .task = CsvTask::classification}),
               {path_, "column 'y'", "'4'", "two classes"}));
}

TEST_F(CsvErrorsTest, BadClassIndices) {
  const CsvOptions classify{.target = "y", .task = CsvTask::classification};
  EXPECT_TRUE(mentions(data_error("x,y\n1,0\n2,2.5\n", classify),
                       {path_, "row 3", "column 'y'", "'2.5'", "not an integer"}));
  EXPECT_TRUE(mentions(data_error("x,y\n1,0\n2,-1\n", classify), {"row 3", "'-1'", "negative"}));
  EXPECT_TRUE(mentions(data_error("x,y\n1,0\n2,1e9\n", classify), {"row 3", "'1e9'", "larger"}));
}

TEST_F(CsvErrorsTest, QuotingErrors) {
  EXPECT_TRUE(
      mentions(data_error("a,b\n1,\"open\n2,3\n", {.kinds = {{"b", ColumnKind::categorical}}}),
               {path_, "row 2", "column 'b'", "not closed"}));
  EXPECT_TRUE(mentions(data_error("a,b\n\"x\"y,1\n"),
                       {path_, "row 2", "column 'a'", "after the closing quote"}));
}

TEST_F(CsvErrorsTest, TooManyCategoriesForOneHot) {
  std::string csv = "id,y\n";
  for (int i = 0; i < 30; ++i) {
    csv += "u";
    csv += std::to_string(i) + "," + std::to_string(i % 2) + "\n";
  }
  EXPECT_TRUE(mentions(data_error(csv, {.target = "y", .max_categories = 20}),
                       {path_, "column 'id'", "30 categories", "index encoding"}));
  const auto ok =
      read_csv(path_, {.target = "y", .encoding = CategoryEncoding::index, .max_categories = 20});
  EXPECT_EQ(ok.dataset["features"].shape(), Shape({30, 1}));
}

TEST_F(CsvErrorsTest, UnseenCategoryWithASchema) {
  const auto [data, schema] =
      read_csv(dir_.write("train.csv", "c,y\nred,a\nblue,b\n"), {.target = "y"});
  const auto eval = dir_.write("eval.csv", "c,y\nred,a\nteal,b\n");
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_csv_with_schema(eval, schema); }),
                       {eval, "row 3", "column 'c'", "category 'teal'", "'blue', 'red'"}));
  const auto eval2 = dir_.write("eval2.csv", "c,y\nred,zebra\n");
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_csv_with_schema(eval2, schema); }),
                       {eval2, "row 2", "column 'y'", "class 'zebra'"}));
  const auto eval3 = dir_.write("eval3.csv", "colour,y\nred,a\n");
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_csv_with_schema(eval3, schema); }),
                       {eval3, "no column 'c'", "'colour', 'y'"}));
}

TEST_F(CsvErrorsTest, FilesAndOptions) {
  const std::string missing = (dir_.path() / "nope.csv").string();
  EXPECT_TRUE(mentions(message_of<IoError>([&] { read_csv(missing); }), {missing, "cannot open"}));
  const auto path = dir_.write("ok.csv", "a,b\n1,2\n3,4\n");
  EXPECT_THROW(read_csv(path, {.target = "b", .features = {"b"}}), ValueError);
  EXPECT_THROW(read_csv(path, {.features = {"a", "a"}}), ValueError);
  EXPECT_THROW(read_csv(path, {.image_channels = 2}), ValueError);
  EXPECT_THROW(read_csv(path, {.target = "b", .kinds = {{"b", ColumnKind::image}}}), ValueError);
  EXPECT_THROW(read_csv(path, {.target = "b",
                               .kinds = {{"b", ColumnKind::categorical}},
                               .task = CsvTask::regression}),
               ValueError);
}

}  // namespace
}  // namespace kiln::data
