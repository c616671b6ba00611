// A strict parser of the Prometheus text exposition format 0.0.4, for tests that check what
// /metrics answers (Metrics::prometheus, `kiln serve`). It refuses what a Prometheus server
// would refuse and a little more: every line is parsed by the grammar (metric and label
// names, quoted label values with the three escapes \\ \" \n, values incl. NaN, +Inf, -Inf,
// an optional integer timestamp), # HELP / # TYPE at most once per family and before its
// samples, the samples of a family contiguous, no series twice, and histograms consistent
// (per label set: buckets with ascending `le`, cumulative counts non-decreasing, a +Inf
// bucket equal to _count, a _sum). Errors are std::runtime_error naming the line.
//
//   auto text = kiln::test::prometheus::parse(body);
//   double n = text.value("kiln_requests_total", {{"model", "digits"}, {"code", "200"}});
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::test::prometheus {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;  ///< the sample's name (e.g. x_bucket for histogram x)
  Labels labels;
  double value = 0;
  std::optional<std::int64_t> timestamp;
};

struct Family {
  std::string name;
  std::string help;
  std::string type = "untyped";  ///< counter, gauge, histogram, summary, untyped
  bool has_help = false, has_type = false;
  std::vector<Sample> samples;
};

struct Exposition {
  std::vector<Family> families;

  const Family* family(std::string_view name) const {
    for (const auto& f : families)
      if (f.name == name) return &f;
    return nullptr;
  }
  /// Every sample named `name` whose labels include `subset`.
  std::vector<const Sample*> find(std::string_view name, const Labels& subset = {}) const {
    std::vector<const Sample*> out;
    for (const auto& f : families)
      for (const auto& s : f.samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : subset) {
          auto it = s.labels.find(k);
          if (it == s.labels.end() || it->second != v) {
            match = false;
            break;
          }
        }
        if (match) out.push_back(&s);
      }
    return out;
  }
  /// The value of the one sample `name` with exactly `labels`; throws when absent.
  double value(std::string_view name, const Labels& labels = {}) const {
    for (const auto& f : families)
      for (const auto& s : f.samples)
        if (s.name == name && s.labels == labels) return s.value;
    std::string l;
    for (const auto& [k, v] : labels) l += (l.empty() ? "" : ",") + k + "=\"" + v + "\"";
    throw std::runtime_error("no sample " + std::string(name) + "{" + l + "}");
  }
  /// Sum of every sample `name` whose labels include `subset` (0 when none).
  double sum(std::string_view name, const Labels& subset = {}) const {
    double total = 0;
    for (const Sample* s : find(name, subset)) total += s->value;
    return total;
  }
};

namespace detail {

inline bool name_start(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
inline bool name_char(char c, bool colon) { return name_start(c, colon) || (c >= '0' && c <= '9'); }

inline bool valid_name(std::string_view s, bool colon) {
  if (s.empty() || !name_start(s[0], colon)) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return name_char(c, colon); });
}

