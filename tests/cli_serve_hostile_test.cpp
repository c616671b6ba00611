// `kiln serve` against hostile clients (issue 14, acceptance 3): a table of requests sent
// over raw sockets (oversized and lying bodies, deep nesting, NaN strings and tokens, wrong
// dtypes and shapes, unknown models and routes, bad methods, malformed and truncated JSON,
// half-closed connections, a slow client, a garbage request line, huge headers and URIs,
// chunked bodies); each must get its status and error code, or a clean close, and after
// each one /healthz answers 200 and a normal predict still gets the class `kiln predict`
// gives. The server runs with short read and keep-alive timeouts so the slow cases are fast.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kiln.hpp"
#include "tests/support/cli_test_support.hpp"
#include "tests/support/serve_process.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string& digits_csv = kiln_test::serve_digits_csv;

/// What came back on a raw connection.
struct Exchange {
  int status = -1;         ///< -1: no answer
  std::string code;        ///< the JSON error's code, if any
  std::string raw;         ///< everything read
  bool closed = false;     ///< the server closed the connection
  bool timed_out = false;  ///< neither an answer nor a close within the wait
};

/// How a request is sent.
struct Send {
  bool shut_write = false;                  ///< shutdown(SHUT_WR) after the bytes
  std::chrono::milliseconds trickle{0};     ///< pause between single bytes
  std::chrono::milliseconds wait = 5000ms;  ///< for the answer or the close
};

class Connection {
 public:
  explicit Connection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
  }
  ~Connection() { ::close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Sends all of `bytes` (false when the server closed the connection first).
  bool send_all(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  void shut_write() { ::shutdown(fd_, SHUT_WR); }

  /// Reads until one complete answer (by Content-Length), a close, or `wait` passes.
  Exchange receive(std::chrono::milliseconds wait) {
    Exchange e;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      if (complete(e.raw)) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        e.timed_out = true;
        break;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        e.closed = true;
        break;
      }
      e.raw.append(buf, static_cast<std::size_t>(n));
    }
    if (e.raw.rfind("HTTP/1.1 ", 0) == 0 && e.raw.size() >= 12) {
      e.status = std::stoi(e.raw.substr(9, 3));
      const auto body = e.raw.find("\r\n\r\n");
      if (body != std::string::npos) {
        const json j = json::parse(e.raw.substr(body + 4), nullptr, false);
        if (j.is_object() && j.contains("error")) e.code = j["error"].value("code", "");
      }
    }
    return e;
  }

 private:
  static bool complete(const std::string& raw) {
    const auto end = raw.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const std::string key = "Content-Length: ";
    const auto at = raw.find(key);
    if (at == std::string::npos || at > end) return true;
    const std::size_t length = std::stoul(raw.substr(at + key.size()));
    return raw.size() >= end + 4 + length;
  }

  int fd_ = -1;
};

Exchange exchange(int port, const std::string& bytes, const Send& how = {}) {
  Connection c(port);
  if (how.trickle.count() > 0) {
    for (char byte : bytes) {
      if (!c.send_all(std::string(1, byte))) break;
      std::this_thread::sleep_for(how.trickle);
    }
  } else {
    c.send_all(bytes);
  }
  if (how.shut_write) c.shut_write();
  return c.receive(how.wait);
}

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

/// A row of 64 pixel values as JSON text, with `first` as its first element.
std::string row64(const std::string& first) {
  std::string row = "[" + first;
  for (int i = 1; i < 64; ++i) row += ",0";
  return row + "]";
}

/// A :predict request of the digits model with one row whose first pixel is `first`.
std::string digits_row(const std::string& first) {
  std::string body = "{\"instances\": [";
  body += row64(first);
  body += "]}";
  return post("/v1/models/digits:predict", body);
}

class CliServeHostile : public kiln_test::CliTest {
 protected:
  CliServeHostile() : CliTest("kiln_cli_serve_hostile_test_") {}

  void SetUp() override {
    CliTest::SetUp();
    const kiln_test::CliResult r = kiln(kiln_test::train_digits_args("m.kiln"));
    ASSERT_EQ(r.rc, 0) << r.err;
    // A model with an integer input: "x" f32 [batch, 2, 3] and "k" i64 [batch].
    kiln::Graph g;
    auto x = g.input("x", {kiln::batch, 2, 3});
    auto k = g.input("k", {kiln::batch}, kiln::DType::i64);
    kiln::SaveOptions save{.inputs = {x, k},
                           .outputs = {kiln::sum(x, {1, 2}), kiln::one_hot(k, 4)}};
    save.output_names = {"total", "onehot"};
    kiln::save_model(path("two.kiln").string(), g, save);
  }
};

