// Reads run folders (docs/run-format.md) for the report and the board.
#include "report/run_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <system_error>

#include "internal/fnv1a.hpp"
#include "io/model_data.hpp"
#include "kiln/core/error.hpp"

namespace kiln::report::internal {
namespace fs = std::filesystem;

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

json read_json_file(const std::string& path) {
  const std::vector<std::uint8_t> text = kiln::internal::read_file(path);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    // Parse again with exceptions for the position of the error.
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      throw FormatError(path + ": not valid JSON: " + e.what());
    }
  }
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object");
  return j;
}

json read_optional(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return nullptr;
  return read_json_file(p.string());
}

double number_or_nan(const json& v) { return v.is_number() ? v.get<double>() : nan; }

std::int64_t integer(const json& line, const char* key, const std::string& where) {
  auto it = line.find(key);
  if (it == line.end() || !it->is_number())
    throw FormatError(where + ": \"" + key + "\" is missing or not a number");
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (d != std::floor(d) || std::abs(d) > 9.0e15)
      throw FormatError(where + ": \"" + key + "\" is not an integer");
    return static_cast<std::int64_t>(d);
  }
  return it->get<std::int64_t>();
}

MetricsLine metrics_line(const json& j, const std::string& where) {
  MetricsLine line;
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string())
    throw FormatError(where + ": \"kind\" is missing or not a string");
  line.kind = kind->get<std::string>();
  line.step = integer(j, "step", where);
  line.epoch = integer(j, "epoch", where);
  if (auto t = j.find("time"); t != j.end()) line.time = number_or_nan(*t);
  for (const auto& [key, value] : j.items()) {
    if (key == "kind" || key == "step" || key == "epoch" || key == "time") continue;
    if (value.is_number() || value.is_null()) line.values[key] = number_or_nan(value);
  }
  return line;
}

TensorRecord tensor_record(const json& j, const std::string& where) {
  if (!j.is_object()) throw FormatError(where + ": a \"layers\" entry is not an object");
  TensorRecord r;
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto number = [&](const char* key) {
    auto it = j.find(key);
    return it == j.end() ? nan : number_or_nan(*it);
  };
  r.layer = text("layer");
  r.kind = text("kind");
  r.tensor = text("tensor");
  r.op = text("op");
  if (r.kind.empty()) throw FormatError(where + ": a \"layers\" entry has no \"kind\"");
  if (auto s = j.find("shape"); s != j.end() && s->is_array())
    for (const auto& d : *s)
      if (d.is_number_integer()) r.shape.push_back(d.get<std::int64_t>());
  r.mean = number("mean");
  r.std = number("std");
  r.min = number("min");
  r.max = number("max");
  r.norm = number("norm");
  r.zero_fraction = number("zero_fraction");
  if (auto u = j.find("update_ratio"); u != j.end() && u->is_number())
    r.update_ratio = u->get<double>();
  if (auto h = j.find("histogram"); h != j.end() && h->is_object()) {
    r.histogram_lo = h->contains("lo") ? number_or_nan((*h)["lo"]) : 0.0;
    r.histogram_hi = h->contains("hi") ? number_or_nan((*h)["hi"]) : 0.0;
    if (auto c = h->find("counts"); c != h->end() && c->is_array())
      for (const auto& v : *c) r.histogram.push_back(number_or_nan(v));
  }
  return r;
}

LayersLine layers_line(const json& j, const std::string& where) {
  LayersLine line;
  line.step = integer(j, "step", where);
  line.epoch = integer(j, "epoch", where);
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array())
    throw FormatError(where + ": \"layers\" is missing or not an array");
  for (const auto& t : *layers) line.tensors.push_back(tensor_record(t, where));
  return line;
}

/// Parses each line with `parse`, naming FILE:LINE in its errors.
template <typename T, typename F>
std::vector<T> read_lines_as(const std::string& path, F parse) {
  const std::vector<std::uint8_t> bytes = kiln::internal::read_file(path);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::vector<std::pair<std::size_t, std::string_view>> lines;
  std::size_t number = 0, begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++number;
    std::string_view line(text.data() + begin, end - begin);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) lines.emplace_back(number, line);
    begin = end + 1;
  }
  std::vector<T> out;
  out.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto& [line_number, line] = lines[i];
    std::string where = path + ":" + std::to_string(line_number);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      if (i + 1 == lines.size()) break;  // a writer interrupted mid-line
      try {
        json again = json::parse(line);
      } catch (const json::exception& e) {
        throw FormatError(where + ": not valid JSON: " + e.what());
      }
      throw FormatError(where + ": not valid JSON");
    }
    if (!j.is_object()) throw FormatError(where + ": expected a JSON object");
    out.push_back(parse(j, where));
  }
  return out;
}

