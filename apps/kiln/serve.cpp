// kiln serve: kiln::serve::ModelServer (kiln/serve/server.hpp) behind HTTP (cpp-httplib).
// Every request, whatever its method and path, goes to ModelServer::handle; this file adds
// only the transport: the listening socket (127.0.0.1 unless --host says otherwise), the
// limits a socket needs (body size, read and write timeouts, keep-alive, a bounded pool of
// connection threads), JSON answers for what httplib refuses itself (413, 400) and the
// graceful stop on SIGTERM or SIGINT. docs/serving.md "The command" and "Limits and hostile
// clients" describe it.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/serve/server.hpp"

namespace kiln_cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// httplib's pool of connection threads with a bound on the connections waiting for one:
/// when `max_waiting` are waiting, the accept loop blocks (new connections stay in the
/// kernel's backlog) instead of the queue growing without end.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(std::size_t threads, std::size_t max_waiting) : max_waiting_(max_waiting) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~BoundedPool() override { shutdown(); }
  BoundedPool(const BoundedPool&) = delete;
  BoundedPool& operator=(const BoundedPool&) = delete;

  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mutex_);
    room_.wait(lock, [this] { return jobs_.size() < max_waiting_ || stopping_; });
    jobs_.push_back(std::move(fn));
    work_.notify_one();
  }

  /// Runs what is queued, then joins the threads.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    work_.notify_all();
    room_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        work_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        room_.notify_one();
      }
      try {
        fn();
      } catch (...) {
        // A connection's failure (httplib catches handler exceptions itself) must not end
        // the thread; the connection is closed by then.
      }
    }
  }

  std::size_t max_waiting_;
  std::mutex mutex_;
  std::condition_variable work_, room_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

/// "[NAME=]FILE" or "[NAME=]REFERENCE" -> a ModelSource; `is_file` says which.
kiln::serve::ModelSource parse_model(const std::string& arg, bool& is_file) {
  kiln::serve::ModelSource source;
  source.reference = arg;
  const auto eq = arg.find('=');
  if (eq != std::string::npos && kiln::serve::valid_model_name(arg.substr(0, eq))) {
    std::error_code ec;
    // A file whose name holds '=' is taken whole.
    if (!fs::is_regular_file(arg, ec)) {
      source.name = arg.substr(0, eq);
      source.reference = arg.substr(eq + 1);
    }
  }
  if (source.reference.empty())
    throw kiln::ValueError("kiln serve: \"" + arg + "\" names no model");
  std::error_code ec;
  is_file = fs::is_regular_file(source.reference, ec);
  return source;
}

/// The registry folder for references: --registry, $KILN_REGISTRY, else ./models if it is
/// a folder; "" when none.
std::string registry_dir(const ServeArgs& args) {
  if (!args.registry.empty()) return args.registry;
  const char* env = std::getenv("KILN_REGISTRY");
  if (env != nullptr && *env != '\0') return env;
  std::error_code ec;
  return fs::is_directory("models", ec) ? "models" : "";
}

kiln::serve::ServerOptions server_options(const ServeArgs& args) {
  kiln::serve::ServerOptions o;
  bool any_reference = false;
  for (const std::string& m : args.models) {
    bool is_file = false;
    o.models.push_back(parse_model(m, is_file));
    if (!is_file) any_reference = true;
  }
  if (any_reference) {
    o.registry_dir = registry_dir(args);
    if (o.registry_dir.empty()) {
      for (const auto& m : o.models) {
        std::error_code ec;
        if (!fs::is_regular_file(m.reference, ec)) {
          throw kiln::IoError("kiln serve: " + m.reference +
                              ": no such file (a registry reference needs --registry DIR or "
                              "$KILN_REGISTRY)");
        }
      }
    }
  }
  o.batching.enabled = !args.no_batching;
  o.batching.max_batch_size = args.max_batch;
  o.batching.max_delay = std::chrono::microseconds(args.max_delay_us);
  o.workers = args.workers;
  o.max_queue = static_cast<std::size_t>(args.max_queue);
  o.max_rows = args.max_rows;
  o.max_body_bytes = static_cast<std::size_t>(args.max_body_bytes);
  o.max_json_depth = args.max_json_depth;
  o.request_timeout = std::chrono::milliseconds(args.timeout_ms);
  o.reload_interval = std::chrono::milliseconds(args.reload_ms);
  o.snapshot_dir = args.snapshot_dir;
  o.snapshot_interval = std::chrono::milliseconds(args.snapshot_ms);
  o.feedback_capacity = static_cast<std::size_t>(args.feedback_capacity);
  return o;
}

