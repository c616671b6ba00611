// Internal (libkiln only: nlohmann is private to it): the strict JSON object reader of the
// spec files (src/train/spec_json.cpp) and the pipeline files (src/mlops/pipeline_spec.cpp).
// Every key read is marked; finish() rejects the rest, naming the file and JSON path.
#pragma once

#include <set>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace kiln::internal {

/// A JSON value for an error message: its compact text, cut to 40 characters.
inline std::string describe(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

/// A JSON object being read at `path` of `source`; errors throw `Error` (a kiln::Error)
/// with the message "<source>: <path>: <what>". The readers of each file format derive from
/// it and add their typed getters.
template <class Error>
class JsonReader {
 public:
  using json = nlohmann::json;

  JsonReader(const json& j, std::string path, const std::string& source)
      : j_(j), path_(std::move(path)), source_(source) {
    if (!j_.is_object()) fail(path_, "expected an object, got " + describe(j_));
  }

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(source_ + ": " + (path.empty() ? "" : path + ": ") + what);
  }
  /// The JSON path of `key` in this object.
  std::string at(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  /// Marks `key` read; its value, or nullptr when absent.
  const json* get(const std::string& key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  bool has(const std::string& key) const { return j_.contains(key); }
  const json& required(const std::string& key) {
    const json* v = get(key);
    if (!v) fail(path_, "missing \"" + key + "\"");
    return *v;
  }
  void boolean(const std::string& key, bool& out) {
    if (const json* v = get(key)) {
      if (!v->is_boolean()) fail(at(key), "expected true or false, got " + describe(*v));
      out = v->get<bool>();
    }
  }
  /// Rejects the keys that were not read.
  void finish() const {
    std::string known;
    for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail(at(it.key()), "unknown key (known here: " + known + ")");
  }
  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }

 private:
  const json& j_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> seen_;
};

}  // namespace kiln::internal
