// The CSV reader: one pass over the file fills a store per kept column (numbers, category
// codes or pixels); a column taken for numeric that meets a non-number becomes categorical
// and is read again in a second pass (only that column). Encoding into tensors is in
// csv_encode.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "data/csv_columns.hpp"
#include "data/csv_internal.hpp"
#include "data/image.hpp"
#include "internal/text.hpp"

namespace kiln::data {
namespace {

bool ends_with_image_suffix(std::string_view v) {
  std::string lower(v.substr(v.size() > 5 ? v.size() - 5 : 0));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string_view l(lower);
  return l.ends_with(".png") || l.ends_with(".jpg") || l.ends_with(".jpeg");
}

}  // namespace

std::string CsvReader::where(std::int64_t row, const std::string& column) const {
  return name_ + ": row " + std::to_string(row) + ", column '" + column + "'";
}

std::string CsvReader::show(std::string_view value) {
  constexpr std::size_t shown = 60;
  std::string out = "'" + std::string(value.substr(0, shown)) + "'";
  if (value.size() > shown) out.insert(out.size() - 1, "...");
  return out;
}

std::size_t CsvReader::column_index(const std::string& name) const {
  const auto it = std::find(header_.begin(), header_.end(), name);
  if (it == header_.end())
    throw DataError(name_ + ": no column '" + name + "' (the header has " +
                    internal::quoted_list(header_) + ")");
  return static_cast<std::size_t>(it - header_.begin());
}

void CsvReader::read_header(CsvScanner& scanner, std::vector<std::string_view>& fields) {
  bool any = false;
  try {
    any = scanner.next(fields);
  } catch (const CsvSyntaxError& e) {
    throw DataError(name_ + ": row " + std::to_string(e.row) + ": " + e.what);
  }
  if (!any) throw DataError(name_ + ": the file is empty (no header row)");
  std::vector<std::string> header;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    std::string name(fields[i]);
    if (name.empty()) name = "unnamed_" + std::to_string(i + 1);
    header.push_back(std::move(name));
  }
  if (!header_.empty()) {
    if (header != header_) throw DataError(name_ + ": the header changed while the file was read");
    return;
  }
  std::map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < header.size(); ++i) {
    const auto [it, fresh] = seen.emplace(header[i], i);
    if (!fresh)
      throw DataError(name_ + ": row " + std::to_string(scanner.row()) + ": column '" + header[i] +
                      "' appears twice (fields " + std::to_string(it->second + 1) + " and " +
                      std::to_string(i + 1) + ")");
  }
  header_ = std::move(header);
}

void CsvReader::plan_fit(const CsvOptions& options) {
  if (options.image_channels != 0 && options.image_channels != 1 && options.image_channels != 3)
    throw ValueError("read_csv: image_channels " + std::to_string(options.image_channels) +
                     " must be 0 (as in the files), 1 or 3");
  if (options.max_categories < 1) throw ValueError("read_csv: max_categories must be at least 1");
  image_channels_ = options.image_channels;
  std::vector<std::string> feature_names = options.features;
  std::set<std::string> used;
  if (!options.target.empty()) used.insert(options.target);
  for (const std::string& name : options.ignore) (void)column_index(name);
  if (feature_names.empty()) {
    for (const std::string& name : header_)
      if (name != options.target &&
          std::find(options.ignore.begin(), options.ignore.end(), name) == options.ignore.end())
        feature_names.push_back(name);
  }
  for (const std::string& name : feature_names)
    if (!used.insert(name).second)
      throw ValueError("read_csv: column '" + name +
                       "' is given twice among the target and features");
  if (feature_names.empty())
    throw DataError(name_ + ": no feature columns (the header has " +
                    internal::quoted_list(header_) + ")");
  auto add = [&](const std::string& name, bool is_target) {
    Column c;
    c.name = name;
    c.field = column_index(name);
    c.is_target = is_target;
    for (const auto& [kind_column, kind] : options.kinds)
      if (kind_column == name && kind != ColumnKind::automatic) {
        c.kind = kind;
        c.forced = true;
      }
    if (is_target && c.kind == ColumnKind::image)
      throw ValueError("read_csv: the target column '" + name + "' cannot be an image column");
    columns_.push_back(std::move(c));
  };
  for (const auto& [kind_column, kind] : options.kinds) (void)column_index(kind_column);
  for (const std::string& name : feature_names) add(name, false);
  if (!options.target.empty()) {
    add(options.target, true);
    task_ = options.task;
    Column& t = columns_.back();
    if (task_ == CsvTask::regression) {
      if (t.kind == ColumnKind::categorical)
        throw ValueError("read_csv: regression needs a numeric target; '" + options.target +
                         "' is forced categorical");
      t.kind = ColumnKind::numeric;  // a value that is not a number is an error
      t.forced = true;
    }
  }
}

