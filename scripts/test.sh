#!/usr/bin/env bash
# Command 2 of the README: installs missing Debian packages (when run as root), then
# configures, builds and runs the whole test suite three times: the "default" preset
# (oneDNN kernels), the "portable" preset (KILN_WITH_ONEDNN=OFF, no -march=native), so both
# kernel paths run the same op tests, and the "asan" preset (Debug, AddressSanitizer and
# UndefinedBehaviorSanitizer over every target: loaders, runtime, C API, examples).
# Exits non-zero on any failure. KILN_PRESETS="default portable" runs a subset.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install_deps.sh --test

# Open MPI's mpirun refuses to start as root unless told twice. CI and the fresh-machine
# check run as root; the "mpi" tests (mpirun -n 2 --oversubscribe) need it there. This is
# for the test suite only: it is not a way to run training jobs as root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

jobs="${KILN_JOBS:-$(nproc 2>/dev/null || echo 2)}"
export CMAKE_BUILD_PARALLEL_LEVEL="$jobs"
export CTEST_PARALLEL_LEVEL="$jobs"

for preset in ${KILN_PRESETS:-default portable asan}; do
  echo "==== kiln: ${preset} ===="
  # The serving load test (tests/cli_serve_load_test.cpp, label "load") holds its clients
  # for 60 s in the default preset and 10 s in the slower portable and asan builds.
  load_seconds=10
  [ "$preset" = default ] && load_seconds=60
  KILN_SERVE_LOAD_SECONDS="${KILN_SERVE_LOAD_SECONDS:-$load_seconds}" \
    cmake --workflow --preset "$preset"
done
echo "==== kiln: all tests passed (${KILN_PRESETS:-default portable asan}) ===="
