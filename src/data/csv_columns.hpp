// Internal: the CSV reader's per-column stores and the reader itself (csv_reader.cpp reads,
// csv_encode.cpp turns the stores into tensors and a schema).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fast_float/fast_float.h>

#include "data/csv_internal.hpp"
#include "data/image.hpp"

namespace kiln::data {

inline std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

/// Empty or all-space fields and the usual spellings of "no value".
inline bool is_missing(std::string_view v) {
  if (v.empty()) return true;
  const char c = v.front();
  if ((c >= '0' && c <= '9') || c == '-' || c == '.') return false;  // the common case
  v = trim(v);
  return v.empty() || v == "NA" || v == "N/A" || v == "NaN" || v == "nan" || v == "NULL" ||
         v == "null";
}

/// The whole field as a number (surrounding spaces and a leading '+' allowed), correctly
/// rounded; false if it is not a number. Infinities parse (the caller rejects them).
template <class T>
bool parse_number(std::string_view v, T& out) {
  auto r = fast_float::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec == std::errc() && r.ptr == v.data() + v.size()) return true;
  v = trim(v);
  if (v.size() > 1 && v.front() == '+' && v[1] != '-' && v[1] != '+') v.remove_prefix(1);
  if (v.empty()) return false;
  r = fast_float::from_chars(v.data(), v.data() + v.size(), out);
  return r.ec == std::errc() && r.ptr == v.data() + v.size();
}
inline bool parse_float(std::string_view v, float& out) { return parse_number(v, out); }
inline bool parse_double(std::string_view v, double& out) { return parse_number(v, out); }

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view v) const { return std::hash<std::string_view>{}(v); }
};

/// What the reader keeps of one column.
struct Column {
  std::string name;
  std::size_t field = 0;  // its index in the header
  bool is_target = false;
  ColumnKind kind = ColumnKind::automatic;
  bool forced = false;  // the kind is given, not inferred
  bool fixed = false;   // the categories (or classes) are the schema's
  bool rescan = false;  // found categorical in pass 1: read again
  bool skip = false;    // complete after pass 1

  // numeric: the values; image: the pixels, C*H*W per row
  std::vector<float> values;
  std::int64_t nonfinite_row = 0;  // the first infinite value, an error unless categorical
  std::string nonfinite_value;
  // numeric targets of classification: the classes seen, the first value that is not one
  std::vector<bool> class_seen;
  std::int64_t bad_class_row = 0;
  std::string bad_class_value;
  std::string bad_class_problem;

  // categorical: codes by first appearance (fit) or the schema's codes
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> codes_by_name;
  std::vector<std::string> names;
  std::vector<std::int32_t> codes;

  // image: the shape every image must have, and where it was first seen
  ImageShape image_shape{};
  std::int64_t image_row = 0;
  std::string image_path;
};

class CsvReader {
 public:
  static constexpr std::int64_t max_class_ = 99999;

  CsvReader(std::string name, std::string base_dir, char delimiter)
      : name_(std::move(name)), base_dir_(std::move(base_dir)), delimiter_(delimiter) {}

  /// Runs once the header is known, to choose the columns.
  void set_plan(std::function<void()> plan) { plan_ = std::move(plan); }
  void plan_fit(const CsvOptions& options);
  void plan_schema(const CsvSchema& schema, TargetColumn target);
  /// Reads every row (twice if needed); returns the number of rows.
  std::int64_t read_all(const OpenSource& open);

  CsvData encode_fit(std::int64_t rows, const CsvOptions& options);
  Dataset encode_schema(std::int64_t rows, const CsvSchema& schema);

 private:
  std::int64_t read_pass(const OpenSource& open, bool first);
  void read_header(CsvScanner& scanner, std::vector<std::string_view>& fields);
  void resolve_first_row(const std::vector<std::string_view>& fields, std::int64_t row);
  void add_value(Column& c, std::string_view v, std::int64_t row);
  void note_class_value(Column& c, std::string_view v, std::int64_t row);
  void add_image(Column& c, std::string_view v, std::int64_t row);
  void reserve(std::int64_t rows, std::size_t consumed, std::size_t size);
  std::size_t column_index(const std::string& name) const;
  std::string where(std::int64_t row, const std::string& column) const;
  static std::string show(std::string_view value);

  Tensor encode_features(std::int64_t rows, CategoryEncoding encoding) const;
  void check_finite(const Column& c) const;

  std::string name_;
  std::string base_dir_;
  char delimiter_;
  std::function<void()> plan_;
  std::vector<std::string> header_;
  std::vector<Column> columns_;  // the features in order, then the target
  CsvTask task_ = CsvTask::automatic;
  int image_channels_ = 0;
  std::int64_t class_count_ = 0;  // the schema's classes
};

}  // namespace kiln::data