void CsvReader::plan_schema(const CsvSchema& schema, TargetColumn target) {
  image_channels_ = static_cast<int>(schema.image_shape[0]);
  for (const CsvColumn& f : schema.features) {
    Column c;
    c.name = f.name;
    c.field = column_index(f.name);
    c.kind = f.kind;
    c.forced = true;
    c.fixed = true;
    for (std::size_t i = 0; i < f.categories.size(); ++i)
      c.codes_by_name.emplace(f.categories[i], static_cast<std::int32_t>(i));
    c.names = f.categories;
    if (f.kind == ColumnKind::image) c.image_shape = schema.image_shape;
    columns_.push_back(std::move(c));
  }
  if (schema.target.name.empty() || target == TargetColumn::ignore) return;
  if (std::find(header_.begin(), header_.end(), schema.target.name) == header_.end()) {
    if (target == TargetColumn::required) (void)column_index(schema.target.name);
    return;
  }
  Column c;
  c.name = schema.target.name;
  c.field = column_index(c.name);
  c.is_target = true;
  c.kind = schema.target.kind;
  c.forced = true;
  c.fixed = true;
  task_ = schema.task;
  const std::vector<std::string>& names =
      schema.target.kind == ColumnKind::categorical ? schema.target.categories : schema.labels;
  for (std::size_t i = 0; i < names.size(); ++i)
    c.codes_by_name.emplace(names[i], static_cast<std::int32_t>(i));
  c.names = names;
  class_count_ = static_cast<std::int64_t>(schema.labels.size());
  columns_.push_back(std::move(c));
}

// The first data row fixes what the first row can: an automatic column whose value names a
// PNG/JPEG file is an image column, any other starts as numeric.
void CsvReader::resolve_first_row(const std::vector<std::string_view>& fields, std::int64_t row) {
  std::size_t images = 0;
  std::size_t features = 0;
  for (Column& c : columns_) {
    if (c.kind == ColumnKind::automatic)
      c.kind =
          ends_with_image_suffix(trim(fields[c.field])) ? ColumnKind::image : ColumnKind::numeric;
    if (c.kind == ColumnKind::image && c.is_target)
      throw DataError(where(row, c.name) + ": the target holds an image path " +
                      show(fields[c.field]) + "; force it categorical if it is a class name");
    if (!c.is_target) {
      ++features;
      images += c.kind == ColumnKind::image;
    }
  }
  if (images > 0 && features > 1) {
    std::vector<std::string> names;
    for (const Column& c : columns_)
      if (!c.is_target) names.push_back(c.name + " (" + column_kind_name(c.kind) + ")");
    throw DataError(name_ + ": an image column must be the only feature; the features are " +
                    internal::quoted_list(names) + " (choose them with CsvOptions::features)");
  }
}

