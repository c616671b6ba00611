// Kiln::kiln_mpi: the Communicator over MPI (Open MPI), for data-parallel training on a
// cluster. Link Kiln::kiln_mpi (find_package(Kiln COMPONENTS mpi)); the core libraries
// never depend on MPI.
//
//   int main(int argc, char** argv) {
//     kiln::dist::Communicator& world = kiln::dist::init(&argc, &argv);
//     return kiln::dist::run_or_abort(world, [&] {
//       ... build the graph, kiln::dist::DataParallel or TrainerOptions::communicator ...
//       return 0;
//     });
//   }
//
//   $ mpirun -np 4 ./train            # or: srun -n 4 ./train
//
// Failure behaviour. Every MPI call returns its error (MPI_ERRORS_RETURN) as a
// kiln::DistributedError naming the operation and the rank. run_or_abort turns an
// exception on any rank into an abort of the whole job with a message naming the rank;
// a rank that dies ends the job through the launcher (mpirun, srun); and a collective
// that does not complete within MpiOptions::timeout_seconds (a rank stuck, not dead)
// aborts the job with a message naming the operation, so no rank hangs.
#pragma once

#include <functional>
#include <string>

#include "kiln/dist/communicator.hpp"
#include "kiln/export.hpp"

namespace kiln::dist {

struct MpiOptions {
  /// A collective not complete after this long aborts the job (0: wait forever).
  double timeout_seconds = 300.0;
};

/// Initialises MPI once per process (MPI_THREAD_FUNNELED; later calls return the same
/// communicator) and returns MPI_COMM_WORLD's communicator. MPI is finalised at exit.
/// Throws DistributedError when MPI cannot start. A process not launched by mpirun/srun
/// runs as a world of one rank.
KILN_API Communicator& init(int* argc, char*** argv, const MpiOptions& options = {});

/// True when the process was started by an MPI launcher (mpirun, mpiexec, srun with PMI):
/// what `kiln train --distributed` checks before it calls init.
KILN_API bool launched_by_mpi();

/// Runs `body` and returns its exit code; when it throws, prints "kiln: rank R of N:
/// <what>" and aborts every rank (Communicator::abort with exit code 1) instead of leaving
/// the other ranks waiting in a collective.
KILN_API int run_or_abort(Communicator& comm, const std::function<int()>& body);

}  // namespace kiln::dist