void check_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw IoError(dir + ": no such run folder");
  if (!fs::is_directory(dir, ec)) throw IoError(dir + ": not a folder");
  if (!fs::is_regular_file(fs::path(dir) / "run.json", ec))
    throw IoError(dir + ": not a run folder (no run.json)");
}

}  // namespace

std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::vector<json> read_json_lines(const std::string& path) {
  return read_lines_as<json>(path, [](const json& j, const std::string&) { return j; });
}

std::string run_version(const std::string& dir) {
  std::ostringstream s;
  std::error_code ec;
  std::vector<std::string> parts;
  // The run's files and its drift snapshots (drift/), which the report shows too.
  for (const char* sub : {"", "drift"}) {
    const fs::path folder = *sub ? fs::path(dir) / sub : fs::path(dir);
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      std::error_code e2;
      if (!entry.is_regular_file(e2)) continue;
      std::string name = entry.path().filename().string();
      if (name == "report.html" || name.find(".tmp.") != std::string::npos) continue;
      auto size = entry.file_size(e2);
      auto time = entry.last_write_time(e2).time_since_epoch().count();
      parts.push_back((*sub ? std::string(sub) + "/" : std::string()) + name + ":" +
                      std::to_string(size) + ":" + std::to_string(time));
    }
  }
  std::sort(parts.begin(), parts.end());
  // FNV-1a over the listing: short and stable.
  kiln::internal::Fnv1a h;
  for (const auto& p : parts) h.add(p).add(";");
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h.value()));
  return buf;
}

RunData read_run(const std::string& dir) {
  check_folder(dir);
  fs::path p(dir);
  RunData run;
  run.dir = dir;
  run.version = run_version(dir);
  run.run = read_json_file((p / "run.json").string());
  run.graph = read_optional(p / "graph.json");
  run.data = read_optional(p / "data.json");
  run.evaluation = read_optional(p / "evaluation.json");
  run.explanations = read_optional(p / "explanations.json");
  std::error_code ec;
  if (fs::is_regular_file(p / "metrics.jsonl", ec)) {
    run.has_metrics = true;
    run.metrics = read_lines_as<MetricsLine>((p / "metrics.jsonl").string(), metrics_line);
  }
  if (fs::is_regular_file(p / "layers.jsonl", ec)) {
    run.has_layers = true;
    run.layers = read_lines_as<LayersLine>((p / "layers.jsonl").string(), layers_line);
  }
  return run;
}

RunSummary read_run_summary(const std::string& dir) {
  check_folder(dir);
  fs::path p(dir);
  RunSummary s;
  s.version = run_version(dir);
  s.run = read_json_file((p / "run.json").string());
  std::error_code ec;
  if (fs::is_regular_file(p / "metrics.jsonl", ec)) {
    auto lines = read_lines_as<MetricsLine>((p / "metrics.jsonl").string(), metrics_line);
    for (const auto& l : lines) {
      if (l.kind == "epoch") ++s.epochs, s.latest = l.values;
      s.steps = l.step;
    }
  }
  return s;
}

std::string RunData::text(const char* key) const {
  auto it = run.find(key);
  return it != run.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string RunData::name() const {
  std::string n = text("name");
  return n.empty() ? fs::path(dir).lexically_normal().filename().string() : n;
}

std::string RunData::status() const { return text("status"); }

namespace {
void flatten_into(const json& j, const std::string& prefix,
                  std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items())
      flatten_into(v, prefix.empty() ? k : prefix + "." + k, out);
    return;
  }
  out[prefix] = j.dump();
}
}  // namespace

std::map<std::string, std::string> flatten_config(const json& config) {
  std::map<std::string, std::string> out;
  if (config.is_object()) flatten_into(config, "", out);
  return out;
}

}  // namespace kiln::report::internal
