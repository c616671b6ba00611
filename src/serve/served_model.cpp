// The versions of a served model: loading and checking a version, hot reload from a registry
// reference, the feedback log that routes labels to the version that predicted, snapshots.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/mlops/drift.hpp"
#include "serve/serve_internal.hpp"

namespace kiln::serve::detail {
namespace {

/// How a reference is followed: a file and a pinned version never change; an alias and a
/// bare name (the newest version) are resolved again on every check.
enum class Follow : std::uint8_t { file, pinned, alias, latest };

Follow follow_of(const std::string& reference, const registry::Registry* registry) {
  if (registry == nullptr) return Follow::file;
  namespace fs = std::filesystem;
  std::error_code ec;
  // A path (a separator, the .kiln suffix, or a file that exists) is a file even with a
  // registry: registry names have neither separators nor suffixes.
  if (reference.find('/') != std::string::npos || reference.ends_with(".kiln") ||
      fs::is_regular_file(reference, ec))
    return Follow::file;
  if (reference.find('@') != std::string::npos) return Follow::alias;
  if (reference.find(':') != std::string::npos) return Follow::pinned;
  return Follow::latest;
}

void check_name(const std::string& name, const std::string& reference, bool defaulted) {
  if (name.empty()) throw ValueError("serve: model '" + reference + "' has an empty name");
  if (!valid_model_name(name))
    throw ValueError("serve: model name '" + name + "' (of '" + reference +
                     "') may hold only letters, digits, '-', '_' and '.'" +
                     (defaulted ? "; give it a name (NAME=" + reference + ")" : ""));
}

std::string dims_without_batch(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.rank(); ++i) {
    if (i > 0) out += ", ";
    out += i == 0 ? std::string("batch") : std::to_string(s[i]);
  }
  return out + "]";
}

bool same_but_batch(const Shape& a, const Shape& b) {
  if (a.rank() != b.rank()) return false;
  for (std::size_t i = 1; i < a.rank(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

/// The first difference between two signatures ("" when none).
std::string signature_difference(const char* what, const std::vector<TensorSpec>& serving,
                                 const std::vector<TensorSpec>& candidate, bool shapes) {
  const std::string w(what);
  if (serving.size() != candidate.size())
    return std::to_string(candidate.size()) + " " + w + "s instead of " +
           std::to_string(serving.size());
  for (std::size_t i = 0; i < serving.size(); ++i) {
    const TensorSpec& s = serving[i];
    const TensorSpec& c = candidate[i];
    if (s.name != c.name)
      return w + " " + std::to_string(i) + " is named '" + c.name + "' instead of '" + s.name + "'";
    if (s.dtype != c.dtype)
      return w + " '" + s.name + "' has dtype " + std::string(to_string(c.dtype)) + " instead of " +
             std::string(to_string(s.dtype));
    if (shapes && !same_but_batch(s.shape, c.shape))
      return w + " '" + s.name + "' has shape " + dims_without_batch(c.shape) + " instead of " +
             dims_without_batch(s.shape);
  }
  return {};
}

std::string sequence_id(const std::string& version, std::uint64_t sequence) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%012llu", static_cast<unsigned long long>(sequence));
  return version + "-" + digits;
}

/// Splits "<version>-<sequence>"; false when it is not of that form.
bool parse_id(const std::string& id, std::string_view& version, std::uint64_t& sequence) {
  const std::size_t dash = id.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == id.size()) return false;
  const char* first = id.data() + dash + 1;
  const char* last = id.data() + id.size();
  const auto [end, ec] = std::from_chars(first, last, sequence);
  if (ec != std::errc{} || end != last) return false;
  version = std::string_view(id).substr(0, dash);
  return true;
}

}  // namespace

namespace {

/// load_version, continuing `earlier` (the monitor of an earlier load of the same version)
/// when it has the same profile.
std::shared_ptr<const LoadedVersion> load_version_continuing(
    const std::string& path, std::string version, const ServerOptions& options,
    std::shared_ptr<monitor::Monitor> earlier) {
  infer::LoadOptions load_options;
  load_options.apply_preprocessing = true;  // requests carry raw values
  // One compiled plan per batch size: keep one for every size a batch can have, or batches
  // of varying sizes evict each other's plans and every batch compiles again.
  if (options.batching.enabled)
    load_options.plan_cache_size = std::max<std::size_t>(
        load_options.plan_cache_size,
        static_cast<std::size_t>(std::max<std::int64_t>(1, options.batching.max_batch_size)));
  auto loaded =
      std::make_shared<LoadedVersion>(LoadedVersion{.model = infer::Model::load(path, load_options),
                                                    .version = std::move(version),
                                                    .hash = {},
                                                    .path = path,
                                                    .monitor = nullptr,
                                                    .loaded_at = Clock::now()});
  loaded->hash = loaded->model.content_hash();
  if (loaded->model.has_section(monitor::profile_section)) {
    monitor::MonitorOptions monitor_options = options.monitor;
    monitor_options.inputs_preprocessed = false;  // the server is given raw rows
    try {
      if (earlier && earlier->profile() == monitor::Profile::from_model(loaded->model))
        loaded->monitor = std::move(earlier);
      else
        loaded->monitor = std::make_shared<monitor::Monitor>(loaded->model, monitor_options);
    } catch (const Error& e) {
      throw FormatError(path + ": its drift profile cannot be used: " + e.what());
    }
  }
  return loaded;
}

/// A whole number in [0, 2^53): a class index that converts to int64 exactly.
bool is_class_index(double v) { return v >= 0 && v < 9007199254740992.0 && v == std::floor(v); }

}  // namespace

std::shared_ptr<const LoadedVersion> load_version(const std::string& path, std::string version,
                                                  const ServerOptions& options) {
  return load_version_continuing(path, std::move(version), options, nullptr);
}

std::string incompatibility(const LoadedVersion& serving, const LoadedVersion& candidate) {
  std::string why = signature_difference("input", serving.model.inputs(), candidate.model.inputs(),
                                         /*shapes=*/true);
  if (why.empty())
    why = signature_difference("output", serving.model.outputs(), candidate.model.outputs(),
                               /*shapes=*/true);
  const std::size_t s = serving.model.metadata().labels.size();
  const std::size_t c = candidate.model.metadata().labels.size();
  if (why.empty() && s != c)
    why = std::to_string(c) + " class labels instead of " + std::to_string(s);
  if (why.empty()) return {};
  return "version " + candidate.version + " is incompatible with version " + serving.version +
         ": " + why;
}

struct ServedModel::State {
  ModelSource source;
  const registry::Registry* registry = nullptr;
  ServerOptions options;
  Follow follow = Follow::file;

