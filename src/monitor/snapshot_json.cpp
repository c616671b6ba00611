// The JSON writer of drift snapshots (monitor/snapshot_json.hpp).
#include "monitor/snapshot_json.hpp"

#include <cmath>
#include <cstdio>
#include <string>

namespace kiln::monitor::internal {
namespace {

class JsonOut {
 public:
  std::string text;

  void key(const char* k) {
    comma();
    quoted(k);
    text += ':';
    pending_value_ = true;  // the value follows without a comma
  }
  void open(char c) {
    comma();
    text += c;
    first_ = true;
  }
  void close(char c) {
    text += c;
    first_ = false;
  }
  void string(const std::string& s) {
    comma();
    quoted(s);
    first_ = false;
  }
  void quoted(const std::string& s) {
    text += '"';
    for (const unsigned char ch : s) {
      switch (ch) {
        case '"':
          text += "\\\"";
          break;
        case '\\':
          text += "\\\\";
          break;
        case '\n':
          text += "\\n";
          break;
        case '\r':
          text += "\\r";
          break;
        case '\t':
          text += "\\t";
          break;
        default:
          if (ch < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", ch);
            text += buf;
          } else {
            text += static_cast<char>(ch);
          }
      }
    }
    text += '"';
  }
  void number(double v) {
    comma();
    if (!std::isfinite(v)) {
      text += "null";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      text += buf;
    }
    first_ = false;
  }
  void integer(std::uint64_t v) {
    comma();
    text += std::to_string(v);
    first_ = false;
  }
  void integer(std::int64_t v) {
    comma();
    text += std::to_string(v);
    first_ = false;
  }
  void boolean(bool v) {
    comma();
    text += v ? "true" : "false";
    first_ = false;
  }

 private:
  void comma() {
    if (pending_value_) {
      pending_value_ = false;
      return;
    }
    if (!first_) text += ',';
  }
  bool first_ = true;
  bool pending_value_ = false;
};

void feature(JsonOut& j, const FeatureDrift& f, bool counts) {
  j.open('{');
  j.key("name");
  j.string(f.name);
  j.key("kind");
  j.string(f.kind == FeatureKind::numeric ? "numeric" : "categorical");
  j.key("test");
  j.string(f.test);
  j.key("rows");
  j.integer(f.rows);
  j.key("statistic");
  j.number(f.statistic);
  j.key("p_value");
  j.number(f.p_value);
  j.key("psi");
  j.number(f.psi);
  j.key("psi_level");
  j.string(psi_level_name(f.psi_level));
  j.key("drifted");
  j.boolean(f.drifted);
  j.key("nonfinite");
  j.integer(f.nonfinite);
  j.key("below_min");
  j.integer(f.below_min);
  j.key("above_max");
  j.integer(f.above_max);
  j.key("unseen_category");
  j.integer(f.unseen_category);
  j.key("live_mean");
  j.number(f.live_mean);
  if (counts) {
    j.key("live_counts");
    j.open('[');
    for (std::uint64_t c : f.live_counts) j.integer(c);
    j.close(']');
  }
  j.close('}');
}

}  // namespace

std::string drift_report_json(const DriftReport& r, bool counts) {
  JsonOut j;
  j.open('{');
  j.key("kind");
  j.string("kiln.drift_snapshot");
  j.key("format");
  j.integer(std::int64_t{snapshot_format_version});
  j.key("model");
  j.string(r.model);
  j.key("model_version");
  j.string(r.model_version);
  j.key("model_hash");
  j.string(r.model_hash);
  j.key("created");
  j.string(r.created);
  j.key("rows_seen");
  j.integer(r.rows_seen);
  j.key("rows_observed");
  j.integer(r.rows_observed);
  j.key("alpha");
  j.number(r.alpha);
  j.key("corrected_alpha");
  j.number(r.corrected_alpha);
  j.key("drifted");
  j.boolean(r.drifted);
  j.key("features_drifted");
  j.integer(r.features_drifted);
  j.key("max_psi");
  j.number(r.max_psi);
  j.key("features");
  j.open('[');
  for (const FeatureDrift& f : r.features) feature(j, f, counts);
  j.close(']');
  j.key("prediction");
  feature(j, r.prediction, counts);
  j.key("labels");
  j.open('{');
  j.key("labelled");
  j.integer(r.labels.labelled);
  j.key("metric");
  j.string(r.labels.metric);
  j.key("live");
  j.number(r.labels.live);
  j.key("reference");
  j.number(r.labels.reference);
  j.key("decayed");
  j.boolean(r.labels.decayed);
  j.key("p_value");
  j.number(r.labels.p_value);
  j.key("sum");
  j.number(r.labels.sum);
  j.key("sum_sq");
  j.number(r.labels.sum_sq);
  j.close('}');
  j.close('}');
  j.text += '\n';
  return j.text;
}

}  // namespace kiln::monitor::internal
