#!/usr/bin/env bash
# Cross-builds Kiln for aarch64 Linux (Eigen and reference kernels, no oneDNN) and runs its
# tests and examples under qemu-aarch64, then measures the stripped shared libkiln_infer
# for aarch64 and x86_64. One command:
#   scripts/cross_aarch64.sh [OUT_DIR]          (default: build)
# builds in OUT_DIR/aarch64-googletest (GoogleTest for the target, from Debian's sources
# in /usr/src/googletest), OUT_DIR/aarch64 (what `cmake --preset aarch64` configures when
# OUT_DIR is build), OUT_DIR/aarch64-shared and OUT_DIR/x86_64-shared (size checks).
# Installs g++-aarch64-linux-gnu, qemu-user and googletest first when run as root and they
# are missing. Environment: JOBS (default 2), KILN_CTEST_ARGS (extra ctest arguments, e.g.
# "-L unit"), KILN_CMAKE_ARGS (extra configure arguments for the Kiln builds).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-${root}/build}")"
jobs="${JOBS:-2}"
toolchain="${root}/cmake/toolchains/aarch64-linux-gnu.cmake"

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null ||
  [[ ! -f /usr/src/googletest/CMakeLists.txt ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++-aarch64-linux-gnu qemu-user googletest
  else
    echo "error: needs g++-aarch64-linux-gnu, qemu-user and googletest (run as root to install)" >&2
    exit 1
  fi
fi

# 1. GoogleTest for the target.
gtest="${out}/aarch64-googletest"
if [[ ! -f "${gtest}/install/lib/cmake/GTest/GTestConfig.cmake" ]]; then
  cmake -S /usr/src/googletest -B "${gtest}/build" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="${toolchain}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="${gtest}/install" -DBUILD_GMOCK=OFF -DINSTALL_GTEST=ON
  cmake --build "${gtest}/build" -j "${jobs}"
  cmake --install "${gtest}/build"
fi

# 2. Kiln (static) with its tests and examples; ctest runs them through qemu
#    (CMAKE_CROSSCOMPILING_EMULATOR, set by the toolchain file). Same settings as the
#    aarch64 preset.
# shellcheck disable=SC2086
cmake -S "${root}" -B "${out}/aarch64" -G Ninja \
  -DCMAKE_TOOLCHAIN_FILE="${toolchain}" -DCMAKE_BUILD_TYPE=Release \
  -DKILN_WITH_ONEDNN=OFF -DKILN_WERROR=ON -DKILN_BUILD_TESTS=ON -DKILN_BUILD_EXAMPLES=ON \
  -DKILN_BUILD_BENCHMARKS=OFF -DKILN_INSTALL=OFF \
  -DGTest_DIR="${gtest}/install/lib/cmake/GTest" -DCMAKE_FIND_ROOT_PATH="${gtest}/install" \
  ${KILN_CMAKE_ARGS:-}
cmake --build "${out}/aarch64" -j "${jobs}"
# shellcheck disable=SC2086
(cd "${out}/aarch64" && ctest --output-on-failure -j "${jobs}" ${KILN_CTEST_ARGS:-})

# 3. The stripped shared libkiln_infer without oneDNN, for aarch64 and for x86_64 (no
#    -march flags), each checked against 1.5 MB (1,500,000 bytes), and its exported
#    symbols against the allow-list (tests/symbols/kiln_infer.allowed).
size_check() {  # ARCH STRIP NM [configure arguments...]
  local arch="$1" strip="$2" nm="$3" dir="${out}/$1-shared" lib
  shift 3
  # shellcheck disable=SC2086
  cmake -S "${root}" -B "${dir}" -G Ninja "$@" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON -DKILN_WITH_ONEDNN=OFF -DKILN_ARCH_FLAGS= -DKILN_WERROR=ON \
    -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCHMARKS=OFF \
    ${KILN_CMAKE_ARGS:-}
  cmake --build "${dir}" --target kiln_infer -j "${jobs}"
  lib="$(find "${dir}/src" -name 'libkiln_infer.so.*.*' | head -n 1)"
  cmake -DLIB="${lib}" -DSTRIP="${strip}" -DMAX_BYTES=1500000 \
    -DOUT="${dir}/libkiln_infer.stripped.so" -P "${root}/bindings/c/check_size.cmake"
  cmake -DNM="${nm}" -DLIB="${lib}" -DALLOWED="${root}/tests/symbols/kiln_infer.allowed" \
    -P "${root}/tests/symbols/check_exports.cmake"
}
size_check aarch64 aarch64-linux-gnu-strip aarch64-linux-gnu-nm \
  -DCMAKE_TOOLCHAIN_FILE="${toolchain}"
if [[ "$(uname -m)" == x86_64 ]]; then
  size_check x86_64 strip nm
fi
