// kiln board: serves a folder of runs over HTTP on 127.0.0.1 (cpp-httplib) with the same
// views as `kiln report`, live: a run page polls its own URL and redraws when the run's
// files change (ReportOptions::live_url; kiln::report::render_report / render_index /
// list_runs do the work).
//
// Routes (GET):
//   /                       the index of the runs (render_index)
//   /run/NAME               the report of the run in folder NAME, live
//   /compare?run=A&run=B    the comparison of runs A, B, ..., live
//   /api/runs               JSON: the runs (list_runs)
//   /api/run/NAME/version   JSON: the run's version, status, epochs and steps
// NAME is always the name of a run folder of RUNS_DIR, found as list_runs finds them
// (anything else is 404), so a request reaches no file outside RUNS_DIR. A page is rendered
// again only when a file of its runs changed, and a live poll that names the page's
// current version (?since=V) gets 204 No Content until then.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/report/report.hpp"

namespace kiln_cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// A run's folder name: the last component of its path ("runs/a/" -> "a").
std::string folder_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "." || p.filename().empty()) p = fs::absolute(p).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

using kiln::report::url_encode;

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" ||
         host.rfind("127.", 0) == 0;
}

/// The host part of a Host header ("localhost:6006" -> "localhost", "[::1]:80" -> "[::1]").
std::string host_of(const std::string& header) {
  if (!header.empty() && header[0] == '[') {
    const auto end = header.find(']');
    return end == std::string::npos ? header : header.substr(0, end + 1);
  }
  return header.substr(0, header.find(':'));
}

/// The files of a run folder as "name:size:mtime;..." (stat only, nothing parsed): changes
/// whenever a file of the run changes, like RunInfo::version, at the cost of a listing.
std::string stamp_of(const std::string& dir) {
  std::vector<std::string> parts;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    const std::string name = it->path().filename().string();
    if (name == "report.html" || name.find(".tmp.") != std::string::npos) continue;
    const auto size = it->file_size(e2);
    const auto time = it->last_write_time(e2).time_since_epoch().count();
    parts.push_back(name + ":" + std::to_string(size) + ":" + std::to_string(time));
  }
  std::sort(parts.begin(), parts.end());
  std::string stamp;
  for (const auto& p : parts) stamp += p + ";";
  return stamp;
}

/// The data-version of a rendered page (<main id="kiln-report" data-version="...">).
std::string page_version(const std::string& html) {
  const std::string key = "data-version=\"";
  const auto main = html.find("id=\"kiln-report\"");
  if (main == std::string::npos) return {};
  const auto at = html.find(key, main);
  if (at == std::string::npos) return {};
  const auto end = html.find('"', at + key.size());
  return end == std::string::npos ? std::string()
                                  : html.substr(at + key.size(), end - at - key.size());
}

/// A page and the data-version it carries (shared, not copied: a long run's page is MBs).
struct Page {
  std::string html;
  std::string version;
};
using PagePtr = std::shared_ptr<const Page>;

class Board {
 public:
  Board(std::string runs_dir, std::int64_t poll_ms)
      : runs_dir_(std::move(runs_dir)), poll_ms_(poll_ms) {}

  /// The runs now in the folder, newest first.
  std::vector<kiln::report::RunInfo> list() const { return kiln::report::list_runs(runs_dir_); }
  std::optional<kiln::report::RunInfo> find(const std::string& name) const {
    for (auto& info : list()) {
      if (folder_name(info.dir) == name) return info;
    }
    return std::nullopt;
  }