/// The stable error code of a status httplib answers by itself (before a handler runs).
const char* code_of(int status) {
  switch (status) {
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
    case 414:
    case 431:
      return "too_large";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "bad_request";
  }
}

std::string error_json(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

/// Writes `text` to `path` through a temporary file and a rename: a reader never sees half.
void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw kiln::IoError(tmp + ": cannot write the port file");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw kiln::IoError(path + ": cannot write the port file");
  }
}

std::string describe(const std::vector<kiln::serve::ModelStatus>& models) {
  std::string text;
  for (const auto& m : models) {
    if (!text.empty()) text += ", ";
    text += m.name +
            (m.version == "file" ? " (file " + m.reference + ")" : " (version " + m.version + ")");
  }
  return text;
}

void configure(httplib::Server& http, kiln::serve::ModelServer& server, const ServeArgs& args) {
  const auto handler = [&server](const httplib::Request& req, httplib::Response& res) {
    const kiln::serve::Response r = server.handle(req.method, req.path, req.body);
    res.status = r.status;
    for (const auto& [key, value] : r.headers) res.set_header(key.c_str(), value);
    res.set_content(r.body, r.content_type.c_str());
  };
  // Every method httplib parses reaches handle(), which answers 404 and 405 itself.
  http.Get(".*", handler);
  http.Post(".*", handler);
  http.Put(".*", handler);
  http.Patch(".*", handler);
  http.Delete(".*", handler);
  http.Options(".*", handler);

  // What httplib refuses before a handler runs (a body over the limit, a bad request line
  // or header) gets the same JSON error form.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = "the request is malformed (HTTP " + std::to_string(res.status) + ")";
        if (res.status == 413) message = "the request body is larger than --max-body-bytes";
        if (res.status == 414) message = "the request line is too long";
        res.set_content(error_json(code_of(res.status), message), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string message = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          message = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(error_json("internal", message), "application/json");
      });

  // Runs after the headers, before the body is read: a chunked body (whose size httplib
  // 0.11 does not bound) is refused. A body whose Content-Length passes the limit is read
  // and dropped by httplib (memory stays bounded), then answered 413.
  const auto max_body = static_cast<std::size_t>(args.max_body_bytes);
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("Transfer-Encoding")) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 411;
    res.set_content(error_json("length_required",
                               "chunked request bodies are not accepted: send a Content-Length"),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_payload_max_length(max_body);
  const auto ms = [](std::int64_t v) { return std::chrono::milliseconds(v); };
  http.set_read_timeout(ms(args.read_timeout_ms));
  http.set_write_timeout(ms(args.write_timeout_ms));
  http.set_keep_alive_max_count(static_cast<std::size_t>(args.keep_alive_max));
  http.set_keep_alive_timeout(static_cast<time_t>((args.keep_alive_ms + 999) / 1000));
  http.set_tcp_nodelay(true);
  const auto threads = static_cast<std::size_t>(args.threads);
  http.new_task_queue = [threads] { return new BoundedPool(threads, 4 * threads); };
}

}  // namespace

