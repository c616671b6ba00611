#!/usr/bin/env bash
# Checks that the Debian packages Kiln builds with are installed. Run as root, it installs
# the missing ones with apt-get; otherwise it prints the exact apt-get line and exits 1.
# Used by scripts/quickstart.sh and scripts/test.sh.
set -euo pipefail

packages=(cmake ninja-build g++ ccache libeigen3-dev libdnnl-dev ocl-icd-opencl-dev libcereal-dev
          libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libfast-float-dev
          libstb-dev pkgconf libcpp-httplib-dev libsqlite3-dev libopenmpi-dev openmpi-bin)
# With --test: what the test suite needs beyond the build: clang for the loader fuzzer,
# the aarch64 cross compiler and qemu for the edge check (aarch64 vs x86 outputs),
# clang-format for the formatting check, and Chromium with its WebDriver for the browser
# tests (the report and the live board in headless Chromium, with a font for its text;
# netbase writes the /etc/hosts that makes "localhost" resolve, which chromedriver uses to
# reach Chromium: a minimal root such as debootstrap's minbase has none).
if [ "${1:-}" = "--test" ]; then
  packages+=(clang-14 libclang-rt-14-dev g++-aarch64-linux-gnu qemu-user clang-format
             chromium chromium-driver fonts-dejavu-core netbase)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "kiln: not a Debian-based system; make sure these (or their equivalents) are installed:" >&2
  echo "  ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  echo "kiln: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "kiln: missing Debian packages. Install them with:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
