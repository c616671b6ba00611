// Communicator: the collective operations data-parallel training needs (sum, broadcast,
// gather, barrier, abort), as an interface with no MPI in it. libkiln trains through it
// (kiln::dist::DataParallel, TrainerOptions::communicator); Kiln::kiln_mpi implements it
// over MPI (kiln/dist/mpi.hpp), and a test can implement it over threads.
//
//   kiln::dist::Communicator& world = kiln::dist::init(&argc, &argv);   // kiln_mpi
//   std::vector<float> g = ...;
//   world.all_reduce_sum(g);              // every rank now holds the sum, the same bits
//
// Every call is collective: every rank of the group makes the same calls in the same
// order with the same sizes (a mismatch is the caller's bug; an MPI communicator detects
// some and throws DistributedError, others hang until its timeout aborts the job).
// Failures throw kiln::DistributedError naming the operation and the rank.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/export.hpp"

namespace kiln {
class Graph;
}

namespace kiln::dist {

/// A handle of a non-blocking reduction (Communicator::start_all_reduce_sum).
using RequestId = std::uint64_t;

class KILN_API Communicator {
 public:
  virtual ~Communicator();

  /// This process's rank in [0, size()).
  virtual int rank() const = 0;
  /// The number of ranks.
  virtual int size() const = 0;

  /// Element-wise sum over all ranks, in place. Every rank gets bitwise the same result.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  /// Starts a sum of `data` in place without waiting for it; `data` must stay alive and
  /// untouched until wait(id) (or a test(id) that returned true). The default does the
  /// blocking sum now. Requests complete in any order; every started one must be waited.
  virtual RequestId start_all_reduce_sum(std::span<float> data);
  /// Lets pending requests progress; true when `id` is complete (then it is released).
  virtual bool test(RequestId id);
  /// Waits until `id` is complete (then it is released).
  virtual void wait(RequestId id);

  /// Copies `root`'s bytes into every rank's `data` (all ranks pass the same size).
  virtual void broadcast(std::span<std::uint8_t> data, int root) = 0;
  /// Every rank's bytes (any sizes), in rank order, on every rank.
  virtual std::vector<std::vector<std::uint8_t>> all_gather(std::span<const std::uint8_t> mine) = 0;
  virtual void barrier() = 0;

  /// Ends the job on every rank: prints "kiln: rank R of N: <message>" to stderr, then
  /// stops all ranks with `exit_code` (MPI_Abort). Never returns.
  [[noreturn]] virtual void abort(const std::string& message, int exit_code = 1) = 0;
};

/// Broadcasts a byte vector of any size from `root` (its size first); `bytes` is resized
/// on the other ranks.
KILN_API void broadcast_bytes(Communicator& comm, std::vector<std::uint8_t>& bytes, int root = 0);

/// A checksum of every parameter and buffer of `graph` (names, shapes, dtypes and bytes).
KILN_API std::uint64_t parameter_checksum(const Graph& graph);

/// Copies every parameter and buffer of `graph` from rank 0 to all ranks, then checks that
/// the checksums agree (verify_parameters). Throws DistributedError naming the ranks whose
/// graph differs in names or shapes.
KILN_API void broadcast_parameters(Communicator& comm, Graph& graph);
/// Throws DistributedError naming the ranks whose parameters and buffers differ from rank
/// 0's (by parameter_checksum).
KILN_API void verify_parameters(Communicator& comm, const Graph& graph);

/// Replaces every floating-point buffer of `graph` (batch norm's running statistics) by
/// its mean over the ranks.
KILN_API void average_buffers(Communicator& comm, Graph& graph);

}  // namespace kiln::dist