  /// The run folders by folder name, found as list_runs finds them (RUNS_DIR itself if it
  /// holds a run.json, else its folders that hold one) but without reading any run: what a
  /// page request checks its names against.
  std::map<std::string, std::string> run_dirs() const {
    std::map<std::string, std::string> dirs;
    std::error_code ec;
    fs::path root = fs::path(runs_dir_).lexically_normal();
    if (root.filename().empty()) root = root.parent_path();
    if (!fs::is_directory(root, ec)) throw kiln::IoError(runs_dir_ + ": no such folder");
    if (fs::is_regular_file(root / "run.json", ec)) {
      dirs.emplace(folder_name(root.string()), root.string());
      return dirs;
    }
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code e2;
      if (it->is_directory(e2) && fs::is_regular_file(it->path() / "run.json", e2)) {
        dirs.emplace(it->path().filename().string(), it->path().string());
      }
    }
    if (ec) throw kiln::IoError(runs_dir_ + ": cannot list the folder: " + ec.message());
    return dirs;
  }

  /// The index, rendered again only when a run changed.
  PagePtr index() {
    std::string stamp;
    for (const auto& [name, dir] : run_dirs()) {
      stamp += name;
      stamp += '{';
      stamp += stamp_of(dir);
      stamp += '}';
    }
    return cached("/", stamp, [&] {
      kiln::report::ReportOptions options;
      options.live_url = "/";
      options.live_poll_ms = poll_ms_;
      return kiln::report::render_index(runs_dir_, options);
    });
  }

  /// The page of these run folders (one: its report; several: their comparison) at `url`,
  /// rendered again only when one of them changed.
  PagePtr page(const std::vector<std::string>& dirs, const std::string& url) {
    std::string stamp;
    for (const auto& dir : dirs) {
      stamp += '{';
      stamp += stamp_of(dir);
      stamp += '}';
    }
    return cached(url, stamp, [&] {
      kiln::report::ReportOptions options;
      options.live_url = url;
      options.live_poll_ms = poll_ms_;
      return kiln::report::render_report(dirs, options);
    });
  }

 private:
  template <class Render>
  PagePtr cached(const std::string& url, const std::string& stamp, Render render) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = cache_.find(url);
      if (it != cache_.end() && it->second.first == stamp) return it->second.second;
    }
    auto page = std::make_shared<Page>();
    page->html = render();
    page->version = page_version(page->html);
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_.size() > 64) cache_.clear();  // a bound on what many compare URLs keep
    cache_[url] = {stamp, page};
    return page;
  }

  std::string runs_dir_;
  std::int64_t poll_ms_;
  std::mutex mutex_;
  std::map<std::string, std::pair<std::string, PagePtr>> cache_;
};

void send_text(httplib::Response& res, int status, const std::string& text) {
  res.status = status;
  res.set_content(text + "\n", "text/plain; charset=utf-8");
}

void send_json(httplib::Response& res, const json& value) {
  res.set_content(value.dump(), "application/json");
}

/// Runs `handler`, turning a kiln::Error (a run folder being unreadable, say) into a 500
/// with its message: the page's live poll ignores it and tries again.
template <class Handler>
httplib::Server::Handler guarded(Handler handler) {
  return [handler](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    try {
      handler(req, res);
    } catch (const std::exception& err) {
      send_text(res, 500, std::string("kiln board: ") + err.what());
    }
  };
}

json run_json(const std::string& name, const kiln::report::RunInfo& info) {
  return {{"name", name},          {"title", info.name},      {"dir", info.dir},
          {"status", info.status}, {"started", info.started}, {"epochs", info.epochs},
          {"steps", info.steps},   {"version", info.version}, {"url", "/run/" + url_encode(name)}};
}

/// Sends a page, or 204 No Content when the request's `since` (the live poll's current
/// data-version, see kiln/report/report.hpp) is still the page's version.
void send_page(const httplib::Request& req, httplib::Response& res, const PagePtr& page) {
  if (!page->version.empty() && req.has_param("since") &&
      req.get_param_value("since") == page->version) {
    res.status = 204;
    return;
  }
  res.set_content(page->html, "text/html; charset=utf-8");
}