struct Hostile {
  std::string name;
  std::string request;
  int status;        ///< expected status; 0: a clean close without an answer
  std::string code;  ///< expected error code ("" : not checked)
  Send how = {};
  bool or_close = false;  ///< a clean close without an answer is fine too
};

TEST_F(CliServeHostile, EveryHostileRequestGetsItsAnswerOrACleanCloseAndTheServerStaysUp) {
  const kiln_test::CliResult predicted =
      kiln("predict m.kiln --data " + digits_csv + " --out p.csv");
  ASSERT_EQ(predicted.rc, 0) << predicted.err;
  const std::vector<std::string> lines = kiln_test::lines(kiln_test::slurp(path("p.csv")));
  const kiln_test::CsvRows data = kiln_test::read_csv_rows(digits_csv, "label");
  const std::string good_body = kiln_test::instances_body(data.rows, 0, 3);

  constexpr std::size_t max_body = 65536;
  kiln_test::ServeProcess server(
      dir_, {"digits=m.kiln", "two=two.kiln", "--max-body-bytes", std::to_string(max_body),
             "--max-rows", "100", "--max-json-depth", "16", "--read-timeout-ms", "300",
             "--write-timeout-ms", "1000", "--keep-alive-ms", "1000", "--threads", "8"});
  const int port = server.port();

  std::string deep = "{\"instances\": ";
  for (int i = 0; i < 5000; ++i) deep += "[";
  std::string too_many_rows = "{\"instances\": [";
  for (int i = 0; i < 101; ++i) {
    if (i > 0) too_many_rows += ",";
    too_many_rows += row64("0");
  }
  too_many_rows += "]}";
  const std::string two_ok = R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": [2]}})";

  const std::vector<Hostile> table = {
      // Sizes.
      {"oversized body", post("/v1/models/digits:predict", std::string(max_body + 1, ' ')), 413,
       "too_large"},
      {"Content-Length lie, huge",
       "POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n"
       "Content-Length: 1000000000\r\n\r\n{\"instances\"",
       413, "too_large"},
      {"Content-Length lie, short body",
       "POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}", 400,
       "bad_request"},
      {"chunked body",
       "POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n"
       "Transfer-Encoding: chunked\r\n\r\nffffffff\r\n[[[[",
       411, "length_required"},
      {"too many rows", post("/v1/models/digits:predict", too_many_rows), 413, "too_many_rows"},
      {"deep nesting", post("/v1/models/digits:predict", deep + "]}"), 400, "too_deep"},
      {"huge URI", "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414,
       "too_large"},
      {"huge header",
       "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100000, 'b') + "\r\n\r\n", 400,
       "bad_request"},
      // Numbers that are not numbers.
      {"\"NaN\" string", digits_row("\"NaN\""), 400, "wrong_type"},
      {"\"Infinity\" string", digits_row("\"Infinity\""), 400, "wrong_type"},
      {"bare NaN token", digits_row("NaN"), 400, "bad_json"},
      {"bare Infinity token", digits_row("-Infinity"), 400, "bad_json"},
      {"number beyond a double", digits_row("1e999"), 400, "not_finite"},
      {"number beyond f32", digits_row("1e39"), 400, "not_finite"},
      // Wrong dtypes.
      {"boolean pixel", digits_row("true"), 400, "wrong_type"},
      {"null pixel", digits_row("null"), 400, "wrong_type"},
      {"float for an integer input",
       post("/v1/models/two:predict", R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": [2.5]}})"), 400,
       "wrong_type"},
      {"string for an integer input",
       post("/v1/models/two:predict", R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": ["2"]}})"), 400,
       "wrong_type"},
      // Wrong shapes and names.
      {"63 pixels", post("/v1/models/digits:predict", "{\"instances\": [[1,2,3]]}"), 400,
       "wrong_shape"},
      {"ragged rows",
       post("/v1/models/two:predict", R"({"inputs": {"x": [[[1,2,3],[4,5]]], "k": [2]}})"), 400,
       "wrong_shape"},
      {"rows disagree",
       post("/v1/models/two:predict", R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": [2, 3]}})"),
       400, "wrong_shape"},
      {"missing input", post("/v1/models/two:predict", R"({"inputs": {"x": [[[1,2,3],[4,5,6]]]}})"),
       400, "missing_input"},
      {"unknown input",
       post("/v1/models/two:predict",
            R"({"inputs": {"x": [[[1,2,3],[4,5,6]]], "k": [1], "z": [1]}})"),
       400, "unknown_input"},
      // Routes and methods.
      {"unknown model", post("/v1/models/nope:predict", good_body), 404, "unknown_model"},
      {"unknown route", "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
      {"unknown verb", post("/v1/models/digits:explode", good_body), 404, "not_found"},
      {"bad method", "DELETE /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n\r\n", 405,
       "method_not_allowed"},
      {"GET on predict", "GET /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\n\r\n", 405,
       "method_not_allowed"},
      {"unknown method", "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
      // Malformed bodies.
      {"malformed JSON", post("/v1/models/digits:predict", "{\"instances\": [[1,2,"), 400,
       "bad_json"},
      {"empty body", post("/v1/models/digits:predict", ""), 400, "bad_json"},
      {"not an object", post("/v1/models/digits:predict", "[1,2,3]"), 400, ""},
      {"invalid UTF-8", post("/v1/models/digits:predict", "{\"instances\": \"\xff\xfe\"}"), 400,
       "bad_json"},
      {"bad feedback", post("/v1/models/digits:feedback", R"({"ids": [1], "labels": "x"})"), 400,
       ""},
      // Connections.
      {"truncated body then half-close",
       "POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inst",
       0,
       "",
       {.shut_write = true}},
      {"half-close inside the headers",
       "POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nCont",
       0,
       "",
       {.shut_write = true}},
      {"slow client",
       "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
       0,
       "",
       {.trickle = 700ms, .wait = 5000ms}},
      {"garbage request line",
       "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
       400,
       "bad_request",
       {},
       true},
      {"garbage then close", "GARBAGE", 400, "bad_request", {.shut_write = true}, true},
  };

  const auto still_serving = [&](const std::string& after) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10s);
    const auto health = c.Get("/healthz");
    ASSERT_TRUE(health) << "after " << after;
    EXPECT_EQ(health->status, 200) << "after " << after;
    const auto res = c.Post("/v1/models/digits:predict", good_body, "application/json");
    ASSERT_TRUE(res) << "after " << after;
    ASSERT_EQ(res->status, 200) << "after " << after << ": " << res->body;
    const json answer = json::parse(res->body);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(answer["classes"][i].get<std::string>(),
                lines[1 + i].substr(0, lines[1 + i].find(',')))
          << "after " << after;
    }
    const auto two = c.Post("/v1/models/two:predict", two_ok, "application/json");
    ASSERT_TRUE(two) << "after " << after;
    ASSERT_EQ(two->status, 200) << "after " << after << ": " << two->body;
    const json t = json::parse(two->body);
    EXPECT_EQ(t["outputs"]["total"], json::parse("[21]")) << "after " << after;
    EXPECT_EQ(t["outputs"]["onehot"], json::parse("[[0,0,1,0]]")) << "after " << after;
  };

  still_serving("nothing");
  for (const Hostile& h : table) {
    SCOPED_TRACE(h.name);
    const Exchange e = exchange(port, h.request, h.how);
    EXPECT_FALSE(e.timed_out) << "the server neither answered nor closed: " << e.raw.substr(0, 300);
    if (h.status == 0 || (h.or_close && e.status == -1)) {
      EXPECT_TRUE(e.closed);
      EXPECT_EQ(e.status, -1) << e.raw.substr(0, 300);
    } else {
      EXPECT_EQ(e.status, h.status) << e.raw.substr(0, 400);
      if (!h.code.empty()) {
        EXPECT_EQ(e.code, h.code) << e.raw.substr(0, 400);
      }
      if (e.status >= 400) {
        EXPECT_NE(e.raw.find("Content-Type: application/json"), std::string::npos)
            << e.raw.substr(0, 400);
      }
    }
    ASSERT_TRUE(server.process().running()) << "the server died after " << h.name;
    still_serving(h.name);
  }

  // Hostile clients at once, while normal requests go on.
  std::vector<std::thread> attackers;
  for (const Hostile& h : table) {
    attackers.emplace_back([&, h] {
      try {
        exchange(port, h.request, h.how);
      } catch (...) {
      }
    });
  }
  for (int i = 0; i < 5; ++i) still_serving("the hostile requests at once");
  for (std::thread& t : attackers) t.join();
  still_serving("the hostile requests at once");
  EXPECT_EQ(server.process().stop(SIGTERM, 20s), 0);
}

}  // namespace
