// validate_csv: one pass over a CSV file with the CSV reader's scanner, checking every field
// of the columns the model uses against the model's "kiln.data" schema and "kiln.profile"
// ranges, and counting what does not fit (with example rows) instead of stopping at the
// first problem. State is per column (counters and a few examples), never per row.
#include "kiln/mlops/validate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/csv_columns.hpp"
#include "data/csv_scanner.hpp"
#include "data/image.hpp"
#include "internal/text.hpp"
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/monitor/profile.hpp"

namespace kiln::mlops {
namespace {

using json = nlohmann::json;

/// Syntax errors after which reading stops (each skips one line; a file this broken is not
/// CSV, and the count says so).
constexpr std::uint64_t max_syntax_errors = 1000;

std::string shown(std::string_view value) {
  constexpr std::size_t limit = 60;
  std::string out(value.substr(0, limit));
  if (value.size() > limit) out += "...";
  return out;
}

/// The shortest text of an f32 value (the CSV reader's precision) that reads back to it.
std::string number(double v) {
  char buf[32];
  const auto f = static_cast<float>(v);
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return buf;
}

/// One kind of anomaly being counted: how many rows, the first few rows and values.
struct Tally {
  std::uint64_t count = 0;
  std::vector<std::int64_t> rows;
  std::vector<std::string> examples;
  void add(std::int64_t row, std::string_view value, std::size_t max_examples) {
    ++count;
    if (rows.size() < max_examples) {
      rows.push_back(row);
      examples.push_back(shown(value));
    }
  }
};

enum Check : std::size_t {
  wrong_type,
  missing_value,
  nonfinite,
  unseen_category,
  out_of_range,
  unreadable,
  wrong_shape,
  check_count
};

/// A column of the schema found in the file, and what its values must be.
struct ColumnCheck {
  std::string name;
  data::ColumnKind kind = data::ColumnKind::numeric;
  bool is_target = false;
  bool classes = false;  ///< a numeric classification target: integer class indices
  std::size_t field = 0;
  std::unordered_set<std::string, data::StringHash, std::equal_to<>> known;  ///< names
  std::vector<std::string> known_list;  ///< the same, in code order (messages)
  std::int64_t class_count = 0;
  std::optional<std::pair<double, double>> range;           ///< the profile's [min, max]
  double lowest = std::numeric_limits<double>::infinity();  ///< out-of-range values seen
  double highest = -std::numeric_limits<double>::infinity();
  std::array<Tally, check_count> tallies{};
};

/// The profile's numeric feature for a schema column: by name, else by its offset.
const monitor::FeatureProfile* numeric_feature(const monitor::Profile& profile,
                                               const std::string& name, std::int64_t offset) {
  for (const auto& f : profile.features)
    if (f.kind == monitor::FeatureKind::numeric && f.name == name) return &f;
  for (const auto& f : profile.features)
    if (f.kind == monitor::FeatureKind::numeric && f.offset == offset) return &f;
  return nullptr;
}

class Validator {
 public:
  Validator(const std::string& model_path, const std::string& csv_path,
            const ValidateOptions& options)
      : options_(options) {
    report_.file = csv_path;
    report_.model = model_path;
    const infer::Model model = infer::Model::load(model_path);
    if (!model.has_section("kiln.data"))
      throw FormatError(model_path +
                        ": the model file has no data schema (section 'kiln.data'); "
                        "validation needs a model written by kiln train / train_from_spec");
    const auto bytes = model.section("kiln.data");
    schema_ = data::CsvSchema::from_json(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    if (model.has_section(monitor::profile_section)) {
      profile_ = monitor::Profile::from_model(model);
      report_.has_profile = true;
    }
  }

  ValidationReport run() {
    data::FileSource source(report_.file);
    data::CsvScanner scanner(source, schema_.delimiter);
    std::vector<std::string_view> fields;
    if (!read_header(scanner, fields)) return finish();
    plan();
    read_rows(scanner, fields);
    return finish();
  }

 private:
  void file_anomaly(const char* kind, std::uint64_t count, std::string message,
                    const Tally* tally = nullptr) {
    Anomaly a;
    a.kind = kind;
    a.severity = Severity::error;
    a.count = count;
    if (tally) {
      a.rows = tally->rows;
      a.examples = tally->examples;
    }
    a.message = std::move(message);
    report_.anomalies.push_back(std::move(a));
  }

  bool read_header(data::CsvScanner& scanner, std::vector<std::string_view>& fields) {
    bool any = false;
    try {
      any = scanner.next(fields);
    } catch (const data::CsvSyntaxError& e) {
      file_anomaly("unreadable", 1,
                   "the header (row " + std::to_string(e.row) + ") cannot be read: " + e.what);
      return false;
    }
    if (!any) {
      file_anomaly("unreadable", 0, "the file is empty (no header row)");
      return false;
    }
    std::unordered_map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      std::string name(fields[i]);
      if (name.empty()) name = "unnamed_" + std::to_string(i + 1);
      const auto [it, fresh] = seen.emplace(name, i);
      if (!fresh) {
        Anomaly a;
        a.kind = "duplicate_column";
        a.column = name;
        a.count = 1;
        a.message = "column '" + name + "' appears twice in the header (fields " +
                    std::to_string(it->second + 1) + " and " + std::to_string(i + 1) +
                    "); the first is checked";
        report_.anomalies.push_back(std::move(a));
      }
      header_.push_back(std::move(name));
    }
    for (const auto& [name, field] : seen) field_of_[name] = field;
    return true;
  }

