// Kiln::kiln_mpi: kiln::dist::Communicator over MPI's C interface. Every collective is
// non-blocking underneath (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgatherv, MPI_Ibarrier) and
// completed by a test loop, so a collective that does not finish within
// MpiOptions::timeout_seconds aborts the job instead of hanging. The loop yields, then
// sleeps briefly, so ranks oversubscribing a small machine leave each other the cores.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/dist/mpi.hpp"

namespace kiln::dist {
namespace {

// MPI counts are ints: larger buffers go in chunks of this many elements.
constexpr std::size_t max_chunk = std::size_t{1} << 30;

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) {
    return "MPI error " + std::to_string(code);
  }
  return std::string(text, static_cast<std::size_t>(length));
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", s);
  return text;
}

// Prints "kiln: rank R of N: <message>" in one write and flushes stdout and stderr, so the
// line survives the kill that follows.
void print_rank_message(int rank, int size, const std::string& message) {
  std::fflush(stdout);
  const std::string line =
      "kiln: rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " + message + "\n";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, const MpiOptions& options) : comm_(comm), options_(options) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override = default;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(std::span<float> data) override {
    std::vector<MPI_Request> requests = start_sum(data.data(), data.size(), MPI_FLOAT);
    complete(requests, "all_reduce_sum", Clock::now());
  }
  void all_reduce_sum(std::span<double> data) override {
    std::vector<MPI_Request> requests = start_sum(data.data(), data.size(), MPI_DOUBLE);
    complete(requests, "all_reduce_sum", Clock::now());
  }

  RequestId start_all_reduce_sum(std::span<float> data) override {
    const RequestId id = next_id_++;
    pending_.emplace(id, Pending{start_sum(data.data(), data.size(), MPI_FLOAT), Clock::now()});
    return id;
  }

  bool test(RequestId id) override {
    Pending& p = find(id, "test");
    if (!test_all(p.requests, "all_reduce_sum (test)")) {
      check_deadline(p.started, "all_reduce_sum (test)");
      return false;
    }
    pending_.erase(id);
    return true;
  }

  void wait(RequestId id) override {
    Pending& p = find(id, "wait");
    complete(p.requests, "all_reduce_sum (wait)", p.started);
    pending_.erase(id);
  }

  void broadcast(std::span<std::uint8_t> data, int root) override {
    if (root < 0 || root >= size_) {
      throw DistributedError(where("broadcast") + ": root " + std::to_string(root) +
                             " is not a rank of 0.." + std::to_string(size_ - 1));
    }
    std::vector<MPI_Request> requests;
    for (std::size_t at = 0; at < data.size() || (at == 0 && data.empty()); at += max_chunk) {
      const int n = static_cast<int>(std::min(max_chunk, data.size() - at));
      requests.emplace_back();
      check(MPI_Ibcast(data.data() + at, n, MPI_BYTE, root, comm_, &requests.back()), "broadcast",
            "MPI_Ibcast");
      if (data.empty()) break;
    }
    complete(requests, "broadcast", Clock::now());
  }

  std::vector<std::vector<std::uint8_t>> all_gather(std::span<const std::uint8_t> mine) override {
    const auto start = Clock::now();
    // The sizes first, so every rank can place every other rank's bytes.
    std::vector<long long> sizes(static_cast<std::size_t>(size_));
    long long my_size = static_cast<long long>(mine.size());
    std::vector<MPI_Request> requests(1);
    check(MPI_Iallgather(&my_size, 1, MPI_LONG_LONG, sizes.data(), 1, MPI_LONG_LONG, comm_,
                         &requests[0]),
          "all_gather", "MPI_Iallgather");
    complete(requests, "all_gather", start);

    std::vector<int> counts(sizes.size()), offsets(sizes.size());
    long long total = 0;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      counts[r] = static_cast<int>(sizes[r]);
      total += sizes[r];
      if (sizes[r] < 0 || total > INT_MAX) {
        throw DistributedError(where("all_gather") + ": " + std::to_string(total) +
                               " bytes in all exceed MPI's int counts (2^31 - 1)");
      }
    }
    std::vector<std::uint8_t> all(static_cast<std::size_t>(total));
    check(MPI_Iallgatherv(mine.data(), counts[static_cast<std::size_t>(rank_)], MPI_BYTE,
                          all.data(), counts.data(), offsets.data(), MPI_BYTE, comm_, &requests[0]),
          "all_gather", "MPI_Iallgatherv");
    complete(requests, "all_gather", start);

    std::vector<std::vector<std::uint8_t>> out(sizes.size());
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      out[r].assign(all.begin() + offsets[r], all.begin() + offsets[r] + counts[r]);
    }
    return out;
  }

  void barrier() override {
    std::vector<MPI_Request> requests(1);
    check(MPI_Ibarrier(comm_, &requests[0]), "barrier", "MPI_Ibarrier");
    complete(requests, "barrier", Clock::now());
  }

  [[noreturn]] void abort(const std::string& message, int exit_code) override {
    print_rank_message(rank_, size_, message);
    MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; this only keeps [[noreturn]] true
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    std::vector<MPI_Request> requests;
    Clock::time_point started;
  };

  std::string where(const char* op) const {
    return std::string(op) + " on rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }

  void check(int rc, const char* op, const char* call) const {
    if (rc != MPI_SUCCESS) {
      throw DistributedError(where(op) + ": " + call + " failed: " + mpi_error_string(rc));
    }
  }

  template <class T>
  std::vector<MPI_Request> start_sum(T* data, std::size_t count, MPI_Datatype type) {
    std::vector<MPI_Request> requests;
    // An empty sum is still a collective: every rank makes the same call.
    for (std::size_t at = 0; at < count || (at == 0 && count == 0); at += max_chunk) {
      const int n = static_cast<int>(std::min(max_chunk, count - at));
      requests.emplace_back();
      const int rc =
          MPI_Iallreduce(MPI_IN_PLACE, data + at, n, type, MPI_SUM, comm_, &requests.back());
      if (rc != MPI_SUCCESS) {
        requests.pop_back();
        complete(requests, "all_reduce_sum", Clock::now());  // no request left behind
        check(rc, "all_reduce_sum", "MPI_Iallreduce");
      }
      if (count == 0) break;
    }
    return requests;
  }

  // True when every request is complete (they are then MPI_REQUEST_NULL).
  bool test_all(std::vector<MPI_Request>& requests, const char* op) {
    int done = 0;
    check(
        MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE),
        op, "MPI_Testall");
    return done != 0;
  }

  void check_deadline(Clock::time_point started, const char* op) {
    if (options_.timeout_seconds <= 0.0) return;
    const double waited = std::chrono::duration<double>(Clock::now() - started).count();
    if (waited > options_.timeout_seconds) {
      abort(std::string(op) + " did not complete within the timeout of " +
                format_seconds(options_.timeout_seconds) +
                " s (MpiOptions::timeout_seconds): another rank is stuck or gone; aborting the job",
            1);
    }
  }

  // Tests until every request is complete: spins with yields first (a reduction of a few
  // kilobytes takes microseconds), then sleeps 100 us between tests.
  void complete(std::vector<MPI_Request>& requests, const char* op, Clock::time_point started) {
    if (requests.empty()) return;
    for (int spins = 0;; ++spins) {
      if (test_all(requests, op)) return;
      check_deadline(started, op);
      if (spins < 200) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
  }

  Pending& find(RequestId id, const char* call) {
    const auto it = pending_.find(id);
    if (it == pending_.end()) {
      throw DistributedError(where(call) + ": request " + std::to_string(id) +
                             " is not pending (never started, or already complete)");
    }
    return it->second;
  }

  MPI_Comm comm_;
  MpiOptions options_;
  int rank_ = 0;
  int size_ = 1;
  RequestId next_id_ = 1;
  std::unordered_map<RequestId, Pending> pending_;
};