void CsvReader::add_value(Column& c, std::string_view v, std::int64_t row) {
  if (is_missing(v))
    throw DataError(where(row, c.name) + ": missing value" + (v.empty() ? "" : " " + show(v)) +
                    " (Kiln does not fill in missing values)");
  switch (c.kind) {
    case ColumnKind::numeric: {
      float f = 0;
      if (!parse_float(v, f)) {
        if (c.forced)
          throw DataError(where(row, c.name) + ": cannot parse " + show(v) + " as a number");
        // Not a number after all: categorical, read again from the start.
        c.kind = ColumnKind::categorical;
        c.rescan = true;
        c.values = {};
        return;
      }
      if (!std::isfinite(f)) {
        if (c.forced)
          throw DataError(where(row, c.name) + ": " + show(v) + " is not a finite f32 number");
        if (c.nonfinite_row == 0) {
          c.nonfinite_row = row;
          c.nonfinite_value = std::string(v);
        }
      }
      if (c.is_target && task_ != CsvTask::regression) note_class_value(c, v, row);
      c.values.push_back(f);
      return;
    }
    case ColumnKind::categorical: {
      const auto it = c.codes_by_name.find(v);
      if (it != c.codes_by_name.end()) {
        c.codes.push_back(it->second);
        return;
      }
      if (c.fixed)
        throw DataError(where(row, c.name) + ": " + (c.is_target ? "class " : "category ") +
                        show(v) + " is not one the schema knows (" +
                        internal::quoted_list(c.names) + ")");
      const auto code = static_cast<std::int32_t>(c.names.size());
      c.names.emplace_back(v);
      c.codes_by_name.emplace(c.names.back(), code);
      c.codes.push_back(code);
      return;
    }
    case ColumnKind::image:
      add_image(c, v, row);
      return;
    case ColumnKind::automatic:
      break;
  }
}

// Classification targets need integers in [0, max_class]: remember the first row that is not.
void CsvReader::note_class_value(Column& c, std::string_view v, std::int64_t row) {
  double d = 0;
  (void)parse_double(v, d);
  const bool integer = std::isfinite(d) && d == std::floor(d);
  const char* problem = nullptr;
  if (!integer)
    problem = "is not an integer class index";
  else if (d < 0)
    problem = "is a negative class index";
  else if (d > static_cast<double>(max_class_))
    problem = "is larger than the largest class index Kiln takes (99999)";
  else if (c.fixed && d >= static_cast<double>(class_count_))
    throw DataError(where(row, c.name) + ": class " + show(v) + " is not one the schema knows (" +
                    internal::quoted_list(c.names) + ")");
  if (problem) {
    if (c.fixed && task_ == CsvTask::classification)
      throw DataError(where(row, c.name) + ": " + show(v) + " " + problem);
    if (c.bad_class_row == 0) {
      c.bad_class_row = row;
      c.bad_class_value = std::string(v);
      c.bad_class_problem = problem;
    }
    return;
  }
  const auto k = static_cast<std::size_t>(d);
  if (k >= c.class_seen.size()) c.class_seen.resize(k + 1, false);
  c.class_seen[k] = true;
}

void CsvReader::add_image(Column& c, std::string_view v, std::int64_t row) {
  const std::string relative(trim(v));
  std::filesystem::path path(relative);
  if (path.is_relative()) path = std::filesystem::path(base_dir_) / path;
  ImageShape shape{};
  const std::size_t before = c.values.size();
  try {
    shape = decode_image_file(path.string(), image_channels_, c.values);
  } catch (const std::exception& e) {
    throw DataError(where(row, c.name) + ": cannot read image '" + path.string() +
                    "': " + e.what());
  }
  if (c.image_row == 0 && c.image_shape == ImageShape{}) {
    c.image_row = row;
    c.image_path = relative;
    c.image_shape = shape;
  } else if (shape != c.image_shape) {
    c.values.resize(before);
    auto dims = [](const ImageShape& s) {
      return "[" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " +
             std::to_string(s[2]) + "]";
    };
    throw DataError(
        where(row, c.name) + ": image '" + relative + "' is " + dims(shape) + " (C, H, W) but " +
        (c.image_row > 0 ? "the first image ('" + c.image_path + "', row " +
                               std::to_string(c.image_row) + ") is "
                         : "the schema says ") +
        dims(c.image_shape) +
        (image_channels_ == 0
             ? "; every image needs the same size and channels (image_channels converts)"
             : ""));
  }
}

// Room for the rows a file of `size` bytes likely has (from the bytes the first rows took),
// so the column stores do not grow by copying. Only what the kept columns will hold.
void CsvReader::reserve(std::int64_t rows, std::size_t consumed, std::size_t size) {
  if (consumed == 0 || size <= consumed) return;
  const double estimate =
      static_cast<double>(rows) * static_cast<double>(size) / static_cast<double>(consumed);
  const auto expected =
      static_cast<std::size_t>(std::min(estimate * 1.02 + 16, static_cast<double>(size)));
  for (Column& c : columns_) {
    if (c.skip || c.rescan) continue;
    if (c.kind == ColumnKind::numeric) c.values.reserve(expected);
    if (c.kind == ColumnKind::categorical) c.codes.reserve(expected);
  }
}

