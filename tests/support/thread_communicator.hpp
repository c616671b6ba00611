// An in-process kiln::dist::Communicator: N ranks as N threads of one test program, so
// data-parallel code is tested without MPI.
//
//   kiln_test::run_ranks(2, [](kiln::dist::Communicator& comm) {
//     std::vector<float> g = {float(comm.rank())};
//     comm.all_reduce_sum(g);               // 1 on both ranks, the same bits
//   });
//
// How it behaves:
// - Every collective is a rendezvous of all ranks; the last rank to arrive checks that all
//   made the same call (operation, element count, root) and computes the result once (a
//   sum in rank order), which every rank then copies: all ranks get bitwise the same
//   result. A mismatch throws DistributedError on every rank.
// - start_all_reduce_sum only queues the request (like a real non-blocking collective, the
//   data is not reduced yet); test() performs the oldest queued one, wait() performs them
//   all up to the one asked for, and any blocking collective first performs all queued
//   ones, so every rank does the same reductions in the same order. Options::
//   deferred_requests = false reduces at start instead (Communicator's default).
// - abort() does not exit the process: it records the message and exit code in the group
//   (ThreadGroup::aborted) and throws kiln::DistributedError("kiln: rank R of N: message").
// - When a rank fails (its function throws, or it aborts), every other rank's pending and
//   later collectives throw DistributedError naming it, and a rank waiting longer than
//   Options::timeout throws too: a test never hangs.
// - run_ranks sets kiln::set_num_threads(1) on every rank's thread (one kernel thread per
//   rank, as with MPI on this machine).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/dist/communicator.hpp"

namespace kiln_test {

struct ThreadGroupOptions {
  /// Queue start_all_reduce_sum's requests until test/wait (see above).
  bool deferred_requests = true;
  /// How long a rank waits for the others in one collective before it throws.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

/// The state the ranks of one group share.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size, ThreadGroupOptions options = {})
      : size_(size), options_(options), slots_(static_cast<std::size_t>(size)) {
    if (size < 1) throw kiln::ValueError("ThreadGroup: size must be >= 1");
  }

  int size() const { return size_; }
  const ThreadGroupOptions& options() const { return options_; }

  /// Marks the group failed: every rank's pending and later collectives throw
  /// DistributedError with `why`. The first failure is kept.
  void fail(const std::string& why) {
    std::lock_guard lock(mutex_);
    if (failure_.empty()) failure_ = why;
    changed_.notify_all();
  }
  std::string failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

  /// Called when a rank's function returned: a collective that waits for it can never
  /// complete, so it fails instead.
  void finish(int rank) {
    fail("rank " + std::to_string(rank) + " returned while other ranks were in a collective");
    // fail() only matters to ranks that still call collectives; ranks that are done too
    // never look at it.
  }

  /// What abort() recorded: the message and exit code of the first rank that aborted.
  struct Abort {
    int rank;
    std::string message;
    int exit_code;
  };
  std::optional<Abort> aborted() const {
    std::lock_guard lock(mutex_);
    return aborted_;
  }
  void record_abort(int rank, const std::string& message, int exit_code) {
    {
      std::lock_guard lock(mutex_);
      if (!aborted_) aborted_ = Abort{rank, message, exit_code};
    }
    fail("rank " + std::to_string(rank) + " aborted: " + message);
  }

  /// Collective calls completed so far (each rendezvous counts once).
  std::uint64_t collectives() const {
    std::lock_guard lock(mutex_);
    return generation_;
  }

  enum class Op { sum_float, sum_double, broadcast, all_gather, barrier };

  /// One rank's part of a collective.
  struct Slot {
    Op op = Op::barrier;
    std::size_t count = 0;  ///< elements (bytes for broadcast and all_gather)
    int root = -1;
    const void* data = nullptr;
  };