  mutable std::mutex current_mutex;  // guards `current` only (held for a pointer copy)
  std::shared_ptr<const LoadedVersion> current;

  // One check at a time. What follows is written by checks only, under reload_mutex and
  // status_mutex; status() reads it under status_mutex alone (not blocked by a slow load).
  std::mutex reload_mutex;
  mutable std::mutex status_mutex;
  std::string refused_hash;    // the content hash refused last (not tried again)
  std::string refused_why;     // "" when the reference names the serving version
  std::string registry_error;  // the message of the last resolve, "" when it worked
  std::int64_t reloads = 0, refused = 0;

  struct Remembered {
    std::uint64_t sequence = 0;  // 0: empty slot
    std::string version;
    std::shared_ptr<monitor::Monitor> monitor;
    bool classes = false;
    double predicted = 0;
  };
  std::mutex feedback_mutex;
  std::vector<Remembered> ring;  // grows up to feedback_capacity, then wraps
  std::uint64_t next_sequence = 1;
  /// The monitors of the versions served before (by version): labels for their rows keep
  /// arriving, and write_snapshot rewrites the files of those that got some (`dirty`). A
  /// version that serves again (a rollback to it) continues its monitor: one monitor per
  /// version for the life of the process, so its snapshot never goes backwards, and rows
  /// and labels still arriving for an earlier load of it count in the same place.
  std::map<std::string, std::shared_ptr<monitor::Monitor>> retired;  // by feedback_mutex
  std::set<std::string> dirty;                                       // by feedback_mutex

