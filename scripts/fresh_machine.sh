#!/usr/bin/env bash
# Runs the README's quick start on a clean Debian bookworm root, the closest thing to a new
# user's machine: a package that only this machine happens to have cannot hide there.
#
#   sudo scripts/fresh_machine.sh [PROJECT_DIR]        (default: this checkout)
#
# Makes (once, about 2 minutes, then reused) a debootstrap --variant=minbase root with
# build-essential, cmake, git and ca-certificates, copies it, clones PROJECT_DIR's committed
# HEAD into the copy, and runs each command of the README's "Quick start" sh blocks in a
# chroot, as a new user would type them. Prints each command's exit code, the demo's
# accuracy line and the test summary, and exits non-zero when a command fails or the demo's
# test_accuracy is below 0.96. Needs root, network access to the Debian mirror this machine
# uses, and about 30-40 minutes on 2 cores (everything builds from scratch).
# Environment: FRESH_ROOT (the reusable base root, default /tmp/kiln-fresh-root),
# KEEP=1 (keep the copied root for inspection; logs are always kept).
set -uo pipefail

# The whole script is one function, read before it runs: editing this file while a run is
# in progress (it takes half an hour) cannot change what the run does.
main() {

project="$(realpath "${1:-$(dirname "${BASH_SOURCE[0]}")/..}")"
base="${FRESH_ROOT:-/tmp/kiln-fresh-root}"
min_accuracy=0.96

if [[ "$(id -u)" != 0 ]]; then
  echo "fresh_machine: must run as root (debootstrap, chroot, mount)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
    { echo "fresh_machine: cannot install debootstrap" >&2; exit 2; }
fi
# The Debian mirror this machine already uses (first "debian" URI of its apt sources).
mirror=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
  2>/dev/null | head -n 1 | tr -d ' ')
if [[ -z "$mirror" ]]; then
  mirror=$(grep -rhoE '^URIs: *https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null |
    head -n 1 | sed 's/^URIs: *//')
fi
[[ -n "$mirror" ]] || { echo "fresh_machine: no Debian mirror in /etc/apt/sources*" >&2; exit 2; }

if [[ ! -x "$base/usr/bin/cmake" ]]; then
  echo "fresh_machine: making the base root in $base from $mirror"
  rm -rf "$base"
  mkdir -p "$base"
  if ! debootstrap --variant=minbase --include=build-essential,cmake,git,ca-certificates \
    bookworm "$base" "$mirror" >/tmp/kiln-debootstrap.log 2>&1; then
    echo "fresh_machine: debootstrap failed (log /tmp/kiln-debootstrap.log)" >&2
    rm -rf "$base"
    exit 2
  fi
fi

work=$(mktemp -d /tmp/kiln-fresh.XXXX)
root="$work/root"
cp -a "$base" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
git clone -q "$project" "$root/home/project" || { echo "fresh_machine: git clone failed" >&2; exit 2; }
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cleanup() {
  umount "$root/proc" "$root/dev" 2>/dev/null
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$root"; fi
}
trap cleanup EXIT

# The commands of the sh blocks in the README's "Quick start" section.
mapfile -t commands < <(awk '
  tolower($0) ~ /^#+ .*quick ?start/ { q = 1; next }
  q && /^#+ / && !inb { exit }
  q && /^```/ { if (inb) { inb = 0; next } if ($0 ~ /^```(sh|bash|shell|console)[ ]*$/) inb = 1; next }
  q && inb && NF && $0 !~ /^#/ { sub(/^\$ /, ""); print }' "$root/home/project/README.md")
echo "fresh_machine: $(git -C "$project" log -1 --format='%h %s'), ${#commands[@]} quick start commands"
[[ ${#commands[@]} -gt 0 ]] || { echo "fresh_machine: no quick start commands found" >&2; exit 2; }

status=0
i=0
for command in "${commands[@]}"; do
  i=$((i + 1))
  log="$work/command$i.log"
  start=$(date +%s)
  chroot "$root" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive bash -c "cd /home/project && $command" </dev/null >"$log" 2>&1
  rc=$?
  echo "command $i: rc=$rc in $(( $(date +%s) - start )) s: $command   (log $log)"
  [[ $rc == 0 ]] || status=1
  accuracy=$(grep -o 'test_accuracy=[0-9.]*' "$log" | tail -n 1)
  if [[ -n "$accuracy" ]]; then
    echo "  demo: $accuracy"
    if ! awk -v a="${accuracy#test_accuracy=}" -v m="$min_accuracy" 'BEGIN { exit !(a >= m) }'; then
      echo "  demo accuracy below $min_accuracy"
      status=1
    fi
  fi
  # Per preset: the summary, and whether the edge check (which needs the cross tools the
  # test command installs after the quick start configured) ran.
  grep -E 'tests passed|tests failed out of|Kiln: oneDNN|Test +#[0-9]+: edge\.aarch64' "$log" |
    sed -e 's/ \.\{4,\}/ /' -e 's/^/  /'
  [[ $rc == 0 ]] || tail -n 20 "$log" | sed 's/^/  | /'
done
echo "fresh_machine: $([[ $status == 0 ]] && echo PASSED || echo FAILED)"
exit $status
}

main "$@"
