// A small reader for numeric CSV files with a header row, for Kiln's examples.
// (The general data module, kiln/data, comes later; this keeps the examples standalone.)
#pragma once

#include <charconv>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/error.hpp"

namespace kiln_examples {

/// A numeric table: column names from the header and the values, row-major.
struct CsvTable {
  std::vector<std::string> columns;
  std::vector<double> values;
  std::int64_t rows = 0;

  std::int64_t cols() const { return static_cast<std::int64_t>(columns.size()); }
  double at(std::int64_t row, std::int64_t col) const {
    return values[static_cast<std::size_t>(row * cols() + col)];
  }
};

namespace detail {

inline std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return fields;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace detail

/// Reads a CSV file whose first line names the columns and whose other lines hold numbers.
/// Throws kiln::IoError when the file cannot be opened and kiln::FormatError (naming the
/// file, line and column) for a malformed line.
inline CsvTable read_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw kiln::IoError("cannot open '" + path + "'");
  CsvTable table;
  std::string line;
  if (!std::getline(in, line)) throw kiln::FormatError("'" + path + "' is empty");
  for (std::string_view name : detail::split_fields(line)) {
    table.columns.emplace_back(detail::trim(name));
  }
  std::int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (detail::trim(line).empty()) continue;
    const auto fields = detail::split_fields(line);
    if (static_cast<std::int64_t>(fields.size()) != table.cols()) {
      throw kiln::FormatError("'" + path + "' line " + std::to_string(line_no) + ": " +
                              std::to_string(fields.size()) + " fields, expected " +
                              std::to_string(table.cols()));
    }
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const std::string_view field = detail::trim(fields[c]);
      double v = 0.0;
      const auto [end, err] = std::from_chars(field.data(), field.data() + field.size(), v);
      if (err != std::errc() || end != field.data() + field.size() || field.empty()) {
        throw kiln::FormatError("'" + path + "' line " + std::to_string(line_no) + ", column '" +
                                table.columns[c] + "': not a number: '" + std::string(field) + "'");
      }
      table.values.push_back(v);
    }
    ++table.rows;
  }
  if (table.rows == 0) throw kiln::FormatError("'" + path + "' has no data rows");
  return table;
}

}  // namespace kiln_examples
