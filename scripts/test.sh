#!/usr/bin/env bash
# Command 2 of the README: installs missing Debian packages (when run as root), then
# configures, builds and runs the whole test suite twice: the "default" preset (oneDNN
# kernels where found) and the "portable" preset (KILN_WITH_ONEDNN=OFF, no -march=native),
# so both kernel paths run the same op tests. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install_deps.sh --test

jobs="${KILN_JOBS:-$(nproc 2>/dev/null || echo 2)}"
export CMAKE_BUILD_PARALLEL_LEVEL="$jobs"
export CTEST_PARALLEL_LEVEL="$jobs"

for preset in default portable; do
  echo "==== kiln: ${preset} ===="
  cmake --workflow --preset "$preset"
done
echo "==== kiln: all tests passed (default and portable) ===="
