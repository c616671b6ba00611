#!/bin/sh
# Runs compare_libtorch (Kiln and libtorch on W1-W4, W6, W7) at 1 and 2 threads, REPS times each,
# alternating the libraries within every run; measures the peak resident memory of a W2
# training run with each library in its own process; optionally runs Kiln's side of the
# same binary from a portable (Eigen-only) build. Prints the medians, the kiln/libtorch
# ratios, Kiln's 2-thread scaling and the acceptance floors of issue 5 as tables, and
# rewrites them in benchmarks/RESULTS.md (between the "compare:begin" and "compare:end"
# markers) with the machine, date, compiler and load.
#
#   benchmarks/compare/run.sh [-b build-dir] [-p portable-build-dir] [-r reps] [-t min-time]
#                             [-s rss-steps] [-w workloads] [-n]
#     -b  build directory holding benchmarks/compare/compare_libtorch (default: build/default)
#     -p  a second build directory, configured -DKILN_WITH_ONEDNN=OFF -DKILN_ARCH_FLAGS=,
#         whose compare_libtorch runs Kiln's side only (default: none)
#     -r  repetitions: separate runs of the binary per thread count (default 5)
#     -t  Google Benchmark minimum time per benchmark, seconds (default 1)
#     -s  W2 training steps per peak-memory process (default 50)
#     -w  only the workloads matching this regular expression, e.g. 'W6|W7' (implies -n)
#     -n  print only; leave RESULTS.md alone
#
# Allocator: the timing runs export GLIBC_TUNABLES (unless it is set already) so that glibc's
# malloc keeps freed blocks of up to 32 MiB instead of returning them to the kernel. libtorch
# allocates every intermediate tensor afresh at every step; with glibc's defaults the larger
# ones are new mmap()s whose pages fault in again at every step, which on a virtual machine
# with costly page faults made libtorch 2-4x slower than its kernels (measured 2026-12-01:
# W1 47 -> 26 ms, W4 75 -> 19 ms per step). Production libtorch deployments use jemalloc or
# tcmalloc for the same reason. Kiln plans its memory once and is unaffected. The
# peak-memory runs keep glibc's defaults.
# Threads: each run exports OMP_NUM_THREADS and OPENBLAS_NUM_THREADS equal to the thread
# count; inside, both libraries are set to it explicitly and libtorch's inter-op pool to 1.
# On a shared machine, wrap the whole script in flock so that nothing else measures at the
# same time, e.g. `flock /tmp/kiln-bench.lock benchmarks/compare/run.sh ...`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build/default"
portable=""
reps=5
min_time=1
rss_steps=50
update=1
workloads=""
while getopts b:p:r:t:s:w:n opt; do
  case $opt in
    b) build=$(cd "$OPTARG" && pwd) ;;
    p) portable=$(cd "$OPTARG" && pwd) ;;
    r) reps=$OPTARG ;;
    t) min_time=$OPTARG ;;
    s) rss_steps=$OPTARG ;;
    w) workloads=$OPTARG; update=0 ;;
    n) update=0 ;;
    *) sed -n '2,25p' "$0" >&2; exit 2 ;;
  esac
done
bin="$build/benchmarks/compare/compare_libtorch"
tunables="${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824}"
if [ ! -x "$bin" ]; then
  echo "run.sh: $bin not found (configure with libtorch installed and build compare_libtorch)" >&2
  exit 1
fi
pbin=""
if [ -n "$portable" ]; then
  pbin="$portable/benchmarks/compare/compare_libtorch"
  if [ ! -x "$pbin" ]; then
    echo "run.sh: $pbin not found (build compare_libtorch in the portable build)" >&2
    exit 1
  fi