class LineParser {
 public:
  LineParser(std::string_view line, std::size_t number) : s_(line), line_(number) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("prometheus text line " + std::to_string(line_) + ": " + what +
                             " in '" + std::string(s_) + "'");
  }
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at column " + std::to_string(i_));
    ++i_;
  }
  std::string name(bool colon) {
    std::size_t b = i_;
    if (!name_start(peek(), colon)) fail("bad name at column " + std::to_string(i_));
    while (!done() && name_char(s_[i_], colon)) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  std::string quoted() {
    expect('"');
    std::string out;
    while (true) {
      if (done()) fail("unterminated label value");
      char c = s_[i_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (done()) fail("dangling backslash");
        char e = s_[i_++];
        if (e == '\\')
          out += '\\';
        else if (e == '"')
          out += '"';
        else if (e == 'n')
          out += '\n';
        else
          fail(std::string("bad escape \\") + e);
      } else {
        out += c;
      }
    }
  }
  std::string_view token() {
    std::size_t b = i_;
    while (!done() && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
    return s_.substr(b, i_ - b);
  }
  void spaces(bool required) {
    std::size_t b = i_;
    while (!done() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
    if (required && b == i_) fail("expected a space at column " + std::to_string(i_));
  }
  std::string_view rest() const { return s_.substr(std::min(i_, s_.size())); }

 private:
  std::string_view s_;
  std::size_t line_;
  std::size_t i_ = 0;
};

inline std::optional<double> parse_value(std::string_view t) {
  if (t == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (t == "+Inf" || t == "Inf") return std::numeric_limits<double>::infinity();
  if (t == "-Inf") return -std::numeric_limits<double>::infinity();
  if (t.empty()) return std::nullopt;
  // Go's ParseFloat syntax without hex or underscores: [+-]digits[.digits][e[+-]digits].
  std::size_t i = 0;
  if (t[i] == '+' || t[i] == '-') ++i;
  std::size_t digits = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i, ++digits;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    std::size_t exp = 0;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i, ++exp;
    if (exp == 0) return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  std::string copy(t[0] == '+' ? t.substr(1) : t);
  return std::stod(copy);
}

inline std::string help_unescape(LineParser& p, std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (i + 1 == text.size()) p.fail("dangling backslash in HELP");
    char e = text[++i];
    if (e == '\\')
      out += '\\';
    else if (e == 'n')
      out += '\n';
    else
      p.fail(std::string("bad escape in HELP \\") + e);
  }
  return out;
}

/// The family a sample name belongs to, given the declared types.
inline std::string family_of(const std::string& sample,
                             const std::map<std::string, std::string>& types) {
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (sample.size() > suffix.size() && sample.ends_with(suffix)) {
      std::string base = sample.substr(0, sample.size() - suffix.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return sample;
}

inline void check_histogram(const Family& f) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("prometheus text: histogram " + f.name + ": " + what);
  };
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // le, count (in order of appearance)
    std::optional<double> count, sum;
  };
  std::map<Labels, Series> series;
  for (const auto& s : f.samples) {
    Labels key = s.labels;
    if (s.name == f.name + "_bucket") {
      auto le = key.find("le");
      if (le == key.end()) fail("a bucket without le");
      auto bound = parse_value(le->second);
      if (!bound || std::isnan(*bound)) fail("bad le \"" + le->second + "\"");
      key.erase(le);
      series[key].buckets.emplace_back(*bound, s.value);
    } else if (s.name == f.name + "_count") {
      if (key.count("le")) fail("le on _count");
      series[key].count = s.value;
    } else if (s.name == f.name + "_sum") {
      if (key.count("le")) fail("le on _sum");
      series[key].sum = s.value;
    } else {
      fail("unexpected sample " + s.name);
    }
  }
  for (const auto& [labels, s] : series) {
    std::string where;
    for (const auto& [k, v] : labels) where += k + "=" + v + " ";
    if (s.buckets.empty()) fail("no buckets for {" + where + "}");
    for (std::size_t i = 0; i < s.buckets.size(); ++i) {
      if (std::isnan(s.buckets[i].second) || s.buckets[i].second < 0)
        fail("bad bucket count for {" + where + "}");
      if (i > 0 && !(s.buckets[i].first > s.buckets[i - 1].first))
        fail("le not ascending for {" + where + "}");
      if (i > 0 && s.buckets[i].second < s.buckets[i - 1].second)
        fail("bucket counts decrease for {" + where + "}");
    }
    if (!std::isinf(s.buckets.back().first)) fail("no +Inf bucket for {" + where + "}");
    if (!s.count) fail("no _count for {" + where + "}");
    if (*s.count != s.buckets.back().second) fail("+Inf bucket != _count for {" + where + "}");
    if (!s.sum) fail("no _sum for {" + where + "}");
  }
}

}  // namespace detail

