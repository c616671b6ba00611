// CsvSchema: feature names and the JSON form (nlohmann_json stays in this file).
#include <nlohmann/json.hpp>
#include <set>

#include "kiln/data/csv.hpp"

namespace kiln::data {

const char* column_kind_name(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::automatic:
      return "automatic";
    case ColumnKind::numeric:
      return "numeric";
    case ColumnKind::categorical:
      return "categorical";
    case ColumnKind::image:
      return "image";
  }
  return "?";
}

namespace {

using nlohmann::json;

constexpr const char* schema_format = "kiln.csv_schema";
constexpr int schema_version = 1;

const char* task_text(CsvTask task) {
  switch (task) {
    case CsvTask::automatic:
      return "automatic";
    case CsvTask::classification:
      return "classification";
    case CsvTask::regression:
      return "regression";
  }
  return "?";
}

[[noreturn]] void bad(const std::string& what) { throw FormatError("CSV schema: " + what); }

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      code = (code << 6) | (d & 0x3F);
    }
    constexpr std::uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
    if (code < smallest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
      return false;
    i += extra + 1;
  }
  return true;
}

// Text from a CSV file need not be UTF-8 (e.g. Latin-1): such strings are written as
// {"hex": "..."} so that every byte comes back.
json text_json(const std::string& s) {
  if (valid_utf8(s)) return s;
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return json{{"hex", hex}};
}

std::string text_value(const json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  const auto it = v.is_object() && v.size() == 1 ? v.find("hex") : v.end();
  if (it == v.end() || !it->is_string() || it->get_ref<const std::string&>().size() % 2 != 0)
    bad(where + " is neither a string nor {\"hex\": \"...\"}");
  const std::string& hex = it->get_ref<const std::string&>();
  auto nibble = [&](char h) -> int {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    bad(where + ": '" + std::string(1, h) + "' is not a lower-case hex digit");
  };
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1]));
  return out;
}

const json& field(const json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) bad(where + " has no \"" + key + "\"");
  return *it;
}

std::string text(const json& object, const char* key, const std::string& where) {
  return text_value(field(object, key, where), where + ": \"" + key + "\"");
}

std::vector<std::string> texts(const json& object, const char* key, const std::string& where) {
  const json& v = field(object, key, where);
  if (!v.is_array()) bad(where + ": \"" + key + "\" is not an array");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const json& e : v) {
    std::string t = text_value(e, where + ": a value of \"" + key + "\"");
    if (!seen.insert(t).second) bad(where + ": \"" + key + "\" has '" + t + "' twice");
    out.push_back(std::move(t));
  }
  return out;
}

ColumnKind parse_kind(const std::string& s, const std::string& where) {
  for (ColumnKind k : {ColumnKind::numeric, ColumnKind::categorical, ColumnKind::image})
    if (s == column_kind_name(k)) return k;
  bad(where + ": unknown kind '" + s + "' (numeric, categorical or image)");
}

json texts_json(const std::vector<std::string>& v) {
  json out = json::array();
  for (const std::string& s : v) out.push_back(text_json(s));
  return out;
}

json column_json(const CsvColumn& c) {
  return {{"name", text_json(c.name)},
          {"kind", column_kind_name(c.kind)},
          {"categories", texts_json(c.categories)}};
}

CsvColumn parse_column(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where + " is not an object");
  CsvColumn c;
  c.name = text(j, "name", where);
  c.kind = parse_kind(text(j, "kind", where), where);
  c.categories = texts(j, "categories", where);
  if (c.kind == ColumnKind::categorical && c.categories.empty())
    bad(where + " ('" + c.name + "') is categorical without categories");
  if (c.kind != ColumnKind::categorical && !c.categories.empty())
    bad(where + " ('" + c.name + "') has categories but is " + column_kind_name(c.kind));
  return c;
}

}  // namespace

std::vector<std::string> CsvSchema::feature_names() const {
  std::vector<std::string> names;
  for (const CsvColumn& c : features) {
    if (c.kind == ColumnKind::image) return {};
    if (c.kind == ColumnKind::categorical && encoding == CategoryEncoding::one_hot)
      for (const std::string& category : c.categories) names.push_back(c.name + "=" + category);
    else
      names.push_back(c.name);
  }
  return names;
}

std::string CsvSchema::to_json() const {
  json j;
  j["format"] = schema_format;
  j["version"] = schema_version;
  j["delimiter"] = std::string(1, delimiter);
  j["encoding"] = encoding == CategoryEncoding::one_hot ? "one_hot" : "index";
  j["task"] = task_text(task);
  j["features"] = json::array();
  for (const CsvColumn& c : features) j["features"].push_back(column_json(c));
  j["target"] = column_json(target);
  j["labels"] = texts_json(labels);
  j["image_shape"] = image_shape;
  return j.dump();
}