// A process not started by an MPI launcher: a world of one rank, without MPI.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(std::span<float>) override {}
  void all_reduce_sum(std::span<double>) override {}
  // The sum over one rank is complete at once; ids are still tracked, so a request
  // waited twice is the same error as with MPI.
  RequestId start_all_reduce_sum(std::span<float>) override {
    pending_.insert(next_id_);
    return next_id_++;
  }
  bool test(RequestId id) override {
    release(id, "test");
    return true;
  }
  void wait(RequestId id) override { release(id, "wait"); }
  void broadcast(std::span<std::uint8_t>, int root) override {
    if (root != 0) {
      throw DistributedError("broadcast on rank 0 of 1: root " + std::to_string(root) +
                             " is not a rank of 0..0");
    }
  }
  std::vector<std::vector<std::uint8_t>> all_gather(std::span<const std::uint8_t> mine) override {
    return {std::vector<std::uint8_t>(mine.begin(), mine.end())};
  }
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message, int exit_code) override {
    print_rank_message(0, 1, message);
    std::_Exit(exit_code);
  }

 private:
  void release(RequestId id, const char* call) {
    if (pending_.erase(id) == 0) {
      throw DistributedError(std::string(call) + " on rank 0 of 1: request " + std::to_string(id) +
                             " is not pending (never started, or already complete)");
    }
  }

  RequestId next_id_ = 1;
  std::unordered_set<RequestId> pending_;
};