fi
# A benchmark binary older than its build's libraries measures code that is gone, e.g. after
# `cmake --preset portable` turned the portable build's benchmarks off again.
for b in "$bin" $pbin; do
  for lib in "$(dirname "$(dirname "$(dirname "$b")")")"/src/libkiln*.a; do
    if [ -e "$lib" ] && [ "$lib" -nt "$b" ]; then
      echo "run.sh: $b is older than $lib: rebuild compare_libtorch there first" >&2
      exit 1
    fi
  done
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
r=1
while [ "$r" -le "$reps" ]; do
  # The machine's limits (f32 FMA throughput, L2 read bandwidth) in the same repetition.
  if [ -x "$build/benchmarks/peak" ]; then
    echo "run.sh: repetition $r/$reps, the machine's limits (benchmarks/peak)" >&2
    "$build/benchmarks/peak" --benchmark_filter='BM_PeakFlops|BM_ReadBandwidth/bytes:524288/' \
      --benchmark_format=json --benchmark_out_format=json --benchmark_out="$out/peak_$r.json" >/dev/null
  fi
  for t in 1 2; do
    echo "run.sh: repetition $r/$reps, $t thread(s)" >&2
    GLIBC_TUNABLES=$tunables OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$bin" \
      --benchmark_filter="^(${workloads:-.*})_.*threads:$t/" --benchmark_min_time="$min_time" \
      --benchmark_format=json --benchmark_out_format=json \
      --benchmark_out="$out/run_${r}_$t.json" >/dev/null
    if [ -n "$pbin" ]; then
      echo "run.sh: repetition $r/$reps, $t thread(s), portable build (Kiln only)" >&2
      GLIBC_TUNABLES=$tunables OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$pbin" \
        --benchmark_filter="^(${workloads:-.*})_.*/kiln/threads:$t/" --benchmark_min_time="$min_time" \
        --benchmark_format=json --benchmark_out_format=json \
        --benchmark_out="$out/portable_${r}_$t.json" >/dev/null
    fi
  done
  # Peak resident memory of W2 training: every library in a process of its own.
  for lib in kiln libtorch; do
    [ -z "$workloads" ] || break
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$bin" --peak-rss="W2:$lib:$rss_steps" >>"$out/rss.txt"
  done
  if [ -n "$pbin" ] && [ -z "$workloads" ]; then
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$pbin" --peak-rss="W2:kiln:$rss_steps" |
      sed 's/ kiln / kiln-portable /' >>"$out/rss.txt"
  fi
  cut -d' ' -f1 /proc/loadavg >>"$out/load.txt"
  r=$((r + 1))
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cache() { sed -n "s/^$1:[A-Z]*=//p" "$2/CMakeCache.txt"; }
compiler=$(cache CMAKE_CXX_COMPILER "$build")
compiler_version=$("${compiler:-c++}" --version | head -n 1)
build_type=$(cache CMAKE_BUILD_TYPE "$build")
arch_flags=$(cache KILN_ARCH_FLAGS "$build")
onednn=$(cache KILN_ONEDNN_ENABLED "$build")
portable_desc="none"
if [ -n "$portable" ]; then
  portable_desc="$(cache CMAKE_BUILD_TYPE "$portable"), KILN_ARCH_FLAGS=\"$(cache KILN_ARCH_FLAGS "$portable")\", KILN_WITH_ONEDNN=$(cache KILN_ONEDNN_ENABLED "$portable")"
fi
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
torch_version=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo unknown)

/usr/bin/python3 - "$out" "$root/benchmarks/RESULTS.md" "$update" <<PY
import glob, json, os, statistics, sys, datetime
out, results, update = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
median = statistics.median
to_us = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}

def load(prefix):
    """{(workload, lib, threads): [per-run value]}, value = samples/s, or us for W3."""
    runs = {}
    for path in sorted(glob.glob("%s/%s_*.json" % (out, prefix))):
        rep = int(os.path.basename(path).split("_")[1])
        if os.path.getsize(path) == 0:  # no benchmark matched, e.g. -w W3 at 2 threads
            continue
        for b in json.load(open(path))["benchmarks"]:
            if b.get("error_occurred"):
                sys.exit("run.sh: %s failed: %s" % (b["name"], b.get("error_message")))
            workload, lib, threads = b["name"].split("/")[:3]
            value = (b["real_time"] * to_us[b["time_unit"]] if workload.startswith("W3")
                     else b["items_per_second"])
            key = (workload, lib, int(threads.split(":")[1]))
            runs.setdefault(key, {})[rep] = value
    return runs