  /// Waits for every rank's slot of the current collective; the last one to arrive checks
  /// them and computes the result; then `copy_out` runs (under the group's lock) to give
  /// this rank its part.
  void collective(int rank, const Slot& slot, const std::function<void(ThreadGroup&)>& copy_out) {
    std::unique_lock lock(mutex_);
    throw_if_failed(rank);
    slots_[static_cast<std::size_t>(rank)] = slot;
    const std::uint64_t generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      mismatch_ = check_slots();
      if (mismatch_.empty()) combine();
      ++generation_;
      changed_.notify_all();
    } else {
      const bool done = changed_.wait_for(
          lock, options_.timeout, [&] { return generation_ != generation || !failure_.empty(); });
      if (!done) {
        if (failure_.empty())
          failure_ = "rank " + std::to_string(rank) + " timed out in " + name(slot.op) +
                     " waiting for the other ranks";
        changed_.notify_all();
      }
      if (generation_ == generation) throw_if_failed(rank);
    }
    if (!mismatch_.empty()) throw kiln::DistributedError(mismatch_);
    copy_out(*this);
  }

  // Results of the latest collective (read in copy_out).
  std::vector<float> float_result;
  std::vector<double> double_result;
  std::vector<std::uint8_t> byte_result;
  std::vector<std::vector<std::uint8_t>> gathered;

 private:
  static const char* name(Op op) {
    switch (op) {
      case Op::sum_float:
        return "all_reduce_sum(float)";
      case Op::sum_double:
        return "all_reduce_sum(double)";
      case Op::broadcast:
        return "broadcast";
      case Op::all_gather:
        return "all_gather";
      case Op::barrier:
        return "barrier";
    }
    return "?";
  }

  void throw_if_failed(int rank) const {
    if (!failure_.empty())
      throw kiln::DistributedError("rank " + std::to_string(rank) + " of " + std::to_string(size_) +
                                   ": collective failed: " + failure_);
  }

  std::string check_slots() const {
    const Slot& first = slots_[0];
    for (int r = 1; r < size_; ++r) {
      const Slot& s = slots_[static_cast<std::size_t>(r)];
      const bool same_count = first.op == Op::all_gather || s.count == first.count;
      if (s.op != first.op || !same_count || s.root != first.root)
        return "mismatched collective: rank 0 called " + std::string(name(first.op)) + " with " +
               std::to_string(first.count) + " elements (root " + std::to_string(first.root) +
               "), rank " + std::to_string(r) + " called " + name(s.op) + " with " +
               std::to_string(s.count) + " elements (root " + std::to_string(s.root) + ")";
    }
    if (first.root >= size_)
      return "broadcast: root " + std::to_string(first.root) + " is not a rank";
    return {};
  }

  template <class T>
  void sum_into(std::vector<T>& out) {
    const std::size_t n = slots_[0].count;
    out.assign(n, T{0});
    for (int r = 0; r < size_; ++r) {  // rank order: one fixed rounding for everyone
      const T* in = static_cast<const T*>(slots_[static_cast<std::size_t>(r)].data);
      for (std::size_t i = 0; i < n; ++i) out[i] += in[i];
    }
  }

  void combine() {
    const Slot& first = slots_[0];
    switch (first.op) {
      case Op::sum_float:
        sum_into(float_result);
        break;
      case Op::sum_double:
        sum_into(double_result);
        break;
      case Op::broadcast: {
        const auto* in =
            static_cast<const std::uint8_t*>(slots_[static_cast<std::size_t>(first.root)].data);
        byte_result.assign(in, in + first.count);
        break;
      }
      case Op::all_gather:
        gathered.assign(static_cast<std::size_t>(size_), {});
        for (int r = 0; r < size_; ++r) {
          const Slot& s = slots_[static_cast<std::size_t>(r)];
          const auto* in = static_cast<const std::uint8_t*>(s.data);
          gathered[static_cast<std::size_t>(r)].assign(in, in + s.count);
        }
        break;
      case Op::barrier:
        break;
    }
  }

  int size_;
  ThreadGroupOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Slot> slots_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
  std::string mismatch_;
  std::string failure_;
  std::optional<Abort> aborted_;
};

