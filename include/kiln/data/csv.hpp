// CSV files as datasets, as a data wizard reads them: a header row, the user names the target
// column (and optionally the features), each column is numeric, categorical (strings) or
// image paths, and the fitted schema reads later files (evaluation, prediction) the same way.
//
//   auto [train, schema] = kiln::data::read_csv("iris.csv", {.target = "species"});
//   // train["features"]: f32 [N, 4]; train["target"]: i32 [N];
//   // train.info().labels: {"setosa", "versicolor", "virginica"} (sorted names)
//   std::string saved = schema.to_json();                          // keep it with the model
//   kiln::data::Dataset test = kiln::data::read_csv_with_schema(
//       "new.csv", kiln::data::CsvSchema::from_json(saved));       // same columns, same codes
//
// What a file becomes:
//  - "features": f32 [N, F], the feature columns in order: a numeric column is one value, a
//    categorical column is one-hot (one 0/1 value per category, names "color=red") or its
//    category index (CategoryEncoding::index). Categories are sorted by their bytes.
//  - An image column (PNG or JPEG paths, relative to the CSV's folder) must be the only
//    feature: "features" is then f32 [N, C, H, W] in [0, 1]; every image has the same size and
//    channel count (or CsvOptions::image_channels forces 1 or 3). feature_names is empty.
//  - "target": classification: i32 [N] class indices with DatasetInfo::labels their names (a
//    string target's names sorted by their bytes; integer targets 0..k named "0".."k");
//    regression: f32 [N, 1].
// Kinds are inferred unless forced: a column whose first value ends in .png/.jpg/.jpeg is an
// image column, one whose every value parses as a number is numeric, any other categorical.
// CsvTask::automatic makes a target classification when it is categorical or holds integers in
// [0, 1000] with at most 50 distinct values, else regression; say which when it matters.
//
// Parsing: RFC 4180 quoting ("a, b" and "say ""hi"""; quoted fields may hold line breaks), LF or
// CRLF line ends, a UTF-8 byte-order mark is skipped, blank lines are skipped. Numbers are
// parsed exactly (correctly rounded to f32), with surrounding spaces and a leading '+' allowed.
// Missing values are errors (Kiln does not impute): an empty or all-space field, "NA", "N/A",
// "NaN", "nan", "NULL" or "null". Infinite or out-of-f32-range numbers are errors too.
//
// Bad data throws kiln::DataError naming the file, the row (the 1-based line where the record
// starts; the header is row 1) and the column. The file is read in blocks: memory grows with
// the rows and columns kept, not with the file or the columns skipped.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"

namespace kiln::data {

enum class ColumnKind : std::uint8_t { automatic, numeric, categorical, image };
enum class CsvTask : std::uint8_t { automatic, classification, regression };
enum class CategoryEncoding : std::uint8_t { one_hot, index };

/// "automatic", "numeric", "categorical" or "image" (as the schema's JSON spells them).
KILN_API const char* column_kind_name(ColumnKind kind);

struct CsvOptions {
  /// The target column; "" reads no target (e.g. data to predict).
  std::string target = {};
  /// The feature columns, in this order; empty: every column but the target and `ignore`.
  std::vector<std::string> features = {};
  /// Columns left out when `features` is empty (ids, free text).
  std::vector<std::string> ignore = {};
  /// Forced kinds, by column name (the others are inferred).
  std::vector<std::pair<std::string, ColumnKind>> kinds = {};
  CsvTask task = CsvTask::automatic;
  CategoryEncoding encoding = CategoryEncoding::one_hot;
  /// One-hot columns with more categories than this are an error (use index encoding).
  std::int64_t max_categories = 1000;
  /// Channels of image columns: 0 as in the files, or 1 (grey) or 3 (RGB) to convert.
  int image_channels = 0;
  char delimiter = ',';
};

/// A column as a fitted schema knows it.
struct CsvColumn {
  std::string name = {};
  /// numeric, categorical or image (never automatic in a fitted schema).
  ColumnKind kind = ColumnKind::numeric;
  /// A categorical column's categories by code (sorted); a feature's one-hot order.
  std::vector<std::string> categories = {};
  friend bool operator==(const CsvColumn&, const CsvColumn&) = default;
};

/// How a CSV file was turned into tensors: enough to read another file the same way.
struct KILN_API CsvSchema {
  std::vector<CsvColumn> features;
  /// The target column (name "" when there is none).
  CsvColumn target;
  /// classification or regression (automatic when there is no target).
  CsvTask task = CsvTask::automatic;
  CategoryEncoding encoding = CategoryEncoding::one_hot;
  /// Class names by index (classification only).
  std::vector<std::string> labels;
  /// [C, H, W] of an image feature, zeros otherwise.
  std::array<std::int64_t, 3> image_shape{0, 0, 0};
  char delimiter = ',';

  /// One name per feature value ("age", "color=red"); empty for an image feature.
  std::vector<std::string> feature_names() const;
  /// A JSON object with every field above; from_json(to_json()) gives an equal schema.
  std::string to_json() const;
  /// Throws FormatError naming what is missing or malformed.
  static CsvSchema from_json(std::string_view json);
  friend bool operator==(const CsvSchema&, const CsvSchema&) = default;
};

/// A dataset read from a file and the schema fitted on it.
struct CsvData {
  Dataset dataset;
  CsvSchema schema;
};

/// Reads a CSV file, inferring what the options leave open. Throws IoError if the file
/// cannot be opened, DataError for bad data, ValueError for contradictory options.
KILN_API CsvData read_csv(const std::string& path, const CsvOptions& options = {});

/// What read_csv_with_schema does with the schema's target column.
enum class TargetColumn : std::uint8_t {
  if_present,  ///< read it when the file has it
  required,    ///< DataError when the file lacks it (evaluation)
  ignore,      ///< never read it (prediction)
};

/// Reads a file with a fitted schema: the same columns (found by name, in any order), the same
/// category codes, class indices and image shape. A category, class or image size the schema
/// does not know is a DataError naming the file, row, column and value.
KILN_API Dataset read_csv_with_schema(const std::string& path, const CsvSchema& schema,
                                      TargetColumn target = TargetColumn::if_present);

}  // namespace kiln::data