main, port = load("run"), load("portable")
med = lambda runs, key: median(runs[key].values()) if key in runs else None
verdict = lambda ok: "met" if ok else "**NOT met**"
n = min(len(v) for v in main.values())
throughput = [w for w in ["W1_mlp_train", "W2_cnn_train", "W4_cnn_infer", "W6_lstm_train",
                          "W7_transformer_train"] if (w, "kiln", 1) in main]
# Issue 5's floors for W1-W4, issue 15's for W6 and W7 (all at 1 thread).
floors = {"W1_mlp_train": 1.15, "W2_cnn_train": 1.3, "W4_cnn_infer": 1.5, "W6_lstm_train": 1.3,
          "W7_transformer_train": 1.3}
scaling_floor = {"W1_mlp_train": 1.6, "W2_cnn_train": 1.6, "W4_cnn_infer": 1.6}
accept = []

rows = ["| workload | threads | kiln samples/s | libtorch samples/s | kiln/libtorch | floor (1 thread) |",
        "| --- | ---: | ---: | ---: | ---: | --- |"]
for w in throughput:
    for t in (1, 2):
        k, l = med(main, (w, "kiln", t)), med(main, (w, "libtorch", t))
        f = floors[w] if t == 1 else None
        cell = "" if f is None else "%.2fx: %s" % (f, verdict(k / l >= f))
        rows.append("| %s | %d | %.0f | %.0f | %.2fx | %s |" % (w, t, k, l, k / l, cell))
        if f is not None:
            accept.append("%s at 1 thread: %.2fx libtorch (floor %.2fx): %s"
                          % (w, k / l, f, verdict(k / l >= f)))
throughput_table = "\n".join(rows)

k3, l3 = med(main, ("W3_infer_latency", "kiln", 1)), med(main, ("W3_infer_latency", "libtorch", 1))
w3_table = "(not run)" if k3 is None else "\n".join([
    "| workload | threads | kiln latency | libtorch latency | kiln/libtorch | floor |",
    "| --- | ---: | ---: | ---: | ---: | --- |",
    "| W3_infer_latency | 1 | %.2f us | %.2f us | %.3fx | at most 0.2x: %s |"
    % (k3, l3, k3 / l3, verdict(k3 / l3 <= 0.2))])
if k3 is not None:
  accept.insert(2, "W3 batch-1 latency through kiln::infer::Model: %.2f us vs %.2f us, %.3fx libtorch's "
              "(floor: at most 0.2x): %s" % (k3, l3, k3 / l3, verdict(k3 / l3 <= 0.2)))

rows = ["| workload | library | 1 thread samples/s | 2 threads samples/s | 2t/1t (medians) | 2t/1t per run (min-max) | floor |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |"]
for w in throughput:
    for lib in ("kiln", "libtorch"):
        one, two = main[(w, lib, 1)], main[(w, lib, 2)]
        ratio = median(two.values()) / median(one.values())
        per_run = [two[r] / one[r] for r in one if r in two]
        sf = scaling_floor.get(w) if lib == "kiln" else None
        cell = "" if sf is None else "%.1fx: %s" % (sf, verdict(ratio >= sf))
        rows.append("| %s | %s | %.0f | %.0f | %.2fx | %.2f-%.2f | %s |" % (
            w, lib, median(one.values()), median(two.values()), ratio, min(per_run),
            max(per_run), cell))
        if sf is not None:
            accept.append("%s: Kiln 2 threads / 1 thread = %.2fx (per-run %.2f-%.2f; floor %.1fx): %s"
                          % (w, ratio, min(per_run), max(per_run), sf, verdict(ratio >= sf)))
            accept.append("%s: Kiln 2 threads / 1 thread = %.2fx (issue 16's floor 1.85x): %s"
                          % (w, ratio, verdict(ratio >= 1.85)))
scaling_table = "\n".join(rows)