CsvSchema CsvSchema::from_json(std::string_view text_in) {
  json j;
  try {
    j = json::parse(text_in.begin(), text_in.end());
  } catch (const json::exception& e) {
    bad(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad("not a JSON object");
  const std::string top = "the schema";
  if (text(j, "format", top) != schema_format)
    bad("\"format\" is not \"" + std::string(schema_format) + "\"");
  const json& version = field(j, "version", top);
  if (!version.is_number_integer() || version.get<std::int64_t>() != schema_version)
    bad("\"version\" " + version.dump() + " is not " + std::to_string(schema_version));
  CsvSchema s;
  const std::string delimiter = text(j, "delimiter", top);
  if (delimiter.size() != 1 || delimiter[0] == '"' || delimiter[0] == '\n' || delimiter[0] == '\r')
    bad("\"delimiter\" '" + delimiter + "' is not one character other than a quote or line break");
  s.delimiter = delimiter[0];
  const std::string encoding = text(j, "encoding", top);
  if (encoding == "one_hot")
    s.encoding = CategoryEncoding::one_hot;
  else if (encoding == "index")
    s.encoding = CategoryEncoding::index;
  else
    bad("unknown \"encoding\" '" + encoding + "' (one_hot or index)");
  const std::string task = text(j, "task", top);
  bool known_task = false;
  for (CsvTask t : {CsvTask::automatic, CsvTask::classification, CsvTask::regression})
    if (task == task_text(t)) {
      s.task = t;
      known_task = true;
    }
  if (!known_task) bad("unknown \"task\" '" + task + "'");
  const json& features = field(j, "features", top);
  if (!features.is_array() || features.empty()) bad("\"features\" is not a non-empty array");
  std::set<std::string> names;
  for (std::size_t i = 0; i < features.size(); ++i) {
    s.features.push_back(parse_column(features[i], "feature " + std::to_string(i)));
    if (!names.insert(s.features.back().name).second)
      bad("column '" + s.features.back().name + "' is given twice");
  }
  const json& target = field(j, "target", top);
  if (!target.is_object()) bad("\"target\" is not an object");
  s.target.name = text(target, "name", "the target");
  if (!s.target.name.empty()) {
    s.target = parse_column(target, "the target");
    if (!names.insert(s.target.name).second)
      bad("the target '" + s.target.name + "' is also a feature");
    if (s.target.kind == ColumnKind::image) bad("the target is an image column");
  }
  s.labels = texts(j, "labels", top);
  const json& shape = field(j, "image_shape", top);
  if (!shape.is_array() || shape.size() != 3) bad("\"image_shape\" is not [C, H, W]");
  for (std::size_t i = 0; i < 3; ++i) {
    if (!shape[i].is_number_integer()) bad("\"image_shape\" holds a value that is not an integer");
    s.image_shape[i] = shape[i].get<std::int64_t>();
  }
  // What the reader relies on.
  const bool has_image = s.features.front().kind == ColumnKind::image;
  for (const CsvColumn& c : s.features)
    if (c.kind == ColumnKind::image && s.features.size() > 1)
      bad("an image column ('" + c.name + "') must be the only feature");
  if (has_image) {
    const auto [c, h, w] = s.image_shape;
    if (!(c == 1 || c == 3 || c == 2 || c == 4) || h < 1 || w < 1 || h > 32768 || w > 32768)
      bad("\"image_shape\" is not a valid [C, H, W] for an image feature");
  } else if (s.image_shape != std::array<std::int64_t, 3>{0, 0, 0}) {
    bad("\"image_shape\" is set without an image feature");
  }
  if (s.target.name.empty()) {
    if (s.task != CsvTask::automatic || !s.labels.empty()) bad("a task or labels without a target");
  } else if (s.task == CsvTask::classification) {
    if (s.labels.size() < 2) bad("classification with fewer than two labels");
    if (s.target.kind == ColumnKind::categorical && s.labels != s.target.categories)
      bad("the labels are not the target's categories");
    if (s.target.kind == ColumnKind::numeric)
      for (std::size_t k = 0; k < s.labels.size(); ++k)
        if (s.labels[k] != std::to_string(k))
          bad("the labels of a numeric target are not 0, 1, ...");
  } else if (s.task == CsvTask::regression) {
    if (s.target.kind != ColumnKind::numeric || !s.labels.empty())
      bad("a regression target must be numeric and have no labels");
  } else {
    bad("a target without a task");
  }
  return s;
}

}  // namespace kiln::data