  // The columns to check, the missing ones and the extra ones.
  void plan() {
    std::int64_t offset = 0;
    std::unordered_set<std::string> used;
    for (const data::CsvColumn& c : schema_.features) {
      const std::int64_t width = c.kind == data::ColumnKind::categorical &&
                                         schema_.encoding == data::CategoryEncoding::one_hot
                                     ? static_cast<std::int64_t>(c.categories.size())
                                     : 1;
      used.insert(c.name);
      const auto it = field_of_.find(c.name);
      if (it == field_of_.end()) {
        missing_columns_.push_back(c.name);
        offset += width;
        continue;
      }
      ColumnCheck check;
      check.name = c.name;
      check.kind = c.kind;
      check.field = it->second;
      if (c.kind == data::ColumnKind::categorical) {
        check.known_list = c.categories;
        check.known.insert(c.categories.begin(), c.categories.end());
      }
      if (c.kind == data::ColumnKind::numeric && profile_) {
        const monitor::FeatureProfile* f = numeric_feature(*profile_, c.name, offset);
        if (f && f->count > f->nonfinite) check.range = std::make_pair(f->min, f->max);
      }
      checks_.push_back(std::move(check));
      offset += width;
    }
    const data::CsvColumn& t = schema_.target;
    if (!t.name.empty()) {
      used.insert(t.name);
      const auto it = field_of_.find(t.name);
      if (it == field_of_.end()) {
        if (options_.target != data::TargetColumn::ignore) missing_target_ = true;
      } else if (options_.target != data::TargetColumn::ignore) {
        ColumnCheck check;
        check.name = t.name;
        check.kind = t.kind;
        check.is_target = true;
        check.field = it->second;
        if (schema_.task != data::CsvTask::regression) {
          if (t.kind == data::ColumnKind::categorical) {
            check.known_list = t.categories;
          } else {
            check.classes = true;
            check.known_list = schema_.labels;
            check.class_count = static_cast<std::int64_t>(schema_.labels.size());
          }
          check.known.insert(check.known_list.begin(), check.known_list.end());
        }
        checks_.push_back(std::move(check));
      }
    }
    for (const std::string& name : header_)
      if (!used.count(name) &&
          std::find(extra_columns_.begin(), extra_columns_.end(), name) == extra_columns_.end())
        extra_columns_.push_back(name);
  }

  void read_rows(data::CsvScanner& scanner, std::vector<std::string_view>& fields) {
    const std::size_t max = options_.max_examples;
    for (;;) {
      bool any = false;
      try {
        any = scanner.next(fields);
      } catch (const data::CsvSyntaxError& e) {
        syntax_.add(e.row, e.what, max);
        if (e.what.find("not closed") != std::string::npos) {
          syntax_stopped_ = "the quoted field that starts on row " + std::to_string(e.row) +
                            " is not closed: the rest of the file was not read";
          return;
        }
        if (syntax_.count >= max_syntax_errors) {
          syntax_stopped_ =
              "reading stopped after " + std::to_string(max_syntax_errors) + " unreadable rows";
          return;
        }
        scanner.skip_line();
        continue;
      }
      if (!any) return;
      const std::int64_t row = scanner.row();
      if (fields.size() != header_.size()) {
        ragged_.add(row, std::to_string(fields.size()) + " fields", max);
        continue;
      }
      ++report_.rows;
      for (ColumnCheck& c : checks_) check_value(c, fields[c.field], row);
    }
  }