struct World {
  std::mutex mutex;
  std::unique_ptr<Communicator> comm;
  MPI_Comm mpi_comm = MPI_COMM_NULL;
  bool initialized_mpi = false;
};

World& world() {
  static World w;
  return w;
}

// At exit: frees the duplicated communicator and finalises MPI if init started it.
void finalize_mpi() {
  World& w = world();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (w.mpi_comm != MPI_COMM_NULL) MPI_Comm_free(&w.mpi_comm);
  if (w.initialized_mpi) MPI_Finalize();
}

}  // namespace

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx launchers (Open MPI 5, srun --mpi=pmix), MPICH's Hydra and PMI-1/2
  // (srun --mpi=pmi2), MVAPICH, and Slurm's srun itself.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                           "MV2_COMM_WORLD_SIZE", "SLURM_PROCID"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

Communicator& init(int* argc, char*** argv, const MpiOptions& options) {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  if (w.comm) return *w.comm;
  if (!(options.timeout_seconds >= 0.0)) {
    throw ValueError(
        "kiln::dist::init: MpiOptions::timeout_seconds must be >= 0 (0: no timeout), not " +
        format_seconds(options.timeout_seconds));
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && !launched_by_mpi()) {
    w.comm = std::make_unique<SelfCommunicator>();
    return *w.comm;
  }
  if (!initialized) {
    int provided = 0;
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
      throw DistributedError("kiln::dist::init: MPI_Init_thread failed: " + mpi_error_string(rc));
    }
    w.initialized_mpi = true;
    std::atexit(finalize_mpi);
    if (provided < MPI_THREAD_FUNNELED) {
      throw DistributedError(
          "kiln::dist::init: MPI gives thread level " + std::to_string(provided) +
          ", Kiln needs MPI_THREAD_FUNNELED (the kernels' threads never call MPI, the main "
          "thread does)");
    }
  } else if (!w.initialized_mpi) {
    std::atexit(finalize_mpi);  // MPI started by the application: only our communicator is freed
  }
  MPI_Comm comm = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    throw DistributedError("kiln::dist::init: duplicating MPI_COMM_WORLD failed: " +
                           mpi_error_string(rc));
  }
  w.mpi_comm = comm;
  w.comm = std::make_unique<MpiCommunicator>(comm, options);
  return *w.comm;
}

int run_or_abort(Communicator& comm, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    comm.abort(e.what(), 1);
  } catch (...) {
    comm.abort("an exception that is not a std::exception", 1);
  }
  return 1;  // not reached: abort does not return (a virtual call's [[noreturn]] is not seen)
}

}  // namespace kiln::dist