// One pass over the file; columns with `skip` set are not read.
std::int64_t CsvReader::read_pass(const OpenSource& open, bool first) {
  std::unique_ptr<ByteSource> source = open();
  const std::size_t size_hint = source->size_hint();
  CsvScanner scanner(*source, delimiter_);
  std::vector<std::string_view> fields;
  read_header(scanner, fields);
  if (first && plan_) plan_();
  std::int64_t rows = 0;
  for (;;) {
    bool any = false;
    try {
      any = scanner.next(fields);
    } catch (const CsvSyntaxError& e) {
      const std::string column =
          e.field < header_.size() ? header_[e.field] : "field " + std::to_string(e.field + 1);
      throw DataError(where(e.row, column) + ": " + e.what);
    }
    if (!any) break;
    const std::int64_t row = scanner.row();
    if (fields.size() != header_.size()) {
      const std::string detail = fields.size() < header_.size()
                                     ? "column '" + header_[fields.size()] + "' is missing"
                                     : "there is a field after column '" + header_.back() + "'";
      throw DataError(name_ + ": row " + std::to_string(row) + " has " +
                      std::to_string(fields.size()) + " fields but the header has " +
                      std::to_string(header_.size()) + " (" + detail + ")");
    }
    if (first && rows == 0) resolve_first_row(fields, row);
    for (Column& c : columns_) {
      if (c.skip || (first && c.rescan)) continue;
      const std::string_view v = fields[c.field];
      float f = 0;
      // The common case inline: a finite number in a numeric feature column.
      if (c.kind == ColumnKind::numeric && !c.is_target && !v.empty()) {
        const auto r = fast_float::from_chars(v.data(), v.data() + v.size(), f);
        if (r.ec == std::errc() && r.ptr == v.data() + v.size() && std::isfinite(f)) {
          c.values.push_back(f);
          continue;
        }
      }
      add_value(c, v, row);
    }
    ++rows;
    if (rows == 1024 && size_hint > 0) reserve(rows, scanner.consumed(), size_hint);
  }
  if (rows == 0) throw DataError(name_ + ": no data rows after the header (row 1)");
  return rows;
}

std::int64_t CsvReader::read_all(const OpenSource& open) {
  const std::int64_t rows = read_pass(open, true);
  const bool again =
      std::any_of(columns_.begin(), columns_.end(), [](const Column& c) { return c.rescan; });
  if (!again) return rows;
  for (Column& c : columns_) {
    c.skip = !c.rescan;
    if (c.rescan) c.forced = true;
  }
  if (read_pass(open, false) != rows)
    throw DataError(name_ + ": the file changed while it was read");
  return rows;
}

CsvData read_csv_source(const OpenSource& open, const std::string& name,
                        const std::string& base_dir, const CsvOptions& options) {
  CsvReader reader(name, base_dir, options.delimiter);
  reader.set_plan([&] { reader.plan_fit(options); });
  const std::int64_t rows = reader.read_all(open);
  return reader.encode_fit(rows, options);
}

Dataset read_csv_source_with_schema(const OpenSource& open, const std::string& name,
                                    const std::string& base_dir, const CsvSchema& schema,
                                    TargetColumn target) {
  CsvReader reader(name, base_dir, schema.delimiter);
  reader.set_plan([&] { reader.plan_schema(schema, target); });
  const std::int64_t rows = reader.read_all(open);
  return reader.encode_schema(rows, schema);
}

CsvData read_csv(const std::string& path, const CsvOptions& options) {
  const std::string base = std::filesystem::path(path).parent_path().string();
  return read_csv_source([&] { return std::make_unique<FileSource>(path); }, path, base, options);
}

Dataset read_csv_with_schema(const std::string& path, const CsvSchema& schema,
                             TargetColumn target) {
  const std::string base = std::filesystem::path(path).parent_path().string();
  return read_csv_source_with_schema([&] { return std::make_unique<FileSource>(path); }, path, base,
                                     schema, target);
}

}  // namespace kiln::data