  void check_value(ColumnCheck& c, std::string_view v, std::int64_t row) {
    const std::size_t max = options_.max_examples;
    if (data::is_missing(v)) {
      c.tallies[missing_value].add(row, v, max);
      return;
    }
    switch (c.kind) {
      case data::ColumnKind::categorical:
        if (c.known.find(v) == c.known.end()) c.tallies[unseen_category].add(row, v, max);
        return;
      case data::ColumnKind::image:
        check_image(c, v, row);
        return;
      case data::ColumnKind::numeric:
      case data::ColumnKind::automatic:
        break;
    }
    float f = 0;
    if (!data::parse_float(v, f)) {
      c.tallies[wrong_type].add(row, v, max);
      return;
    }
    if (!std::isfinite(f)) {
      c.tallies[nonfinite].add(row, v, max);
      return;
    }
    if (c.classes) {
      // As the reader takes class indices: an integer in [0, classes).
      double d = 0;
      (void)data::parse_double(v, d);
      if (!(d == std::floor(d) && d >= 0 && d < static_cast<double>(c.class_count)))
        c.tallies[unseen_category].add(row, v, max);
      return;
    }
    if (c.range && (f < c.range->first || f > c.range->second)) {
      c.tallies[out_of_range].add(row, v, max);
      c.lowest = std::min(c.lowest, static_cast<double>(f));
      c.highest = std::max(c.highest, static_cast<double>(f));
    }
  }

  void check_image(ColumnCheck& c, std::string_view v, std::int64_t row) {
    const std::string relative(data::trim(v));
    std::filesystem::path path(relative);
    if (path.is_relative()) path = std::filesystem::path(report_.file).parent_path() / path;
    pixels_.clear();
    data::ImageShape shape{};
    try {
      shape =
          data::decode_image_file(path.string(), static_cast<int>(schema_.image_shape[0]), pixels_);
    } catch (const std::exception&) {
      c.tallies[unreadable].add(row, v, options_.max_examples);
      return;
    }
    if (shape != schema_.image_shape) c.tallies[wrong_shape].add(row, v, options_.max_examples);
  }

  // An anomaly of column `c` when `check` counted any: "column 'x': N <what>".
  void column_anomaly(const ColumnCheck& c, Check check, const char* kind, Severity severity,
                      const char* one, const char* many, const std::string& detail) {
    const Tally& t = c.tallies[check];
    if (t.count == 0) return;
    Anomaly a;
    a.kind = kind;
    a.severity = severity;
    a.column = c.name;
    a.count = t.count;
    a.rows = t.rows;
    a.examples = t.examples;
    a.message = "column '" + c.name + "': " + std::to_string(t.count) + " " +
                (t.count == 1 ? one : many) + detail;
    report_.anomalies.push_back(std::move(a));
  }

