// read_file and write_file_atomically (POSIX: temp file, fsync, rename, fsync of the folder).
//
// Temp files are "<file>.tmp.<pid>.<n>". A process killed mid-save leaves its temp file
// behind; every save first removes those of the same target whose process is gone (kill(pid, 0)
// fails with ESRCH), so at most the temp files of live writers and of the latest killed one
// exist. (A writer in another PID namespace sharing the folder looks dead from here: do not
// let processes of different containers save the same file.)
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {
namespace {

[[noreturn]] void io_error(const std::string& path, const std::string& what, int err) {
  std::string msg = path;
  msg += ": ";
  msg += what;
  if (err != 0) {
    msg += ": ";
    msg += std::strerror(err);
  }
  throw IoError(msg);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string folder_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The writer's pid of a temp file name "<target>.tmp.<pid>.<n>" (target gets its part), or
// -1 for any other name.
long temp_file_pid(std::string_view name, std::string_view& target) {
  const auto at = name.rfind(".tmp.");
  if (at == std::string_view::npos || at == 0) return -1;
  target = name.substr(0, at);
  const char* p = name.data() + at + 5;
  const char* const end = name.data() + name.size();
  long pid = 0;
  int digits = 0;
  for (; p != end && *p >= '0' && *p <= '9'; ++p, ++digits) {
    if (digits == 10) return -1;
    pid = pid * 10 + (*p - '0');
  }
  if (digits == 0 || p == end || *p != '.' || pid <= 0 || pid > INT_MAX) return -1;
  ++p;
  digits = 0;
  for (; p != end && *p >= '0' && *p <= '9'; ++p) ++digits;
  return digits > 0 && digits <= 20 && p == end ? pid : -1;
}

}  // namespace

void remove_stale_temp_files(const std::string& folder,
                             const std::function<bool(std::string_view target)>& of_target) {
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) return;
  const long self = static_cast<long>(::getpid());
  while (const dirent* e = ::readdir(dir)) {
    std::string_view target;
    const long pid = temp_file_pid(e->d_name, target);
    if (pid <= 0 || pid == self || !of_target(target)) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or unsure
    std::string stale = folder;
    stale += '/';
    stale += e->d_name;
    ::unlink(stale.c_str());
  }
  ::closedir(dir);
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) io_error(path, "cannot open for reading", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) io_error(path, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) io_error(path, "not a regular file", 0);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) io_error(path, "read failed", errno);
    if (n == 0) io_error(path, "file shrank while being read", 0);
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

void write_file_atomically(const std::string& path, std::span<const std::uint8_t> bytes) {
  // First, so that a writer killed before it completes any save still cleans up after the
  // one killed before it, and the space is free before this save needs it.
  const std::string base = base_of(path);
  remove_stale_temp_files(folder_of(path), [&](std::string_view target) { return target == base; });
  static std::atomic<unsigned> counter{0};
  std::string temp = path;
  temp += ".tmp.";
  temp += std::to_string(::getpid());
  temp += ".";
  temp += std::to_string(counter++);
  Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) io_error(path, "cannot create temporary file '" + temp + "'", errno);
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd.release());
    ::unlink(temp.c_str());
    io_error(path, what, err);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write failed");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) fail("fsync failed");
  if (::close(fd.release()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    io_error(path, "close failed", err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    io_error(path, "cannot rename the temporary file into place", err);
  }
  Fd dir(::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() >= 0) ::fsync(dir.get());  // best effort: some file systems refuse it
}

}  // namespace kiln::internal
