// kiln::serve::ModelServer (kiln/serve/server.hpp): the routes of docs/serving.md over the
// parts of serve_internal.hpp, the alias watcher, the snapshot writer and the shutdown.
//
// Shutdown order: ready() turns false and new :predict / :feedback requests are answered
// 503 shutting_down; the requests already admitted finish submitting (parsing is bounded
// by max_body_bytes), then Batcher::drain runs everything queued at once and joins its
// workers, so every admitted request gets its answer; then the watcher and snapshot threads
// are woken and joined and the final snapshots are written.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/serve/server.hpp"
#include "serve/serve_internal.hpp"

namespace kiln::serve {
namespace {

using json = nlohmann::json;
using detail::Clock;
using detail::RequestError;

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

json signature_json(const std::vector<TensorSpec>& specs) {
  json list = json::array();
  for (const TensorSpec& s : specs) {
    json dims = json::array();
    for (std::size_t i = 0; i < s.shape.rank(); ++i) {
      // The first dimension is the batch, whatever the file recorded for it.
      dims.push_back(i == 0 ? std::int64_t{-1} : s.shape[i]);
    }
    list.push_back({{"name", s.name}, {"dtype", std::string(to_string(s.dtype))}, {"shape", dims}});
  }
  return list;
}

json status_json(const ModelStatus& s) {
  return {{"name", s.name},
          {"reference", s.reference},
          {"version", s.version},
          {"hash", s.hash},
          {"state", s.state},
          {"reloads", s.reloads},
          {"refused_reloads", s.refused_reloads}};
}

/// A route's path split: "/v1/models/digits:predict" -> name "digits", verb "predict".
struct ModelPath {
  std::string name;
  std::string verb;  ///< "" for GET /v1/models/<name>
};

std::optional<ModelPath> model_path(std::string_view path) {
  constexpr std::string_view prefix = "/v1/models/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = path.substr(prefix.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos) return std::nullopt;
  const auto colon = rest.find(':');
  if (colon == std::string_view::npos) return ModelPath{std::string(rest), {}};
  return ModelPath{std::string(rest.substr(0, colon)), std::string(rest.substr(colon + 1))};
}

/// A short, printable excerpt of something a client sent, for messages.
std::string shown(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > 64) out += "...";
  return out;
}

void method_allowed(std::string_view method, std::string_view allowed, std::string_view path) {
  if (method == allowed || (allowed == "GET" && method == "HEAD")) return;
  throw RequestError(405, "method_not_allowed",
                     std::string(path.substr(0, 200)) + " answers " + std::string(allowed) +
                         ", not " + shown(method));
}

}  // namespace

bool valid_model_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

