// Data validation against a model's schema: does this CSV file look like the data the model
// was trained on? What `kiln validate MODEL --data FILE` prints, as a library call.
//
//   kiln::mlops::ValidationReport r = kiln::mlops::validate_csv("digits.kiln", "new.csv");
//   if (r.errors > 0) ...            // the file cannot be fed to the model as it is
//   for (const auto& a : r.anomalies) std::cout << a.column << ": " << a.message << "\n";
//
// The schema is the model file's "kiln.data" section (columns, kinds, categories, classes)
// and its "kiln.profile" section (each numeric column's training range, each categorical
// column's categories and frequencies). Anomalies, each with a count of rows and up to
// five example rows (1-based file lines, the header is row 1):
//   errors   — missing_column, duplicate_column (a header naming a column twice: the first
//              is checked), wrong_type (a value that does not parse as a number in a
//              numeric column), missing_value (empty, NA, NaN, ...), nonfinite (inf, or
//              beyond the f32 range), unseen_category (a category or class the model does
//              not know), unreadable (a ragged row, bad quoting, an unreadable image, an
//              empty file), wrong_shape (an image of another size than the model's);
//   warnings — out_of_range (a numeric value outside the training [min, max]),
//              extra_column (a column the model does not use), missing_target (with
//              TargetColumn::required only it is an error).
// Unlike read_csv, validation reads the whole file and reports every problem it finds
// instead of stopping at the first; memory grows with the columns, not the rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/export.hpp"

namespace kiln::mlops {

enum class Severity : std::uint8_t { warning = 0, error = 1 };
/// "warning" or "error".
KILN_API const char* severity_name(Severity severity);

struct Anomaly {
  std::string kind;  ///< "missing_column", "wrong_type", "out_of_range", ...
  Severity severity = Severity::error;
  std::string column;                 ///< "" for file-level anomalies
  std::uint64_t count = 0;            ///< rows affected
  std::vector<std::int64_t> rows;     ///< up to five example rows (file lines)
  std::vector<std::string> examples;  ///< the values at those rows (as in the file)
  std::string message;                ///< one line naming the column and what is wrong
};

struct ValidationReport {
  std::string file, model;
  std::int64_t rows = 0;                  ///< data rows read
  std::int64_t errors = 0, warnings = 0;  ///< anomalies of each severity
  /// The model file has a "kiln.profile" section (without one, no range is checked).
  bool has_profile = false;
  std::vector<Anomaly> anomalies;
  /// A JSON object with every field above (kiln validate --json).
  KILN_API std::string to_json() const;
};

struct ValidateOptions {
  data::TargetColumn target = data::TargetColumn::if_present;
  std::size_t max_examples = 5;
};

/// Validates a CSV file against a model file written by train_from_spec (kiln train). Throws
/// IoError for a file that cannot be read, FormatError for a model without a data schema.
/// Bad data is never thrown: it is reported.
KILN_API ValidationReport validate_csv(const std::string& model_path, const std::string& csv_path,
                                       const ValidateOptions& options = {});

}  // namespace kiln::mlops