void add_routes(httplib::Server& server, Board& board) {
  server.Get("/", guarded([&board](const httplib::Request& req, httplib::Response& res) {
               send_page(req, res, board.index());
             }));

  server.Get(R"(/run/([^/]+))",
             guarded([&board](const httplib::Request& req, httplib::Response& res) {
               const std::string name = req.matches[1];
               const auto dirs = board.run_dirs();
               const auto it = dirs.find(name);
               if (it == dirs.end()) return send_text(res, 404, "no run named \"" + name + "\"");
               send_page(req, res, board.page({it->second}, "/run/" + url_encode(name)));
             }));

  server.Get("/compare", guarded([&board](const httplib::Request& req, httplib::Response& res) {
               const std::size_t n = req.get_param_value_count("run");
               if (n == 0)
                 return send_text(res, 400, "choose runs to compare: /compare?run=A&run=B");
               const auto all = board.run_dirs();
               std::vector<std::string> chosen;
               std::string url = "/compare";
               for (std::size_t i = 0; i < n; ++i) {
                 const std::string name = req.get_param_value("run", i);
                 auto it = all.find(name);
                 if (it == all.end()) return send_text(res, 404, "no run named \"" + name + "\"");
                 chosen.push_back(it->second);
                 url += (i == 0 ? "?run=" : "&run=") + url_encode(name);
               }
               send_page(req, res, board.page(chosen, url));
             }));

  server.Get("/api/runs", guarded([&board](const httplib::Request&, httplib::Response& res) {
               json list = json::array();
               for (const auto& info : board.list()) {
                 list.push_back(run_json(folder_name(info.dir), info));
               }
               send_json(res, list);
             }));

  server.Get(R"(/api/run/([^/]+)/version)",
             guarded([&board](const httplib::Request& req, httplib::Response& res) {
               const std::string name = req.matches[1];
               const auto info = board.find(name);
               if (!info) return send_text(res, 404, "no run named \"" + name + "\"");
               send_json(res, {{"version", info->version},
                               {"status", info->status},
                               {"epochs", info->epochs},
                               {"steps", info->steps}});
             }));

  // Everything else.
  server.Get(R"(.*)", [](const httplib::Request& req, httplib::Response& res) {
    send_text(res, 404, "not found: " + req.path);
  });
}

}  // namespace

int run_board(const BoardArgs& args) {
  if (args.poll_ms < 100) throw kiln::ValueError("--poll-ms must be at least 100");
  Board board(args.runs_dir, args.poll_ms);
  board.run_dirs();  // IoError now, naming the folder, if it cannot be read

  httplib::Server server;
  // A page of this server is only for this machine's browser: with a loopback address,
  // requests that name another host (DNS rebinding from a web page) are refused.
  if (is_loopback(args.host)) {
    server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      const std::string host = host_of(req.get_header_value("Host"));
      if (host.empty() || is_loopback(host)) return httplib::Server::HandlerResponse::Unhandled;
      send_text(res, 403, "kiln board: requests must name this machine (Host: " + host + ")");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  add_routes(server, board);

  // SIGINT and SIGTERM are blocked in every thread (the server's threads inherit the mask)
  // and taken by one watcher, which stops the server: a clean shutdown, exit code 0.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const int port = args.port == 0 ? server.bind_to_any_port(args.host)
                                  : (server.bind_to_port(args.host, args.port) ? args.port : -1);
  if (port < 0) {
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
    throw kiln::IoError("kiln board: cannot listen on " + args.host + ":" +
                        std::to_string(args.port) + " (in use, or not an address of this machine)");
  }
  const std::string shown_host =
      args.host.find(':') != std::string::npos ? "[" + args.host + "]" : args.host;
  std::printf("kiln board: serving %s on http://%s:%d\n", args.runs_dir.c_str(), shown_host.c_str(),
              port);
  std::fflush(stdout);
  if (!is_loopback(args.host)) {
    std::fprintf(stderr,
                 "kiln board: listening on %s: anyone who can reach this machine can read the "
                 "runs\n",
                 args.host.c_str());
  }

  std::atomic<bool> done{false};
  std::thread watcher([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!done.load()) {
      const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig != SIGINT && sig != SIGTERM) continue;
      // A signal that came before the server started listening stops it once it does.
      while (!done.load()) {
        if (server.is_running()) {
          server.stop();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });
  const bool ok = server.listen_after_bind();
  done = true;
  watcher.join();
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  if (!ok) throw kiln::IoError("kiln board: the server stopped with an error");
  std::fprintf(stderr, "kiln board: stopped\n");
  return exit_ok;
}

}  // namespace kiln_cli