struct ModelServer::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  ServerOptions options;
  std::optional<registry::Registry> registry;
  std::vector<std::unique_ptr<detail::ServedModel>> models;
  detail::Metrics metrics;
  std::unique_ptr<detail::Batcher> batcher;

  // Admission: handle() of :predict / :feedback counts itself in `admitted` while it has
  // not yet handed its rows to the batcher; shutdown waits for zero before draining.
  mutable std::mutex mutex;
  std::condition_variable cv;
  bool accepting = true;
  bool stopping = false;  // wakes the watcher and the snapshot writer
  bool shut_down = false;
  std::int64_t admitted = 0;
  /// :predict and :feedback requests between their arrival and their answer (/metrics:
  /// kiln_requests_in_flight).
  std::atomic<std::int64_t> in_flight{0};

  std::mutex reload_mutex;  // one alias check at a time (the watcher and reload_now)
  std::mutex shutdown_mutex;
  std::thread watcher;
  std::thread snapshotter;

  detail::ServedModel* find(std::string_view name) const {
    for (const auto& m : models) {
      if (m->name() == name) return m.get();
    }
    return nullptr;
  }

  std::vector<const detail::ServedModel*> model_list() const {
    std::vector<const detail::ServedModel*> list;
    for (const auto& m : models) list.push_back(m.get());
    return list;
  }

  std::int64_t check_aliases() {
    std::lock_guard lock(reload_mutex);
    std::int64_t switched = 0;
    for (const auto& m : models) {
      const std::int64_t refused_before = m->status().refused_reloads;
      bool moved = false;
      try {
        moved = m->check_for_update();
      } catch (const std::exception& e) {
        // check_for_update refuses bad versions itself; anything else (the registry being
        // unreadable for a moment) is tried again at the next poll.
        std::fprintf(stderr, "kiln serve: checking %s failed: %s\n", m->name().c_str(), e.what());
        continue;
      }
      if (moved) {
        ++switched;
        metrics.reload(m->name(), true);
      } else if (m->status().refused_reloads > refused_before) {
        metrics.reload(m->name(), false);
      }
    }
    return switched;
  }

  void write_snapshots() {
    for (const auto& m : models) {
      try {
        m->write_snapshot(options.snapshot_dir);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "kiln serve: snapshot of %s failed: %s\n", m->name().c_str(),
                     e.what());
      }
    }
  }

  /// Runs `work` every `interval` until stopping (woken at once by shutdown).
  template <class Work>
  void every(std::chrono::milliseconds interval, Work work) {
    std::unique_lock lock(mutex);
    for (;;) {
      if (cv.wait_for(lock, interval, [this] { return stopping; })) return;
      lock.unlock();
      work();
      lock.lock();
    }
  }

  /// Counts a :predict / :feedback request in, or refuses it while shutting down.
  void admit() {
    std::lock_guard lock(mutex);
    if (!accepting) throw RequestError(503, "shutting_down", "the server is shutting down");
    ++admitted;
  }
  void release() {
    std::lock_guard lock(mutex);
    if (--admitted == 0) cv.notify_all();
  }

  /// Holds an admission until the request has submitted (or failed before).
  class Admission {
   public:
    explicit Admission(Impl& impl) : impl_(impl) { impl_.admit(); }
    ~Admission() { done(); }
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;
    void done() {
      if (!released_) impl_.release();
      released_ = true;
    }

   private:
    Impl& impl_;
    bool released_ = false;
  };

  Response route(std::string_view method, std::string_view path, std::string_view body,
                 std::string& model_label, std::string& route_label);
  Response predict(detail::ServedModel& model, std::string_view body);
  Response feedback(detail::ServedModel& model, std::string_view body);
  Response model_detail(const detail::ServedModel& model) const;
};

ModelServer::ModelServer(ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  const ServerOptions& o = impl_->options;
  if (o.models.empty()) throw ValueError("kiln serve: no model to serve");
  if (o.workers < 1) throw ValueError("kiln serve: workers must be at least 1");
  if (o.max_rows < 1) throw ValueError("kiln serve: max_rows must be at least 1");
  if (o.max_queue < 1) throw ValueError("kiln serve: max_queue must be at least 1");
  if (o.batching.max_batch_size < 1) throw ValueError("kiln serve: max_batch_size must be >= 1");
  if (o.request_timeout.count() <= 0) throw ValueError("kiln serve: request_timeout must be > 0");
  if (o.reload_interval.count() < 0) throw ValueError("kiln serve: reload_interval must be >= 0");
  if (!o.snapshot_dir.empty() && o.snapshot_interval.count() <= 0) {
    throw ValueError("kiln serve: snapshot_interval must be > 0");
  }
  for (const ModelSource& m : o.models) {
    if (!m.name.empty() && !valid_model_name(m.name)) {
      throw ValueError("kiln serve: model name \"" + m.name +
                       "\" may only hold letters, digits, '-', '_' and '.'");
    }
  }
  if (!o.registry_dir.empty()) impl_->registry.emplace(registry::open(o.registry_dir));
  if (!o.snapshot_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.snapshot_dir, ec);
    if (ec) throw IoError(o.snapshot_dir + ": cannot create the snapshot folder: " + ec.message());
  }

  std::set<std::string> names;
  for (const ModelSource& source : o.models) {
    auto model = std::make_unique<detail::ServedModel>(
        source, impl_->registry ? &*impl_->registry : nullptr, impl_->options);
    if (!names.insert(model->name()).second) {
      throw ValueError("kiln serve: two models are named \"" + model->name() +
                       "\": name them NAME=REFERENCE");
    }
    impl_->models.push_back(std::move(model));
  }

  impl_->batcher = std::make_unique<detail::Batcher>(impl_->options, impl_->metrics);
  Impl& impl = *impl_;
  if (o.reload_interval.count() > 0 && impl.registry) {
    impl.watcher = std::thread(
        [&impl] { impl.every(impl.options.reload_interval, [&impl] { impl.check_aliases(); }); });
  }
  if (!o.snapshot_dir.empty()) {
    impl.snapshotter = std::thread([&impl] {
      impl.every(impl.options.snapshot_interval, [&impl] { impl.write_snapshots(); });
    });
  }
}

