#!/bin/sh
# Issue 13: data-parallel scaling on this machine. Runs bench_dist (built with
# -DKILN_WITH_MPI=ON) under mpirun with 1 and 2 ranks, one thread each, and prints the
# efficiency table and the model's predictions (benchmarks/scaling_model.py).
#
#   benchmarks/run_dist.sh [BUILD_DIR] [OUT_DIR]     # defaults: build/default, dist-results
set -eu
build=${1:-build/default}
out=${2:-dist-results}
here=$(cd "$(dirname "$0")" && pwd)
bench="$build/benchmarks/bench_dist"
[ -x "$bench" ] || { echo "run_dist.sh: $bench not built (configure with -DKILN_WITH_MPI=ON)" >&2; exit 1; }
mkdir -p "$out"
# Open MPI refuses root unless told (containers, CI).
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=1
mpi="mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
$mpi -np 1 "$bench" --benchmark_format=json --benchmark_out="$out/np1.json" \
  --benchmark_out_format=json >/dev/null
$mpi -np 2 "$bench" --benchmark_filter='DataParallel|AllReduce' \
  --benchmark_format=json --benchmark_out="$out/np2.json" --benchmark_out_format=json >/dev/null
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 "$here/scaling_model.py" measured "$out/np1.json" "$out/np2.json"
echo
python3 "$here/scaling_model.py" model "$out/np1.json" "$out/np2.json"
