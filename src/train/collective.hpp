// Internal: one outcome for every rank of a data-parallel job when only some ranks do a
// piece of work (rank 0 writing a checkpoint, recording a run).
#pragma once

#include <functional>

namespace kiln::dist {
class Communicator;
}  // namespace kiln::dist

namespace kiln::train {

/// Runs `work` (on rank 0 only when `rank0_only`, else on every rank) and then, with a
/// communicator, agrees on its outcome: when it threw a kiln::Error (or another
/// std::exception) on some rank, every rank throws the first failing rank's error, of the
/// same type (an IoError stays an IoError), its message prefixed by "rank R of N: " unless
/// R is 0. Without a communicator, `work` runs and what it throws propagates.
void run_collectively(dist::Communicator* comm, bool rank0_only, const std::function<void()>& work);

}  // namespace kiln::train
