#!/bin/sh
# Runs compare_libtorch (Kiln and libtorch on W1, W2 and W4) at 1 and 2 threads, REPS times
# each, alternating the libraries within every run; prints the medians and the
# kiln/libtorch ratios as a table and rewrites that table in benchmarks/RESULTS.md (between
# the "compare:begin" and "compare:end" markers) with the machine, date, compiler and load.
#
#   benchmarks/compare/run.sh [-b build-dir] [-r reps] [-t min-time-seconds] [-n]
#     -b  build directory holding benchmarks/compare/compare_libtorch (default: build/default)
#     -r  repetitions: separate runs of the binary per thread count (default 5)
#     -t  Google Benchmark minimum time per benchmark (default 1)
#     -n  print only; leave RESULTS.md alone
#
# Threads: each run exports OMP_NUM_THREADS and OPENBLAS_NUM_THREADS equal to the thread
# count; inside, both libraries are set to it explicitly and libtorch's inter-op pool to 1.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build/default"
reps=5
min_time=1
update=1
while getopts b:r:t:n opt; do
  case $opt in
    b) build=$(cd "$OPTARG" && pwd) ;;
    r) reps=$OPTARG ;;
    t) min_time=$OPTARG ;;
    n) update=0 ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
  esac
done
bin="$build/benchmarks/compare/compare_libtorch"
if [ ! -x "$bin" ]; then
  echo "run.sh: $bin not found (configure with libtorch installed and build compare_libtorch)" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
r=1
while [ "$r" -le "$reps" ]; do
  for t in 1 2; do
    echo "run.sh: repetition $r/$reps, $t thread(s)" >&2
    OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$bin" \
      --benchmark_filter="threads:$t/" --benchmark_min_time="$min_time" \
      --benchmark_format=json --benchmark_out_format=json \
      --benchmark_out="$out/run_${r}_$t.json" >/dev/null
  done
  r=$((r + 1))
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
compiler_version=$("${compiler:-c++}" --version | head -n 1)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
arch_flags=$(sed -n 's/^KILN_ARCH_FLAGS:[A-Z]*=//p' "$build/CMakeCache.txt")
onednn=$(sed -n 's/^KILN_WITH_ONEDNN:[A-Z]*=//p' "$build/CMakeCache.txt")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
model=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
isa=$(grep -q avx512f /proc/cpuinfo && echo AVX-512 || (grep -q avx2 /proc/cpuinfo && echo AVX2 || echo "no AVX2"))
cores=$(nproc)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || uname -sr)
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
# OpenBLAS names the kernel set it picked for this CPU when asked.
blas_core=$(OPENBLAS_VERBOSE=2 "$bin" --benchmark_list_tests 2>&1 | sed -n 's/^Core: //p' | head -n 1)
[ -n "$blas_core" ] && blas="$blas, OpenBLAS kernels for $blas_core"

/usr/bin/python3 - "$out" "$root/benchmarks/RESULTS.md" "$update" <<PY
import glob, json, statistics, sys, datetime
out, results, update = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
rates = {}
for path in sorted(glob.glob(out + "/run_*.json")):
    for b in json.load(open(path))["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit("run.sh: %s failed: %s" % (b["name"], b.get("error_message")))
        workload, lib, threads = b["name"].split("/")[:3]
        key = (workload, int(threads.split(":")[1]))
        rates.setdefault(key, {}).setdefault(lib, []).append(b["items_per_second"])

floors = {("W2_cnn_train", 1): 1.3, ("W4_cnn_infer", 1): 1.5}
rows = ["| workload | threads | kiln samples/s | libtorch samples/s | kiln/libtorch | floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |"]
for (workload, threads) in sorted(rates):
    r = rates[(workload, threads)]
    k, t = statistics.median(r["kiln"]), statistics.median(r["libtorch"])
    floor = floors.get((workload, threads))
    verdict = "" if floor is None else ("%.1fx %s" % (floor, "met" if k / t >= floor else "NOT met"))
    rows.append("| %s | %d | %.0f | %.0f | %.2fx | %s |" % (workload, threads, k, t, k / t, verdict))
n = min(len(v) for r in rates.values() for v in r.values())
table = "\n".join(rows)
print(table)

today = datetime.date.today().isoformat()
section = """<!-- compare:begin (written by benchmarks/compare/run.sh) -->
Medians of %d runs per thread count, each run timing Kiln and libtorch back to back
(Google Benchmark, minimum time $min_time s per benchmark; samples/s = batch x steps / wall-clock
time). Ratios above 1 mean Kiln is faster; "floor" is the acceptance floor of issue 3
(at 1 thread).

%s

- Date: %s
- Machine: $cpu (family $family, model $model; $isa), $cores cores, $mem RAM; $os.
  Load average (1, 5, 15 min): $load_before before the runs, $load_after after (the
  2-thread runs themselves load both cores).
- Compiler: $compiler_version; $build_type, KILN_ARCH_FLAGS="$arch_flags", KILN_WITH_ONEDNN=$onednn.
- libtorch: Debian's libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null) (its
  convolutions use oneDNN; its dense layers call BLAS: $blas).
<!-- compare:end -->""" % (n, table, today)
if update:
    text = open(results).read()
    begin, end = text.find("<!-- compare:begin"), text.find("<!-- compare:end -->")
    if begin < 0 or end < 0:
        sys.exit("run.sh: no compare:begin / compare:end markers in " + results)
    end += len("<!-- compare:end -->")
    open(results, "w").write(text[:begin] + section + text[end:])
    print("run.sh: updated " + results, file=sys.stderr)
PY