  ValidationReport finish() {
    if (ragged_.count > 0)
      file_anomaly("unreadable", ragged_.count,
                   std::to_string(ragged_.count) + " " +
                       (ragged_.count == 1 ? "row has" : "rows have") +
                       " a different number of fields than the header (" +
                       std::to_string(header_.size()) + "); they were not checked",
                   &ragged_);
    if (syntax_.count > 0)
      file_anomaly("unreadable", syntax_.count,
                   std::to_string(syntax_.count) + " " + (syntax_.count == 1 ? "row" : "rows") +
                       " cannot be parsed as CSV (bad quoting)" +
                       (syntax_stopped_.empty() ? "; each was skipped to its line's end"
                                                : "; " + syntax_stopped_),
                   &syntax_);
    if (!header_.empty() && report_.rows == 0 && ragged_.count == 0 && syntax_.count == 0)
      file_anomaly("unreadable", 0, "no data rows after the header (row 1)");
    for (const std::string& name : missing_columns_) {
      Anomaly a;
      a.kind = "missing_column";
      a.column = name;
      a.count = static_cast<std::uint64_t>(report_.rows);
      a.message = "column '" + name + "' is missing: the model needs it (the header has " +
                  internal::quoted_list(header_) + ")";
      report_.anomalies.push_back(std::move(a));
    }
    if (missing_target_) {
      Anomaly a;
      a.kind = "missing_target";
      a.severity =
          options_.target == data::TargetColumn::required ? Severity::error : Severity::warning;
      a.column = schema_.target.name;
      a.count = static_cast<std::uint64_t>(report_.rows);
      a.message = "the target column '" + schema_.target.name +
                  "' is missing: the file can be predicted on, not evaluated";
      report_.anomalies.push_back(std::move(a));
    }
    for (const ColumnCheck& c : checks_) {
      const std::array<std::int64_t, 3>& shape = schema_.image_shape;
      column_anomaly(c, missing_value, "missing_value", Severity::error, "missing value",
                     "missing values",
                     " (empty, NA, NaN, NULL, ...): Kiln does not fill in missing values");
      column_anomaly(c, wrong_type, "wrong_type", Severity::error, "value is", "values are",
                     c.classes ? " not numbers (class indices)" : " not numbers");
      column_anomaly(c, nonfinite, "nonfinite", Severity::error, "value is", "values are",
                     " infinite or beyond the f32 range");
      column_anomaly(
          c, unseen_category, "unseen_category", Severity::error, "value is", "values are",
          std::string(c.is_target ? " not a class" : " not a category") + " the model knows (" +
              (c.classes ? "class indices 0.." + std::to_string(c.class_count - 1)
                         : internal::quoted_list(c.known_list)) +
              ")");
      column_anomaly(c, unreadable, "unreadable", Severity::error, "image", "images",
                     " cannot be read");
      column_anomaly(c, wrong_shape, "wrong_shape", Severity::error, "image is", "images are",
                     " not of the model's size [" + std::to_string(shape[0]) + ", " +
                         std::to_string(shape[1]) + ", " + std::to_string(shape[2]) +
                         "] (C, H, W)");
      if (c.range)
        column_anomaly(c, out_of_range, "out_of_range", Severity::warning, "value is", "values are",
                       " outside the training range [" + number(c.range->first) + ", " +
                           number(c.range->second) + "] (seen from " + number(c.lowest) + " to " +
                           number(c.highest) + ")");
    }
    for (const std::string& name : extra_columns_) {
      Anomaly a;
      a.kind = "extra_column";
      a.severity = Severity::warning;
      a.column = name;
      a.message = "column '" + name + "' is not used by the model (it is ignored)";
      report_.anomalies.push_back(std::move(a));
    }
    // Errors first, each group in the order found.
    std::stable_sort(report_.anomalies.begin(), report_.anomalies.end(),
                     [](const Anomaly& a, const Anomaly& b) { return a.severity > b.severity; });
    for (const Anomaly& a : report_.anomalies)
      (a.severity == Severity::error ? report_.errors : report_.warnings) += 1;
    return std::move(report_);
  }

  ValidateOptions options_;
  ValidationReport report_;
  data::CsvSchema schema_;
  std::optional<monitor::Profile> profile_;
  std::vector<std::string> header_;
  std::unordered_map<std::string, std::size_t> field_of_;
  std::vector<ColumnCheck> checks_;
  std::vector<std::string> missing_columns_, extra_columns_;
  bool missing_target_ = false;
  Tally ragged_, syntax_;
  std::string syntax_stopped_;
  std::vector<float> pixels_;
};

}  // namespace

const char* severity_name(Severity severity) {
  return severity == Severity::error ? "error" : "warning";
}

std::string ValidationReport::to_json() const {
  json j;
  j["file"] = file;
  j["model"] = model;
  j["rows"] = rows;
  j["errors"] = errors;
  j["warnings"] = warnings;
  j["has_profile"] = has_profile;
  j["anomalies"] = json::array();
  for (const Anomaly& a : anomalies)
    j["anomalies"].push_back({{"kind", a.kind},
                              {"severity", severity_name(a.severity)},
                              {"column", a.column},
                              {"count", a.count},
                              {"rows", a.rows},
                              {"examples", a.examples},
                              {"message", a.message}});
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ValidationReport validate_csv(const std::string& model_path, const std::string& csv_path,
                              const ValidateOptions& options) {
  Validator v(model_path, csv_path, options);
  return v.run();
}

}  // namespace kiln::mlops