/// One rank's communicator over a ThreadGroup (use it on that rank's thread only).
class ThreadCommunicator final : public kiln::dist::Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  ThreadGroup& group() { return *group_; }

  void all_reduce_sum(std::span<float> data) override {
    flush_requests();
    sum(data);
  }
  void all_reduce_sum(std::span<double> data) override {
    flush_requests();
    group_->collective(rank_, {ThreadGroup::Op::sum_double, data.size(), -1, data.data()},
                       [&](ThreadGroup& g) {
                         std::copy(g.double_result.begin(), g.double_result.end(), data.begin());
                       });
  }

  kiln::dist::RequestId start_all_reduce_sum(std::span<float> data) override {
    const kiln::dist::RequestId id = ++last_id_;
    if (group_->options().deferred_requests)
      queued_.push_back({id, data});
    else
      all_reduce_sum(data);
    return id;
  }
  bool test(kiln::dist::RequestId id) override {
    if (!queued_.empty()) {
      const Request r = queued_.front();
      queued_.pop_front();
      sum(r.data);
    }
    return !is_queued(id);
  }
  void wait(kiln::dist::RequestId id) override {
    while (is_queued(id)) {
      const Request r = queued_.front();
      queued_.pop_front();
      sum(r.data);
    }
  }

  void broadcast(std::span<std::uint8_t> data, int root) override {
    flush_requests();
    group_->collective(rank_, {ThreadGroup::Op::broadcast, data.size(), root, data.data()},
                       [&](ThreadGroup& g) {
                         std::copy(g.byte_result.begin(), g.byte_result.end(), data.begin());
                       });
  }
  std::vector<std::vector<std::uint8_t>> all_gather(std::span<const std::uint8_t> mine) override {
    flush_requests();
    std::vector<std::vector<std::uint8_t>> all;
    group_->collective(rank_, {ThreadGroup::Op::all_gather, mine.size(), -1, mine.data()},
                       [&](ThreadGroup& g) { all = g.gathered; });
    return all;
  }
  void barrier() override {
    flush_requests();
    group_->collective(rank_, {ThreadGroup::Op::barrier, 0, -1, nullptr}, [](ThreadGroup&) {});
  }

  /// Records the abort in the group (the other ranks' collectives then fail) and throws
  /// DistributedError("kiln: rank R of N: message") instead of ending the process.
  [[noreturn]] void abort(const std::string& message, int exit_code = 1) override {
    group_->record_abort(rank_, message, exit_code);
    throw kiln::DistributedError("kiln: rank " + std::to_string(rank_) + " of " +
                                 std::to_string(size()) + ": " + message);
  }

 private:
  struct Request {
    kiln::dist::RequestId id;
    std::span<float> data;
  };

  void sum(std::span<float> data) {
    group_->collective(rank_, {ThreadGroup::Op::sum_float, data.size(), -1, data.data()},
                       [&](ThreadGroup& g) {
                         std::copy(g.float_result.begin(), g.float_result.end(), data.begin());
                       });
  }
  bool is_queued(kiln::dist::RequestId id) const {
    return std::any_of(queued_.begin(), queued_.end(),
                       [&](const Request& r) { return r.id == id; });
  }
  void flush_requests() {
    while (!queued_.empty()) {
      const Request r = queued_.front();
      queued_.pop_front();
      sum(r.data);
    }
  }

  std::shared_ptr<ThreadGroup> group_;
  int rank_;
  kiln::dist::RequestId last_id_ = 0;
  std::deque<Request> queued_;
};

/// Runs fn(communicator) for ranks 0..n-1 on n threads and returns each rank's exception
/// (null when it returned normally). A rank that throws fails the group, so the others'
/// collectives throw instead of waiting for it.
inline std::vector<std::exception_ptr> run_ranks_collect(
    int n, const std::function<void(kiln::dist::Communicator&)>& fn,
    ThreadGroupOptions options = {}) {
  auto group = std::make_shared<ThreadGroup>(n, options);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        kiln::set_num_threads(1);
        ThreadCommunicator comm(group, r);
        fn(comm);
        group->finish(r);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
        group->fail("rank " + std::to_string(r) + " failed: " + e.what());
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
        group->fail("rank " + std::to_string(r) + " failed");
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return errors;
}

/// Runs fn on n rank threads (run_ranks_collect) and rethrows the exception of the rank
/// that failed first (the cause; the others' are usually "rank R failed" follow-ups).
inline void run_ranks(int n, const std::function<void(kiln::dist::Communicator&)>& fn,
                      ThreadGroupOptions options = {}) {
  std::mutex first_mutex;
  std::exception_ptr first;
  const auto errors = run_ranks_collect(
      n,
      [&](kiln::dist::Communicator& comm) {
        try {
          fn(comm);
        } catch (...) {
          std::lock_guard lock(first_mutex);
          if (!first) first = std::current_exception();
          throw;
        }
      },
      options);
  if (first) std::rethrow_exception(first);
}

}  // namespace kiln_test