  void publish(std::shared_ptr<const LoadedVersion> v) {
    std::lock_guard lock(current_mutex);
    current = std::move(v);
  }
  std::shared_ptr<const LoadedVersion> get() const {
    std::lock_guard lock(current_mutex);
    return current;
  }
  void refuse(const std::string& hash, const std::string& why) {
    std::lock_guard lock(status_mutex);
    refused_hash = hash;
    refused_why = why;
    ++refused;
  }
  /// The reference names `hash` again (or still): nothing is refused.
  void accept(bool switched) {
    std::lock_guard lock(status_mutex);
    refused_hash.clear();
    refused_why.clear();
    reloads += switched ? 1 : 0;
  }
};

namespace {

/// "digits:3" for the version a reference resolved to.
std::string pinned_reference(const registry::Version& v) {
  return v.name + ":" + std::to_string(v.version);
}

}  // namespace

ServedModel::ServedModel(ModelSource source, const registry::Registry* registry,
                         const ServerOptions& options)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.registry = registry;
  s.options = options;
  s.follow = follow_of(source.reference, registry);
  const bool defaulted = source.name.empty();
  if (s.follow == Follow::file) {
    s.current = load_version(source.reference, "file", options);
    if (source.name.empty()) source.name = std::filesystem::path(source.reference).stem().string();
  } else {
    const registry::Version v = registry->resolve(source.reference);
    s.current = load_version(registry->verified_path(pinned_reference(v)),
                             std::to_string(v.version), options);
    if (s.current->hash != v.hash)
      throw FormatError("serve: " + s.current->path + " has content hash " + s.current->hash +
                        " but the registry says " + v.hash);
    if (source.name.empty()) source.name = v.name;
  }
  check_name(source.name, source.reference, defaulted);
  s.source = std::move(source);
}

const std::string& ServedModel::name() const { return state_->source.name; }
const ModelSource& ServedModel::source() const { return state_->source; }
std::shared_ptr<const LoadedVersion> ServedModel::current() const { return state_->get(); }

bool ServedModel::check_for_update() {
  State& s = *state_;
  if (s.follow == Follow::file || s.follow == Follow::pinned) return false;
  std::lock_guard lock(s.reload_mutex);
  registry::Version target;
  try {
    target = s.registry->resolve(s.source.reference);
  } catch (const std::exception& e) {
    // The registry cannot be read or no longer has the reference: keep serving; count each
    // new message once (not every poll).
    const std::string why = std::string("registry: ") + e.what();
    std::lock_guard status_lock(s.status_mutex);
    if (why != s.registry_error) {
      s.registry_error = why;
      ++s.refused;
    }
    return false;
  }
  {
    std::lock_guard status_lock(s.status_mutex);
    s.registry_error.clear();
  }
  const std::shared_ptr<const LoadedVersion> serving = s.get();
  if (target.hash == serving->hash) {
    // Back at (or still at) the serving version: a later move to a refused hash is a new
    // move and is tried again.
    s.accept(false);
    return false;
  }
  if (target.hash == s.refused_hash) return false;  // refused already; not retried each poll

  std::shared_ptr<monitor::Monitor> earlier;
  {
    std::lock_guard feedback_lock(s.feedback_mutex);
    if (const auto it = s.retired.find(std::to_string(target.version)); it != s.retired.end())
      earlier = it->second;
  }
  std::shared_ptr<const LoadedVersion> candidate;
  try {
    candidate = load_version_continuing(s.registry->verified_path(pinned_reference(target)),
                                        std::to_string(target.version), s.options, earlier);
  } catch (const std::exception& e) {
    s.refuse(target.hash, "version " + std::to_string(target.version) + ": " + e.what());
    return false;
  }
  if (candidate->hash != target.hash) {
    s.refuse(target.hash, "version " + std::to_string(target.version) + ": " + candidate->path +
                              " has content hash " + candidate->hash + " but the registry says " +
                              target.hash);
    return false;
  }
  if (const std::string why = incompatibility(*serving, *candidate); !why.empty()) {
    s.refuse(target.hash, why);
    return false;
  }
  s.publish(candidate);
  s.accept(true);
  {
    std::lock_guard feedback_lock(s.feedback_mutex);
    s.retired.erase(candidate->version);
    s.dirty.erase(candidate->version);
    if (serving->monitor) s.retired[serving->version] = serving->monitor;
  }
  // The replaced version's last counts, so that nothing it saw is lost between the periodic
  // snapshots (requests still running on it after this are not in it). Best effort: the
  // switch does not depend on the disk.
  if (!s.options.snapshot_dir.empty() && serving->monitor) {
    try {
      serving->monitor->write_snapshot((std::filesystem::path(s.options.snapshot_dir) /
                                        (s.source.name + "-v" + serving->version + ".json"))
                                           .string());
    } catch (const std::exception&) {
    }
  }
  return true;
}