CLI::App* add_serve_command(CLI::App& app, ServeArgs& args) {
  CLI::App* s = app.add_subcommand("serve", "Serve models over HTTP: predict, monitor, hot reload");
  s->add_option("models", args.models,
                "[NAME=]FILE or [NAME=]REFERENCE (digits@production, digits:3, digits)")
      ->required();
  s->add_option("--registry", args.registry,
                "Registry folder of the references (default: $KILN_REGISTRY, else ./models)");
  s->add_option("--host", args.host, "Address to listen on (default 127.0.0.1: this machine only)")
      ->capture_default_str();
  s->add_option("--port", args.port, "Port (0: a free one, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  s->add_option("--port-file", args.port_file,
                "Write the port here (atomically) once listening (for scripts and tests)");
  s->add_option("--max-batch", args.max_batch, "Rows per batch at most")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  s->add_option("--max-delay-us", args.max_delay_us,
                "How long a batch's first request waits for others (microseconds)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{60000000}));
  s->add_flag("--no-batching", args.no_batching, "Run every request alone, as it arrives");
  s->add_option("--workers", args.workers, "Threads that run batches")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{256}));
  s->add_option("--max-queue", args.max_queue, "Requests waiting at most (then 503 queue_full)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  s->add_option("--max-body-bytes", args.max_body_bytes, "Request body size limit (then 413)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{64}, std::int64_t{1} << 32));
  s->add_option("--max-rows", args.max_rows, "Rows in one request at most (then 413)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  s->add_option("--max-json-depth", args.max_json_depth, "JSON nesting depth at most (then 400)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{1000}));
  s->add_option("--timeout-ms", args.timeout_ms, "A request not answered by then gets 504")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3600000}));
  s->add_option("--reload-ms", args.reload_ms, "How often registry aliases are checked (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  s->add_option("--snapshot-dir", args.snapshot_dir,
                "Write drift snapshots here (DIR/NAME-vVERSION.json), for kiln drift and kiln ct");
  s->add_option("--snapshot-ms", args.snapshot_ms, "How often snapshots are rewritten")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{86400000}));
  s->add_option("--feedback-capacity", args.feedback_capacity,
                "Predictions remembered per model for :feedback")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 26));
  s->add_option("--threads", args.threads, "Connection threads (requests handled at once)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1024}));
  s->add_option("--read-timeout-ms", args.read_timeout_ms,
                "A client silent this long while sending a request is disconnected")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{600000}));
  s->add_option("--write-timeout-ms", args.write_timeout_ms,
                "A client not reading its answer for this long is disconnected")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{600000}));
  s->add_option("--keep-alive-max", args.keep_alive_max, "Requests per connection at most")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1000000}));
  s->add_option("--keep-alive-ms", args.keep_alive_ms,
                "An idle connection is closed after this long (whole seconds, rounded up)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{600000}));
  s->footer(R"(
Prints "serving NAME (version V) on http://HOST:PORT" once listening, then serves until
SIGTERM or SIGINT: it stops taking requests, answers those it has, writes the final drift
snapshots and exits 0. Routes (docs/serving.md): POST /v1/models/NAME:predict and
:feedback, GET /v1/models, /v1/models/NAME, /healthz, /readyz, /metrics.
A reference follows its registry alias: when `kiln registry promote` (or kiln ct) moves it,
the new version is loaded, checked and switched to without dropping a request.

Examples:
  kiln serve digits.kiln
  kiln serve digits@production --registry models --port 8080 --snapshot-dir drift
  kiln serve a=iris.kiln b=digits.kiln --port 0 --port-file port.txt --no-batching
)");
  return s;
}

int run_serve(const ServeArgs& args) {
  // SIGINT and SIGTERM are blocked in every thread (the model server's and httplib's
  // threads, started below, inherit the mask) and taken by one watcher thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  struct Unblock {
    sigset_t* set;
    ~Unblock() { pthread_sigmask(SIG_UNBLOCK, set, nullptr); }
  } unblock{&stop_signals};

  kiln::serve::ModelServer server(server_options(args));
  httplib::Server http;
  configure(http, server, args);

  const int port = args.port == 0 ? http.bind_to_any_port(args.host)
                                  : (http.bind_to_port(args.host, args.port) ? args.port : -1);
  if (port < 0) {
    throw kiln::IoError("kiln serve: cannot listen on " + args.host + ":" +
                        std::to_string(args.port) + " (in use, or not an address of this machine)");
  }
  if (!args.port_file.empty()) write_atomically(args.port_file, std::to_string(port) + "\n");
  const std::string shown_host =
      args.host.find(':') != std::string::npos ? "[" + args.host + "]" : args.host;
  std::printf("serving %s on http://%s:%d\n", describe(server.models()).c_str(), shown_host.c_str(),
              port);
  std::fflush(stdout);
  if (args.host != "127.0.0.1" && args.host != "localhost" && args.host != "::1") {
    std::fprintf(stderr,
                 "kiln serve: listening on %s: anyone who can reach this machine can use the "
                 "models\n",
                 args.host.c_str());
  }

  // On a signal: the model server stops taking requests and answers those it has (new
  // ones get 503 shutting_down), then httplib stops accepting connections and joins its
  // threads once their answers are written.
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    const timespec tick{0, 100 * 1000 * 1000};
    while (!done.load()) {
      const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig != SIGINT && sig != SIGTERM) continue;
      std::fprintf(stderr, "kiln serve: %s: finishing the requests in flight\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
      server.shutdown();
      while (!done.load()) {
        if (http.is_running()) {
          http.stop();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return;
    }
  });
  const bool ok = http.listen_after_bind();
  done = true;
  watcher.join();
  server.shutdown();
  if (!ok) throw kiln::IoError("kiln serve: the HTTP server stopped with an error");
  std::fprintf(stderr, "kiln serve: stopped\n");
  return exit_ok;
}

}  // namespace kiln_cli