ModelServer::~ModelServer() { shutdown(); }

const ServerOptions& ModelServer::options() const { return impl_->options; }

bool ModelServer::ready() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->accepting;
}

std::vector<ModelStatus> ModelServer::models() const {
  std::vector<ModelStatus> list;
  for (const auto& m : impl_->models) list.push_back(m->status());
  return list;
}

std::int64_t ModelServer::reload_now() { return impl_->check_aliases(); }

void ModelServer::shutdown() {
  Impl& impl = *impl_;
  std::lock_guard once(impl.shutdown_mutex);
  if (impl.shut_down) return;
  {
    std::unique_lock lock(impl.mutex);
    impl.accepting = false;
    impl.cv.wait(lock, [&impl] { return impl.admitted == 0; });
    impl.stopping = true;
  }
  impl.cv.notify_all();
  impl.batcher->drain();
  if (impl.watcher.joinable()) impl.watcher.join();
  if (impl.snapshotter.joinable()) impl.snapshotter.join();
  if (!impl.options.snapshot_dir.empty()) impl.write_snapshots();
  impl.shut_down = true;
}

Response ModelServer::handle(std::string_view method, std::string_view path,
                             std::string_view body) {
  const auto start = Clock::now();
  std::string model_label;
  std::string route_label = "other";
  Response response;
  try {
    try {
      response = impl_->route(method, path, body, model_label, route_label);
    } catch (const RequestError& e) {
      response = detail::error_response(e);
    } catch (const std::bad_alloc&) {
      response = detail::error_response(RequestError(500, "out_of_memory", "out of memory"));
    } catch (const std::exception& e) {
      response = detail::error_response(RequestError(500, "internal", e.what()));
    } catch (...) {
      response = detail::error_response(RequestError(500, "internal", "unknown error"));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    impl_->metrics.request(model_label, route_label, response.status, seconds);
  } catch (...) {
    // Out of memory while answering an error: the shortest answer there is.
    response.status = 500;
    response.content_type = "application/json";
    response.body = R"({"error":{"code":"internal","message":"out of memory"}})";
    response.headers.clear();
  }
  return response;
}

Response ModelServer::Impl::route(std::string_view method, std::string_view path,
                                  std::string_view body, std::string& model_label,
                                  std::string& route_label) {
  if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (body.size() > options.max_body_bytes) {
    throw RequestError(413, "too_large",
                       "the body has " + std::to_string(body.size()) + " bytes; the limit is " +
                           std::to_string(options.max_body_bytes) + " (max_body_bytes)");
  }

  if (path == "/healthz") {
    route_label = "health";
    method_allowed(method, "GET", path);
    return json_response(200, {{"status", "ok"}});
  }
  if (path == "/readyz") {
    route_label = "health";
    method_allowed(method, "GET", path);
    std::lock_guard lock(mutex);
    if (!accepting) throw RequestError(503, "shutting_down", "the server is shutting down");
    return json_response(200, {{"status", "ready"}});
  }
  if (path == "/metrics") {
    route_label = "metrics";
    method_allowed(method, "GET", path);
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics.prometheus(model_list(), batcher->queued());
    r.body +=
        "# HELP kiln_requests_in_flight Predict and feedback requests being answered.\n"
        "# TYPE kiln_requests_in_flight gauge\n"
        "kiln_requests_in_flight " +
        std::to_string(in_flight.load()) + "\n";
    return r;
  }
  if (path == "/v1/models" || path == "/v1/models/") {
    route_label = "models";
    method_allowed(method, "GET", path);
    json list = json::array();
    for (const auto& m : models) list.push_back(status_json(m->status()));
    return json_response(200, {{"models", list}});
  }
  const std::optional<ModelPath> route = model_path(path);
  if (!route) {
    throw RequestError(404, "not_found",
                       "no route " + shown(path) +
                           " (see /v1/models, /v1/models/<name>:predict, /healthz, /metrics)");
  }
  route_label = route->verb.empty() ? "models" : route->verb;
  if (!route->verb.empty() && route->verb != "predict" && route->verb != "feedback") {
    route_label = "other";
    throw RequestError(404, "not_found",
                       "no route " + shown(path) + ": the verbs are :predict and :feedback");
  }
  detail::ServedModel* model = find(route->name);
  if (model == nullptr) {
    std::string known;
    for (const auto& m : models) known += (known.empty() ? "" : ", ") + m->name();
    throw RequestError(404, "unknown_model",
                       "no model named \"" + shown(route->name) + "\" (serving: " + known + ")");
  }
  model_label = model->name();
  if (route->verb.empty()) {
    method_allowed(method, "GET", path);
    return model_detail(*model);
  }
  method_allowed(method, "POST", path);
  struct InFlight {
    std::atomic<std::int64_t>& n;
    explicit InFlight(std::atomic<std::int64_t>& count) : n(count) { ++n; }
    ~InFlight() { --n; }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
  } counted(in_flight);
  return route->verb == "predict" ? predict(*model, body) : feedback(*model, body);
}

Response ModelServer::Impl::predict(detail::ServedModel& model, std::string_view body) {
  // Errors name the version the request was checked against.
  std::shared_ptr<const detail::LoadedVersion> version = model.current();
  try {
    Admission admission(*this);
    detail::PredictRequest request = detail::parse_predict(body, version->model, options);
    const auto deadline = Clock::now() + options.request_timeout;
    std::future<detail::BatchResult> future = batcher->submit(model, std::move(request), deadline);
    admission.done();
    if (future.wait_until(deadline) != std::future_status::ready) {
      throw RequestError(504, "timeout",
                         "no answer within " + std::to_string(options.request_timeout.count()) +
                             " ms (request_timeout)");
    }
    detail::BatchResult result = future.get();
    version = result.version;
    const std::vector<double> predicted = detail::predicted_values(*version, result.outputs);
    const std::vector<std::string> ids = model.remember(version, predicted);
    Response r;
    r.body = detail::format_predict(model.name(), *version, result.outputs, ids);
    r.headers.emplace_back("X-Kiln-Model-Version", version->version);
    return r;
  } catch (const RequestError& e) {
    Response r = detail::error_response(e);
    json answer = json::parse(r.body, nullptr, false);
    if (answer.is_object()) {
      answer["model"] = model.name();
      answer["version"] = version->version;
      r.body = answer.dump();
    }
    r.headers.emplace_back("X-Kiln-Model-Version", version->version);
    return r;
  }
}

Response ModelServer::Impl::feedback(detail::ServedModel& model, std::string_view body) {
  Admission admission(*this);
  const std::shared_ptr<const detail::LoadedVersion> version = model.current();
  const detail::FeedbackRequest request = detail::parse_feedback(body, version->model, options);
  std::vector<std::string> unknown;
  const std::int64_t matched = model.feedback(request.ids, request.labels, unknown);
  json unknown_ids = json::array();
  for (std::size_t i = 0; i < unknown.size() && i < 100; ++i) unknown_ids.push_back(unknown[i]);
  return json_response(200, {{"model", model.name()},
                             {"matched", matched},
                             {"unknown", static_cast<std::int64_t>(unknown.size())},
                             {"unknown_ids", unknown_ids}});
}

Response ModelServer::Impl::model_detail(const detail::ServedModel& model) const {
  const std::shared_ptr<const detail::LoadedVersion> v = model.current();
  const ModelStatus s = model.status();
  const ModelMetadata& meta = v->model.metadata();
  json metrics_json = json::object();
  for (const auto& [name, value] : meta.metrics) metrics_json[name] = value;
  json extra = json::object();
  for (const auto& [key, value] : meta.extra) extra[key] = value;
  json answer = status_json(s);
  answer["version"] = v->version;
  answer["hash"] = v->hash;
  answer["inputs"] = signature_json(v->model.inputs());
  answer["outputs"] = signature_json(v->model.outputs());
  answer["metadata"] = {{"name", meta.name},
                        {"semver", meta.version},
                        {"description", meta.description},
                        {"labels", meta.labels},
                        {"metrics", metrics_json},
                        {"extra", extra},
                        {"created", meta.created},
                        {"library_version", meta.library_version}};
  answer["monitor"] = v->monitor != nullptr;
  return json_response(200, answer);
}

}  // namespace kiln::serve
