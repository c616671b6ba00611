// kiln validate: a CSV file checked against a model's schema and reference profile
// (kiln::mlops::validate_csv), anomalies printed as a table or as JSON.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/mlops/validate.hpp"

namespace kiln_cli {
namespace {

std::string pad(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

kiln::data::TargetColumn target_column(const std::string& name) {
  if (name == "required") return kiln::data::TargetColumn::required;
  if (name == "ignore") return kiln::data::TargetColumn::ignore;
  if (name == "if-present") return kiln::data::TargetColumn::if_present;
  throw kiln::ValueError("--target must be required, ignore or if-present, not '" + name + "'");
}

// "4: 'abc', 7: ''" (the example rows and values).
std::string examples(const kiln::mlops::Anomaly& a) {
  std::string out;
  for (std::size_t k = 0; k < a.rows.size(); ++k) {
    if (k > 0) out += ", ";
    out += std::to_string(a.rows[k]);
    if (k < a.examples.size()) out += ": '" + a.examples[k] + "'";
  }
  return out;
}

}  // namespace

int run_validate(const ValidateArgs& args) {
  const kiln::mlops::ValidationReport r =
      kiln::mlops::validate_csv(args.model, args.data, {.target = target_column(args.target)});
  const int code = r.errors > 0 ? exit_data : r.warnings > 0 ? exit_warnings : exit_ok;
  if (args.json) {
    std::cout << r.to_json() << "\n";
    return code;
  }
  std::cout << "Validation of " << r.file << " against " << r.model
            << (r.has_profile ? "" : " (no reference profile: ranges not checked)") << "\n";
  std::cout << r.rows << " rows: " << r.errors << (r.errors == 1 ? " error, " : " errors, ")
            << r.warnings << (r.warnings == 1 ? " warning" : " warnings") << "\n";
  if (r.anomalies.empty()) {
    std::cout << "No anomalies.\n";
    return code;
  }
  std::size_t kind_w = 4, column_w = 6, count_w = 5;
  for (const auto& a : r.anomalies) {
    kind_w = std::max(kind_w, a.kind.size());
    column_w = std::max(column_w, std::min<std::size_t>(a.column.size(), 24));
    count_w = std::max(count_w, std::to_string(a.count).size());
  }
  std::cout << "\n"
            << pad("severity", 9) << pad("kind", kind_w + 2) << pad("column", column_w + 2)
            << pad("count", count_w + 2) << "example rows (row: value)\n";
  for (const auto& a : r.anomalies) {
    const std::string count = std::to_string(a.count);
    std::cout << pad(kiln::mlops::severity_name(a.severity), 9) << pad(a.kind, kind_w + 2)
              << pad(a.column.empty() ? "-" : a.column, column_w + 2)
              << std::string(count_w - count.size(), ' ') << count << "  " << examples(a) << "\n";
  }
  std::cout << "\n";
  for (const auto& a : r.anomalies)
    std::cout << kiln::mlops::severity_name(a.severity) << ": " << a.message << "\n";
  return code;
}

}  // namespace kiln_cli