ModelStatus ServedModel::status() const {
  const State& s = *state_;
  const std::shared_ptr<const LoadedVersion> v = s.get();
  std::lock_guard lock(s.status_mutex);
  const std::string& why = !s.registry_error.empty() ? s.registry_error : s.refused_why;
  return ModelStatus{.name = s.source.name,
                     .reference = s.source.reference,
                     .version = v->version,
                     .hash = v->hash,
                     .state = why.empty() ? "serving" : "serving (reload refused: " + why + ")",
                     .reloads = s.reloads,
                     .refused_reloads = s.refused};
}

std::vector<std::string> ServedModel::remember(const std::shared_ptr<const LoadedVersion>& version,
                                               std::span<const double> predicted) {
  State& s = *state_;
  const bool classes =
      version->monitor && version->monitor->profile().predicted != monitor::PredictionKind::none
          ? version->monitor->profile().predicted == monitor::PredictionKind::classes
          : !version->model.metadata().labels.empty();
  const std::size_t capacity = s.options.feedback_capacity;
  std::vector<std::string> ids;
  ids.reserve(predicted.size());
  std::lock_guard lock(s.feedback_mutex);
  for (const double p : predicted) {
    const std::uint64_t sequence = s.next_sequence++;
    ids.push_back(sequence_id(version->version, sequence));
    if (capacity == 0) continue;
    State::Remembered r{.sequence = sequence,
                        .version = version->version,
                        .monitor = version->monitor,
                        .classes = classes,
                        .predicted = p};
    const std::size_t slot = static_cast<std::size_t>((sequence - 1) % capacity);
    if (slot == s.ring.size())
      s.ring.push_back(std::move(r));
    else
      s.ring[slot] = std::move(r);
  }
  return ids;
}

