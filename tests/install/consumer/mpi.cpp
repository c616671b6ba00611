// Uses Kiln::kiln_mpi of an installed Kiln (find_package(Kiln COMPONENTS mpi)): every rank
// adds rank + 1, and the sum must be size (size + 1) / 2 on every rank. Started without
// mpiexec it is a world of one rank.
#include <cstdio>
#include <vector>

#include "kiln/dist/mpi.hpp"

int main(int argc, char** argv) {
  kiln::dist::Communicator& world = kiln::dist::init(&argc, &argv);
  return kiln::dist::run_or_abort(world, [&] {
    std::vector<double> v = {world.rank() + 1.0};
    world.all_reduce_sum(std::span<double>(v));
    const double expected = world.size() * (world.size() + 1) / 2.0;
    std::printf("rank %d of %d: sum %g (expected %g)\n", world.rank(), world.size(), v[0],
                expected);
    return v[0] == expected ? 0 : 1;
  });
}
