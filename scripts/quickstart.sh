#!/usr/bin/env bash
# Command 1 of the README: installs missing Debian packages (when run as root), configures
# and builds Kiln with the "default" preset, and trains the digits demo. The demo's last
# line is test_accuracy=<value>.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install_deps.sh

jobs="${KILN_JOBS:-$(nproc 2>/dev/null || echo 2)}"
cmake --preset default
cmake --build --preset default --parallel "$jobs" --target train_digits_mlp
exec ./build/default/examples/train_digits_mlp data/digits.csv