std::int64_t ServedModel::feedback(std::span<const std::string> ids, std::span<const double> labels,
                                   std::vector<std::string>& unknown) {
  if (ids.size() != labels.size())
    throw RequestError(
        400, "bad_request",
        std::to_string(ids.size()) + " ids but " + std::to_string(labels.size()) + " labels");
  State& s = *state_;
  // Per monitor: the predictions and labels it gets (one observe_labels call each).
  struct Batch {
    bool classes = false;
    std::string version;
    std::vector<std::int64_t> predicted_classes, label_classes;
    std::vector<double> predicted_values, label_values;
  };
  std::unordered_map<std::shared_ptr<monitor::Monitor>, Batch> batches;
  std::int64_t found = 0;
  // One lock for the lookup, the observation and the dirty marks: a snapshot taken at the
  // same time either has these labels or is followed by another that has.
  std::lock_guard lock(s.feedback_mutex);
  {
    const std::size_t capacity = s.options.feedback_capacity;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      std::string_view version;
      std::uint64_t sequence = 0;
      const State::Remembered* r = nullptr;
      if (capacity > 0 && parse_id(ids[i], version, sequence) && sequence > 0) {
        const std::size_t slot = static_cast<std::size_t>((sequence - 1) % capacity);
        if (slot < s.ring.size() && s.ring[slot].sequence == sequence &&
            s.ring[slot].version == version)
          r = &s.ring[slot];
      }
      if (r == nullptr) {
        unknown.push_back(ids[i]);
        continue;
      }
      const double label = labels[i];
      if (!std::isfinite(label) || (r->classes && !is_class_index(label)))
        throw RequestError(
            400, "bad_request",
            "label " + std::to_string(i) + " (for id '" + ids[i] + "') is not a class index");
      ++found;
      if (!r->monitor) continue;  // no profile: nothing is monitored
      Batch& b = batches[r->monitor];
      b.classes = r->classes;
      b.version = r->version;
      if (r->classes) {
        // A prediction that is not a class (a NaN from an empty output) matches no label.
        b.predicted_classes.push_back(
            is_class_index(r->predicted) ? static_cast<std::int64_t>(r->predicted) : -1);
        b.label_classes.push_back(static_cast<std::int64_t>(label));
      } else {
        b.predicted_values.push_back(r->predicted);
        b.label_values.push_back(label);
      }
    }
  }
  for (auto& [monitor, b] : batches) {
    if (b.classes)
      monitor->observe_labels(std::span<const std::int64_t>(b.predicted_classes),
                              std::span<const std::int64_t>(b.label_classes));
    else
      monitor->observe_labels(std::span<const double>(b.predicted_values),
                              std::span<const double>(b.label_values));
  }
  for (const auto& [monitor, b] : batches)
    if (const auto it = s.retired.find(b.version); it != s.retired.end() && it->second == monitor)
      s.dirty.insert(b.version);
  return found;
}

void ServedModel::write_snapshot(const std::string& dir) const {
  State& s = *state_;
  const std::filesystem::path folder(dir);
  const std::shared_ptr<const LoadedVersion> v = current();
  if (v->monitor) {
    // One report, written twice (each atomically): DIR/<name>-v<version>.json, and the same
    // counts under a name that does not change with the version, DIR/<name>.json, which a
    // CT pipeline's drift trigger can point at (it applies only while the hash is
    // production's).
    const std::string json = mlops::drift_json(v->monitor->report(), /*counts=*/true);
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(json.data()), json.size());
    internal::write_file_atomically((folder / (name() + "-v" + v->version + ".json")).string(),
                                    bytes);
    internal::write_file_atomically((folder / (name() + ".json")).string(), bytes);
  }

  // Replaced versions that were given labels since their last snapshot (the labels of a
  // prediction often arrive after the version that made it was replaced).
  std::vector<std::pair<std::string, std::shared_ptr<monitor::Monitor>>> labelled;
  {
    std::lock_guard lock(s.feedback_mutex);
    for (const std::string& version : s.dirty)
      if (const auto it = s.retired.find(version); it != s.retired.end())
        labelled.emplace_back(version, it->second);
    s.dirty.clear();
  }
  for (std::size_t i = 0; i < labelled.size(); ++i) {
    try {
      labelled[i].second->write_snapshot(
          (folder / (name() + "-v" + labelled[i].first + ".json")).string());
    } catch (...) {
      std::lock_guard lock(s.feedback_mutex);  // written next time
      for (std::size_t j = i; j < labelled.size(); ++j) s.dirty.insert(labelled[j].first);
      throw;
    }
  }
}

}  // namespace kiln::serve::detail