/// Parses `text`; throws std::runtime_error naming the line on any violation.
inline Exposition parse(std::string_view text) {
  using detail::LineParser;
  Exposition out;
  if (!text.empty() && text.back() != '\n')
    throw std::runtime_error("prometheus text: no final newline");
  std::map<std::string, std::string> types;  // declared so far
  std::map<std::string, std::size_t> index;  // family name -> position in out.families
  std::set<std::string> closed;              // families whose samples ended
  std::set<std::pair<std::string, Labels>> seen;
  std::string current;  // family of the previous sample or comment
  auto family = [&](const std::string& name) -> Family& {
    auto it = index.find(name);
    if (it != index.end()) return out.families[it->second];
    index[name] = out.families.size();
    Family f;
    f.name = name;
    out.families.push_back(std::move(f));
    return out.families.back();
  };
  auto enter = [&](LineParser& p, const std::string& name) {
    if (name != current) {
      if (!current.empty()) closed.insert(current);
      if (closed.count(name)) p.fail("lines of " + name + " are not together");
      current = name;
    }
  };

  std::size_t number = 0, begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++number;
    LineParser p(line, number);
    if (line.empty()) continue;
    if (line[0] == '#') {
      p.expect('#');
      p.spaces(false);
      std::string_view keyword = p.token();
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a comment
      p.spaces(true);
      std::string name = p.name(true);
      Family& f = family(name);
      enter(p, name);
      if (keyword == "HELP") {
        if (f.has_help) p.fail("second HELP for " + name);
        if (!p.done()) p.spaces(true);
        f.help = detail::help_unescape(p, p.rest());
        f.has_help = true;
      } else {
        if (f.has_type) p.fail("second TYPE for " + name);
        if (!f.samples.empty()) p.fail("TYPE after samples of " + name);
        p.spaces(true);
        std::string type(p.token());
        p.spaces(false);
        if (!p.done()) p.fail("text after the type");
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
            type != "untyped")
          p.fail("unknown type " + type);
        f.type = type;
        f.has_type = true;
        types[name] = type;
      }
      continue;
    }
    Sample s;
    s.name = p.name(true);
    if (p.peek() == '{') {
      p.expect('{');
      p.spaces(false);
      while (p.peek() != '}') {
        std::string label = p.name(false);
        if (label.starts_with("__")) p.fail("reserved label name " + label);
        p.spaces(false);
        p.expect('=');
        p.spaces(false);
        std::string value = p.quoted();
        if (!s.labels.emplace(label, value).second) p.fail("label " + label + " twice");
        p.spaces(false);
        if (p.peek() == ',') {
          p.expect(',');
          p.spaces(false);
        } else if (p.peek() != '}') {
          p.fail("expected ',' or '}'");
        }
      }
      p.expect('}');
    }
    p.spaces(true);
    auto value = detail::parse_value(p.token());
    if (!value) p.fail("bad value");
    p.spaces(false);
    if (!p.done()) {
      std::string_view ts = p.token();
      std::int64_t t = 0;
      auto [ptr, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), t);
      if (ec != std::errc() || ptr != ts.data() + ts.size()) p.fail("bad timestamp");
      s.timestamp = t;
      p.spaces(false);
      if (!p.done()) p.fail("text after the timestamp");
    }
    s.value = *value;
    std::string fam = detail::family_of(s.name, types);
    enter(p, fam);
    Family& f = family(fam);
    if (f.type == "counter" && (std::isnan(s.value) || s.value < 0)) p.fail("negative counter");
    if (f.type == "histogram" && fam == s.name) p.fail("histogram sample without a suffix");
    if (!seen.emplace(s.name, s.labels).second) p.fail("series given twice");
    f.samples.push_back(std::move(s));
  }
  for (const auto& f : out.families)
    if (f.type == "histogram") detail::check_histogram(f);
  return out;
}

}  // namespace kiln::test::prometheus
