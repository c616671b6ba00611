// Browser tests: a small WebDriver client that drives headless Chromium through
// chromedriver (Debian: chromium, chromium-driver), over cpp-httplib and nlohmann json.
// A test that includes this header is linked with both (tests/CMakeLists.txt) and runs
// with the other browser tests one at a time (ctest RESOURCE_LOCK kiln_browser).
//
//   TEST(Report, Draws) {
//     KILN_REQUIRE_BROWSER();                       // skips (says why) without Chromium
//     kiln_test::WebDriver browser;                 // chromedriver + a headless session
//     browser.navigate("file:///tmp/report.html");
//     nlohmann::json n = browser.execute("return document.querySelectorAll('svg').length");
//     browser.wait_until("return document.title.length > 0", std::chrono::seconds(5));
//     std::vector<std::uint8_t> png = browser.screenshot();
//   }
//
// The session's window is 1280 x 2000 CSS pixels (--headless --no-sandbox --disable-gpu).
// Every failure (chromedriver missing or not answering, a WebDriver error such as a script
// exception) throws std::runtime_error with chromedriver's message.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/support/child_process.hpp"

namespace kiln_test {

/// Chromium and chromedriver: /usr/bin/chromium and /usr/bin/chromedriver unless the
/// environment names others (KILN_CHROMIUM, KILN_CHROMEDRIVER).
inline std::string chromium_path() {
  const char* env = std::getenv("KILN_CHROMIUM");
  return env && *env ? env : "/usr/bin/chromium";
}
inline std::string chromedriver_path() {
  const char* env = std::getenv("KILN_CHROMEDRIVER");
  return env && *env ? env : "/usr/bin/chromedriver";
}

/// Empty when Chromium and chromedriver are there; otherwise what is missing.
inline std::string browser_missing() {
  std::string missing;
  for (const std::string& path : {chromium_path(), chromedriver_path()}) {
    if (::access(path.c_str(), X_OK) != 0) {
      missing += (missing.empty() ? "" : ", ") + path;
    }
  }
  return missing.empty() ? ""
                         : "Chromium is not installed: " + missing +
                               " missing (Debian: apt-get install chromium chromium-driver)";
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
inline int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Standard base64 (with '=' padding, whitespace ignored); throws on other characters.
inline std::vector<std::uint8_t> base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    if (c == '\n' || c == '\r' || c == ' ') continue;
    const int v = value(c);
    if (v < 0) throw std::runtime_error("base64: bad character");
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<std::uint8_t>(bits >> 16));
      out.push_back(static_cast<std::uint8_t>(bits >> 8));
      out.push_back(static_cast<std::uint8_t>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out.push_back(static_cast<std::uint8_t>(bits >> 4));
  if (count == 3) {
    out.push_back(static_cast<std::uint8_t>(bits >> 10));
    out.push_back(static_cast<std::uint8_t>(bits >> 2));
  }
  if (count == 1) throw std::runtime_error("base64: truncated");
  return out;
}

/// Whether a script's result counts as true for wait_until (JavaScript truthiness).
inline bool truthy(const nlohmann::json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0.0;
  if (v.is_string()) return !v.get<std::string>().empty();
  return true;  // objects and arrays
}

class WebDriver {
 public:
  /// Starts chromedriver on a free port and opens a headless Chromium session.
  WebDriver() {
    const std::string missing = browser_missing();
    if (!missing.empty()) throw std::runtime_error(missing);
    // The port is picked before chromedriver binds it; another process may take it in
    // between, so a start that fails is tried again on a new port.
    std::string last_error;
    for (int attempt = 0; attempt < 3 && !client_; ++attempt) {
      const int port = free_local_port();
      const bool verbose = std::getenv("KILN_WEBDRIVER_VERBOSE") != nullptr;
      driver_ = std::make_unique<ChildProcess>(
          std::vector<std::string>{chromedriver_path(), "--port=" + std::to_string(port)},
          /*capture_stdout=*/false, /*quiet=*/!verbose);
      auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
      client->set_connection_timeout(std::chrono::seconds(2));
      client->set_read_timeout(std::chrono::seconds(120));
      client->set_write_timeout(std::chrono::seconds(30));
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (std::chrono::steady_clock::now() < deadline && driver_->running()) {
        auto res = client->Get("/status");
        if (res && res->status == 200) {
          const auto status = nlohmann::json::parse(res->body, nullptr, false);
          if (!status.is_discarded() && status["value"].value("ready", false)) {
            client_ = std::move(client);
            break;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (!client_) {
        last_error = driver_->running() ? "chromedriver did not answer on port " +
                                              std::to_string(port) + " within 20 s"
                                        : "chromedriver exited at start";
        driver_.reset();
      }
    }
    if (!client_) throw std::runtime_error(last_error);

    const nlohmann::json capabilities = {
        {"capabilities",
         {{"alwaysMatch",
           {{"browserName", "chrome"},
            {"goog:chromeOptions",
             {{"binary", chromium_path()},
              {"args",
               {"--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000",
                "--disable-dev-shm-usage", "--hide-scrollbars"}}}}}}}}};
    const nlohmann::json value = command("POST", "/session", capabilities);
    session_ = value.at("sessionId").get<std::string>();
  }
  WebDriver(const WebDriver&) = delete;
  WebDriver& operator=(const WebDriver&) = delete;
  ~WebDriver() {
    try {
      quit();
    } catch (...) {
      // The destructor still stops chromedriver (ChildProcess's destructor).
    }
  }

  /// Loads `url` and waits for its load event (http://, file:// and data: URLs).
  void navigate(const std::string& url) { command("POST", session_path("/url"), {{"url", url}}); }
  std::string current_url() { return command("GET", session_path("/url")).get<std::string>(); }

  /// Runs `script` as the body of a function in the page (it returns with `return`); its
  /// arguments are `args` (arguments[0], ...). Returns the value the script returned.
  nlohmann::json execute(const std::string& script,
                         const nlohmann::json& args = nlohmann::json::array()) {
    return command("POST", session_path("/execute/sync"), {{"script", script}, {"args", args}});
  }

  /// Runs `script` every `poll` until it returns a truthy value, which it returns. Throws
  /// std::runtime_error with the last value when `timeout` passes first.
  nlohmann::json wait_until(const std::string& script, std::chrono::milliseconds timeout,
                            std::chrono::milliseconds poll = std::chrono::milliseconds(100)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    nlohmann::json last;
    for (;;) {
      last = execute(script);
      if (truthy(last)) return last;
      if (std::chrono::steady_clock::now() >= deadline) {
        throw std::runtime_error("wait_until: timed out after " + std::to_string(timeout.count()) +
                                 " ms; last value " + last.dump() + " of: " + script);
      }
      std::this_thread::sleep_for(poll);
    }
  }

  /// The window's current content as PNG bytes.
  std::vector<std::uint8_t> screenshot() {
    return base64_decode(command("GET", session_path("/screenshot")).get<std::string>());
  }

  /// Ends the session (closes Chromium) and stops chromedriver. Idempotent.
  void quit() {
    if (!session_.empty() && client_) {
      const std::string id = session_;
      session_.clear();
      client_->Delete("/session/" + id);
    }
    client_.reset();
    driver_.reset();
  }

  /// One WebDriver command; returns the response's "value". Throws std::runtime_error with
  /// the WebDriver error and message for an error response.
  nlohmann::json command(const std::string& method, const std::string& path,
                         const nlohmann::json& body = nlohmann::json::object()) {
    if (!client_) throw std::runtime_error("WebDriver: no session");
    httplib::Result res = method == "GET" ? client_->Get(path)
                          : method == "DELETE"
                              ? client_->Delete(path)
                              : client_->Post(path, body.dump(), "application/json");
    if (!res) {
      throw std::runtime_error("WebDriver " + method + " " + path + ": " +
                               httplib::to_string(res.error()));
    }
    const auto reply = nlohmann::json::parse(res->body, nullptr, false);
    if (reply.is_discarded() || !reply.is_object() || !reply.contains("value")) {
      throw std::runtime_error("WebDriver " + method + " " + path + ": HTTP " +
                               std::to_string(res->status) + ": " + res->body.substr(0, 500));
    }
    const nlohmann::json& value = reply["value"];
    if (res->status != 200) {
      std::string message = value.is_object() ? value.value("error", std::string("error")) + ": " +
                                                    value.value("message", std::string())
                                              : value.dump();
      throw std::runtime_error("WebDriver " + method + " " + path + ": " + message.substr(0, 2000));
    }
    return value;
  }

 private:
  std::string session_path(const std::string& rest) const {
    if (session_.empty()) throw std::runtime_error("WebDriver: no session");
    return "/session/" + session_ + rest;
  }

  std::unique_ptr<ChildProcess> driver_;
  std::unique_ptr<httplib::Client> client_;
  std::string session_;
};

}  // namespace kiln_test

/// Skips the current test, saying why, where Chromium or chromedriver is missing. Under CI
/// (CI=true), which installs them (scripts/install_deps.sh --test), their absence fails
/// the test instead.
#define KILN_REQUIRE_BROWSER()                                                \
  do {                                                                        \
    const std::string kiln_browser_missing_ = ::kiln_test::browser_missing(); \
    if (!kiln_browser_missing_.empty()) {                                     \
      const char* kiln_ci_ = std::getenv("CI");                               \
      if (kiln_ci_ && std::string(kiln_ci_) == "true") {                      \
        FAIL() << kiln_browser_missing_ << " (CI installs it)";               \
      }                                                                       \
      GTEST_SKIP() << kiln_browser_missing_;                                  \
    }                                                                         \
  } while (false)
