// The board's run list and index page.
#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <system_error>

#include "kiln/core/error.hpp"
#include "report/report_parts.hpp"
#include "report/svg.hpp"

namespace kiln::report {
namespace fs = std::filesystem;

namespace {

RunInfo read_info(const fs::path& dir) {
  RunInfo info;
  info.dir = dir.string();
  try {
    auto summary = internal::read_run_summary(info.dir);
    auto text = [&](const char* key) {
      auto it = summary.run.find(key);
      return it != summary.run.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    info.name = text("name");
    info.status = text("status");
    info.started = text("started");
    info.epochs = summary.epochs;
    info.steps = summary.steps;
    info.latest = summary.latest;
    info.version = summary.version;
  } catch (const Error& e) {
    info.status = "unreadable";
    info.version = internal::run_version(info.dir);
  }
  if (info.name.empty()) info.name = dir.filename().string();
  return info;
}

/// read_info, remembered per folder while its version stays the same (a board lists the
/// runs on every poll; a long run's metrics.jsonl is then read only when it changed).
RunInfo info_of(const fs::path& dir) {
  static std::mutex mutex;
  static std::map<std::string, RunInfo> cache;
  const std::string key = dir.string();
  const std::string version = internal::run_version(key);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end() && it->second.version == version) return it->second;
  }
  RunInfo info = read_info(dir);
  // The version taken before reading: a change during the read is seen by the next call.
  info.version = version;
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() > 4096) cache.clear();
  cache[key] = info;
  return info;
}

/// "loss 0.1625 · accuracy 0.9652 · val_loss ..." (lr left out), exact values in titles.
std::string latest_text(const RunInfo& r) {
  std::string s;
  for (const auto& [k, v] : r.latest) {
    if (k == "lr") continue;
    s += (s.empty() ? "" : " \u00b7 ") + std::string("<span title=\"") +
         internal::escape(internal::number_text(v)) + "\">" + internal::escape(k) + " <b>" +
         internal::escape(internal::short_number(v)) + "</b></span>";
  }
  return s;
}

}  // namespace

std::string url_encode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::vector<RunInfo> list_runs(const std::string& runs_dir) {
  std::error_code ec;
  if (!fs::is_directory(runs_dir, ec)) throw IoError(runs_dir + ": no such folder");
  fs::path root = fs::path(runs_dir).lexically_normal();
  if (root.filename().empty()) root = root.parent_path();
  std::vector<RunInfo> runs;
  if (fs::is_regular_file(root / "run.json", ec)) {
    runs.push_back(info_of(root));
    return runs;
  }
  fs::directory_iterator it(root, ec), end;
  if (ec) throw IoError(runs_dir + ": cannot list the folder: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw IoError(runs_dir + ": cannot list the folder: " + ec.message());
    std::error_code e2;
    if (it->is_directory(e2) && fs::is_regular_file(it->path() / "run.json", e2))
      runs.push_back(info_of(it->path()));
  }
  std::sort(runs.begin(), runs.end(), [](const RunInfo& a, const RunInfo& b) {
    if (a.started != b.started) return a.started > b.started;
    return a.dir < b.dir;
  });
  return runs;
}

std::string render_index(const std::string& runs_dir, const ReportOptions& options) {
  using namespace internal;
  auto runs = list_runs(runs_dir);
  std::string version;
  for (const auto& r : runs) version += r.version.substr(0, 8);
  std::string title = options.title.empty() ? "Kiln runs in " + runs_dir : options.title;
  std::string s = "<header><h1>" + escape(title) + "</h1><p class=\"sub\">" +
                  std::to_string(runs.size()) + " run" + (runs.size() == 1 ? "" : "s") +
                  (options.live_url.empty() ? "" : " \u00b7 updating live") + "</p></header>";
  s += "<section id=\"runs\" data-present=\"1\"><h2>Runs</h2>";
  if (runs.empty()) {
    s += "<p class=\"note\">No runs yet: a run is a folder with a run.json (kiln train writes "
         "them).</p>";
  } else {
    s += "<form method=\"get\" action=\"compare\"><table><tr><th>compare</th><th>run</th><th>"
         "status</th><th>started</th><th class=\"num\">epochs</th><th class=\"num\">steps</th>"
         "<th>latest epoch</th></tr>";
    for (const auto& r : runs) {
      std::string folder = fs::path(r.dir).filename().string();
      s += "<tr data-run=\"" + escape(folder) + "\" data-version=\"" + escape(r.version) +
           "\"><td><input type=\"checkbox\" name=\"run\" value=\"" + escape(folder) +
           "\"></td><td><a href=\"run/" + escape(url_encode(folder)) + "\">" + escape(r.name) +
           "</a></td><td>" + status_badge(r.status) + "</td><td>" + escape(r.started) +
           "</td><td class=\"num\">" + std::to_string(r.epochs) + "</td><td class=\"num\">" +
           std::to_string(r.steps) + "</td><td>" + latest_text(r) + "</td></tr>";
    }
    s += "</table><p><button type=\"submit\">Compare the chosen runs</button></p></form>";
  }
  s += "</section>";
  return page(title, version, s, options);
}

}  // namespace kiln::report