# Issue 16: each workload as a fraction of the limit that binds it, measured by
# benchmarks/peak in the same repetitions: the f32 FMA peak (per core, and on all cores at 2
# threads) for the compute-bound W1, W2 and W4, the L2 read bandwidth for W3, whose 407 KB of
# weights sit in L2. FLOPs per sample and bytes per run come from compare_libtorch's context.
limits = {}
for path in sorted(glob.glob(out + "/peak_*.json")):
    for b in json.load(open(path))["benchmarks"]:
        threads = int(b["name"].rsplit("threads:", 1)[1])
        if b["name"].startswith("BM_PeakFlops"):
            limits.setdefault(("flops", threads), []).append(b["GFLOPs"] * 1e9)
        elif b["name"].startswith("BM_ReadBandwidth/bytes:524288") and threads == 1:
            limits.setdefault(("l2", 1), []).append(b["bytes_per_second"])
context = json.load(open(sorted(glob.glob(out + "/run_*.json"))[0]))["context"]
def per(kind, w):
    v = context.get("%s/%s" % (kind, w))
    return float(v) if v is not None else None
limit_floor = {"W1_mlp_train": 0.75, "W2_cnn_train": 0.65, "W4_cnn_infer": 0.75}
limit_table = "(not measured: build benchmarks/peak in the -b build)"
if limits:
    rows = ["| workload | threads | Kiln | achieved | limit (benchmarks/peak) | fraction of the limit | floor (issue 16, 1 thread) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for w in ("W1_mlp_train", "W2_cnn_train", "W4_cnn_infer"):
        f = per("flop_per_sample", w)
        if f is None or (w, "kiln", 1) not in main:
            continue
        for t in (1, 2):
            k = med(main, (w, "kiln", t))
            peak = median(limits[("flops", t)])
            frac = k * f / peak
            cell = ""
            if t == 1:
                cell = "%.0f%%: %s" % (100 * limit_floor[w], verdict(frac >= limit_floor[w]))
                accept.append("%s at 1 thread: %.1f%% of the measured f32 FMA peak (floor %.0f%%): %s"
                              % (w, 100 * frac, 100 * limit_floor[w], verdict(frac >= limit_floor[w])))
            rows.append("| %s | %d | %.0f samples/s | %.1f GFLOP/s | %.1f GFLOP/s f32 FMA (%d core%s) | %.1f%% | %s |"
                        % (w, t, k, k * f / 1e9, peak / 1e9, t, "s" if t > 1 else "", 100 * frac, cell))
    bytes3 = per("bytes_per_run", "W3_infer_latency")
    if k3 is not None and bytes3 is not None and ("l2", 1) in limits:
        bw = median(limits[("l2", 1)])
        bound_us = bytes3 / bw * 1e6
        rows.append("| W3_infer_latency | 1 | %.2f us | %.1f GB/s of weights | %.1f GB/s L2 read: %.0f KB in %.2f us | %.1f%% | at most 2 us: %s |"
                    % (k3, bytes3 / (k3 * 1e-6) / 1e9, bw / 1e9, bytes3 / 1e3, bound_us,
                       100 * bound_us / k3, verdict(k3 <= 2.0)))
        accept.append("W3 at most 2 us (issue 16): %.2f us, the L2 bound being %.2f us: %s"
                      % (k3, bound_us, verdict(k3 <= 2.0)))
    limit_table = "\n".join(rows)

rss = {}
for line in (open(out + "/rss.txt") if os.path.exists(out + "/rss.txt") else []):
    _, w, lib, steps, before, after = line.split()
    rss.setdefault(lib, []).append((int(before), int(after)))
steps = line.split()[3] if rss else "0"
rows = ["| W2 training, %s steps, 1 thread | peak RSS (median) | before building the workload | growth |" % steps,
        "| --- | ---: | ---: | ---: |"]
mib = lambda kib: "%.1f MiB" % (kib / 1024.0)
for lib in ("kiln", "libtorch", "kiln-portable"):
    if lib in rss:
        after = median(a for _, a in rss[lib])
        before = median(b for b, _ in rss[lib])
        rows.append("| %s | %s | %s | %s |" % (lib, mib(after), mib(before), mib(after - before)))
rss_table = "\n".join(rows)
if rss:
  kr, lr = median(a for _, a in rss["kiln"]), median(a for _, a in rss["libtorch"])
  accept.append("W2 training peak resident memory: Kiln %s, libtorch %s (%.2fx; floor: at most 1x): %s"
              % (mib(kr), mib(lr), kr / lr, verdict(kr <= lr)))

portable_table = "(not run: pass -p <portable build dir>)"
if port:
    rows = ["| workload | threads | portable Kiln | default Kiln | libtorch | portable/libtorch |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for w in throughput + ["W3_infer_latency"]:
        for t in (1, 2):
            p = med(port, (w, "kiln", t))
            if p is None:
                continue
            k, l = med(main, (w, "kiln", t)), med(main, (w, "libtorch", t))
            if w.startswith("W3"):
                rows.append("| %s | %d | %.2f us | %.2f us | %.2f us | %.2fx (latency) |" % (w, t, p, k, l, p / l))
            else:
                rows.append("| %s | %d | %.0f samples/s | %.0f samples/s | %.0f samples/s | %.2fx |" % (w, t, p, k, l, p / l))
    portable_table = "\n".join(rows)
    accept.append("Portable (Eigen-only) build's W1-W4 figures recorded (table above): met")

summary = "\n".join("- " + a for a in accept)
print(throughput_table, w3_table, scaling_table, limit_table, rss_table, portable_table, summary,
      sep="\n\n")

today = datetime.date.today().isoformat()
section = """<!-- compare:begin (written by benchmarks/compare/run.sh) -->
Medians of %d runs per thread count, each run timing Kiln and libtorch back to back
(Google Benchmark, minimum time $min_time s per benchmark; samples/s = batch x steps /
wall-clock time). Ratios above 1 mean Kiln is faster (for W3's latency, below 1). Floors are
the acceptance floors of issue 5 (W1-W4) and issue 15 (W6, W7).

Throughput (W1, W2, W6, W7 training; W4 inference):

%s

Batch-1 latency (W3, through kiln::infer::Model vs a torch::nn::Sequential in eval() under
torch::InferenceMode):

%s

Scaling from 1 to 2 threads (medians of the runs above; "per run" divides each run's
2-thread figure by the same repetition's 1-thread figure, to show the spread):

%s

Kiln's figures as fractions of the machine's limit that binds each workload, measured by
\`benchmarks/peak\` in the same repetitions (FLOPs counted as in benchmarks/workloads.hpp):

%s

Peak resident memory of W2 training (getrusage ru_maxrss; each library in a process of its
own, the same compare_libtorch binary, so the "before" column includes libtorch's shared
libraries for both):

%s

Portable build (Kiln only; Eigen and reference kernels, no oneDNN, no -march flags), next to
the default build's and libtorch's medians from the same runs:

%s

Acceptance (issues 5, 15 and 16, this run):

%s

- Date: %s
- Machine: $cpu (family $family, model $model; $isa), $cores cores, $mem RAM; $os.
  Load average (1, 5, 15 min): $load_before before the runs, $load_after after; 1-min
  load after each repetition: %s (the 2-thread runs themselves load both cores).
- Compiler: $compiler_version; $build_type, KILN_ARCH_FLAGS="$arch_flags", KILN_WITH_ONEDNN=$onednn.
  Portable build: $portable_desc.
- libtorch: Debian's libtorch-dev $torch_version (its convolutions use oneDNN; its dense
  layers call BLAS: $blas).
- Allocator: the timing runs (both libraries, one process) ran with
  GLIBC_TUNABLES=$tunables, so that libtorch's per-step tensors reuse freed memory
  instead of faulting in fresh pages (see run.sh); the peak-memory runs used glibc's defaults.
<!-- compare:end -->""" % (n, throughput_table, w3_table, scaling_table, limit_table, rss_table,
                          portable_table, summary, today,
                          ", ".join(l.strip() for l in open(out + "/load.txt")))
if update:
    text = open(results).read()
    begin, end = text.find("<!-- compare:begin"), text.find("<!-- compare:end -->")
    if begin < 0 or end < 0:
        sys.exit("run.sh: no compare:begin / compare:end markers in " + results)
    end += len("<!-- compare:end -->")
    open(results, "w").write(text[:begin] + section + text[end:])
    print("run.sh: updated " + results, file=sys.stderr)
PY
