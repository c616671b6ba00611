// `kiln serve` as a child process for the cli_serve* tests: started on 127.0.0.1 with
// --port 0 and --port-file, its "serving ... on http://127.0.0.1:PORT" line read and
// checked against the port file, always stopped (ChildProcess sends SIGTERM, then SIGKILL).
// Also the digits rows of a CSV as JSON, for :predict bodies. The test includes <httplib.h>
// itself (tests/CMakeLists.txt links cpp-httplib to tests that do).
//
//   kiln_test::ServeProcess server(dir_, {"m.kiln", "--max-batch", "64"});
//   httplib::Client client = server.client();
//   auto res = client.Post("/v1/models/m:predict", body, "application/json");
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.hpp"

namespace kiln_test {

/// data/digits.csv, and the kiln arguments that train the digits spec on it into `out`
/// (a few seconds): the model the cli_serve* tests serve.
inline const std::string serve_digits_csv = std::string(KILN_SOURCE_DIR) + "/data/digits.csv";
inline std::string train_digits_args(const std::string& out) {
  return "train " + std::string(KILN_SOURCE_DIR) + "/examples/specs/digits.json --data " +
         serve_digits_csv + " --out " + out + " --no-record --quiet";
}

class ServeProcess {
 public:
  /// Starts `kiln serve ARGS --port 0 --port-file DIR/port` in DIR (quiet: no stderr) and waits
  /// (up to 30 s) until it listens.
  ServeProcess(const std::filesystem::path& dir, const std::vector<std::string>& args,
               bool quiet = false) {
    const std::filesystem::path port_file = dir / "port";
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {KILN_CLI, "serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--port", "0", "--port-file", port_file.string()});
    // Started in `dir` (the working directory is inherited at spawn): relative model paths
    // and files the server writes are the test folder's.
    const std::filesystem::path cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir);
    try {
      process_ = std::make_unique<ChildProcess>(argv, true, quiet);
    } catch (...) {
      std::filesystem::current_path(cwd);
      throw;
    }
    std::filesystem::current_path(cwd);
    line_ = process_->read_line(std::chrono::seconds(30));
    const std::string marker = " on http://127.0.0.1:";
    const auto at = line_.find(marker);
    if (line_.rfind("serving ", 0) != 0 || at == std::string::npos) {
      throw std::runtime_error("unexpected first line of kiln serve: " + line_);
    }
    port_ = std::stoi(line_.substr(at + marker.size()));
    std::ifstream in(port_file);
    int written = -1;
    in >> written;
    if (written != port_) {
      throw std::runtime_error("the port file says " + std::to_string(written) +
                               ", the server printed " + line_);
    }
  }

  int port() const { return port_; }
  const std::string& first_line() const { return line_; }
  ChildProcess& process() { return *process_; }

  /// Waits (up to `timeout`) for the server to exit by itself; its exit code (or -signal),
  /// or the code after a SIGKILL when it did not exit in time.
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (process_->running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return process_->stop(SIGKILL, std::chrono::milliseconds(100));
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string line_;
  int port_ = -1;
};

/// A CSV without quoting (data/digits.csv): the header and the rows as numbers, without the
/// column `drop` (the label).
struct CsvRows {
  std::vector<std::string> header;
  std::vector<std::vector<double>> rows;
};

inline CsvRows read_csv_rows(const std::filesystem::path& file, const std::string& drop) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  const auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string cell; std::getline(s, cell, ',');) cells.push_back(cell);
    return cells;
  };
  std::string line;
  std::getline(in, line);
  const std::vector<std::string> names = split(line);
  CsvRows out;
  std::vector<bool> keep;
  for (const std::string& n : names) {
    keep.push_back(n != drop);
    if (n != drop) out.header.push_back(n);
  }
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line);
    std::vector<double> row;
    for (std::size_t i = 0; i < cells.size() && i < keep.size(); ++i) {
      if (keep[i]) row.push_back(std::stod(cells[i]));
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

/// {"instances": [rows[begin], ..., rows[end-1]]}
inline std::string instances_body(const std::vector<std::vector<double>>& rows, std::size_t begin,
                                  std::size_t end) {
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t i = begin; i < end && i < rows.size(); ++i) list.push_back(rows[i]);
  return nlohmann::json{{"instances", list}}.dump();
}

}  // namespace kiln_test
