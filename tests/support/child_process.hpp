// A child process for tests: a program started with posix_spawn whose stdout the test
// reads line by line (with a timeout), stopped with a signal and always reaped (the
// destructor sends SIGTERM, then SIGKILL after a grace period, and waits: no zombie).
//
//   kiln_test::ChildProcess board({KILN_CLI, "board", dir, "--port", "0"});
//   std::string first = board.read_line(std::chrono::seconds(10));
//   int status = board.stop();        // SIGTERM; the exit code, or -signal
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kiln_test {

class ChildProcess {
 public:
  /// Starts argv[0] (a path) with the given arguments. With capture_stdout the child's
  /// stdout is a pipe read by read_line(); otherwise it goes to /dev/null. stderr is the
  /// test's own (so a failing child explains itself in the test log) unless quiet.
  explicit ChildProcess(const std::vector<std::string>& argv, bool capture_stdout = true,
                        bool quiet = false) {
    if (argv.empty()) throw std::invalid_argument("ChildProcess: no program");
    int pipe_fds[2] = {-1, -1};
    if (capture_stdout && ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (capture_stdout) {
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    if (quiet) posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (capture_stdout) {
      ::close(pipe_fds[1]);
      out_fd_ = pipe_fds[0];
    }
    if (rc != 0) {
      if (out_fd_ >= 0) ::close(out_fd_);
      out_fd_ = -1;
      pid_ = -1;
      throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    stop();
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  pid_t pid() const { return pid_; }

  /// Whether the child has not exited yet (reaps it when it has).
  bool running() {
    if (pid_ < 0) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = decode(status);
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// The next line of the child's stdout (without the newline). Throws std::runtime_error
  /// when the child closes stdout (exits) or the timeout passes first.
  std::string read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const std::size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (out_fd_ < 0) throw std::runtime_error("ChildProcess: stdout is not captured");
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        throw std::runtime_error("no line from the child within the timeout (so far: \"" + buffer_ +
                                 "\")");
      }
      pollfd p{out_fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      char chunk[4096];
      const ssize_t got = ::read(out_fd_, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        throw std::runtime_error(
            "the child closed its stdout (exited) before a full line (so far: \"" + buffer_ +
            "\")");
      }
      buffer_.append(chunk, static_cast<std::size_t>(got));
    }
  }

  /// Everything the child writes to stdout until it closes it (exits), appended to `out`.
  /// Returns false when the timeout passes first (the child is still running then).
  bool read_all(std::string& out, std::chrono::milliseconds timeout) {
    if (out_fd_ < 0) throw std::runtime_error("ChildProcess: stdout is not captured");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    out += buffer_;
    buffer_.clear();
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{out_fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n <= 0) continue;
      char chunk[4096];
      const ssize_t got = ::read(out_fd_, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return true;
      out.append(chunk, static_cast<std::size_t>(got));
    }
  }

  /// Sends `sig`, waits up to `grace` for the child to exit, then kills it. Returns its
  /// exit code, or minus the signal that ended it (-1 when already stopped and reaped
  /// before without a status).
  int stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds(5)) {
    if (pid_ < 0) return status_;
    ::kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    int status = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    status_ = decode(status);
    pid_ = -1;
    return status_;
  }

 private:
  static int decode(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return -1;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int status_ = -1;
  std::string buffer_;
};

}  // namespace kiln_test
