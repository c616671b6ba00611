#!/usr/bin/env python3
"""Data-parallel scaling of W1 and W2: the measured efficiency table and the model's
predictions (docs/distributed.md, "Scaling"). Python standard library only.

  benchmarks/scaling_model.py measured NP1.json NP2.json   # efficiency at 1 and 2 ranks
  benchmarks/scaling_model.py model NP1.json [NP2.json]    # predictions for 8/64/256 nodes

NP1.json / NP2.json are bench_dist's Google Benchmark JSON output under `mpirun -np 1` and
`mpirun -np 2` (benchmarks/run_dist.sh writes them). The model takes its compute times from
NP1.json (BM_W1Compute / BM_W2Compute: TrainStep::run and the optimizer step at local
batches of 1..B rows, one thread) and, given NP2.json, checks itself against the measured
2-rank step times with this machine's all-reduce latency and bandwidth (BM_AllReduce).

The model of one data-parallel step on p ranks with a local batch of b rows:

  T(p) = fwd_bwd(b) + opt + exposed communication
  a bucket of s bytes:  c(s) = 2(p-1) * alpha + 2(p-1)/p * s / beta      (ring all-reduce)

Gradients are packed into buckets in the reverse order of the parameters, as DataParallel
does (a bucket closes when the next gradient would take it past bucket_bytes; a larger
gradient gets a bucket of its own). A bucket can start once the backward pass has produced
its last gradient; the backward pass takes the backward share of fwd_bwd(b) (from the layers'
counted FLOPs) and produces each layer's gradients at the end of that layer's share; buckets
are reduced one after the other (one ring). The exposed communication is what ends after the
backward pass. Without overlap every bucket is exposed.
"""

import json
import math
import sys

KIB = 1024
MIB = 1024 * 1024

# Parameter tensors in parameter order (name, floats) and each layer's backward FLOPs per
# row (weight gradient 2*MACs, input gradient 2*MACs, none for the first layer), from the
# layer shapes in benchmarks/workloads.hpp.
W1_MACS = {"fc1": 784 * 1024, "fc2": 1024 * 1024, "fc3": 1024 * 10}
W2_MACS = {"conv1": 32 * 28 * 28 * 25, "conv2": 64 * 14 * 14 * 25 * 32,
           "fc1": 3136 * 512, "fc2": 512 * 10}
WORKLOADS = {
    "W1": {
        "batch": 256,
        "layers": ["fc1", "fc2", "fc3"],
        "params": {"fc1": [784 * 1024, 1024], "fc2": [1024 * 1024, 1024],
                   "fc3": [1024 * 10, 10]},
        "macs": W1_MACS,
    },
    "W2": {
        "batch": 64,
        "layers": ["conv1", "conv2", "fc1", "fc2"],
        "params": {"conv1": [32 * 25, 32], "conv2": [64 * 32 * 25, 64],
                   "fc1": [3136 * 512, 512], "fc2": [512 * 10, 10]},
        "macs": W2_MACS,
    },
}

# Networks: (name, bandwidth bytes/s, latency per message s). Assumed, not measured here:
# 20 us is a typical MPI small-message latency over TCP on 10 Gbit/s Ethernet and 5 us a
# conservative one for a 100 Gbit/s RDMA fabric (InfiniBand/RoCE MPI latencies are 1-3 us;
# OSU micro-benchmarks, osu_latency); bandwidth is the line rate (no protocol overhead).
NETWORKS = [("10 Gbit/s", 10e9 / 8, 20e-6), ("100 Gbit/s", 100e9 / 8, 5e-6)]
NODES = [8, 64, 256]
BUCKETS = [64 * KIB * 2**i for i in range(0, 11)]  # 64 KiB .. 64 MiB


def load(path):
    """bench_dist's JSON: {run_name: {aggregate: entry}} with times in ms."""
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"])
        agg = b.get("aggregate_name", "")
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        e = dict(b)
        e["real_ms"] = b["real_time"] * unit
        out.setdefault(name, {})[agg] = e
    return out


def median(runs, name):
    for key, aggs in runs.items():
        if key.split("/iterations:")[0] == name:
            return aggs.get("median") or aggs.get("")
    return None


def compute_table(runs, w):
    """{rows: (fwd_bwd seconds, opt seconds)} from BM_<w>Compute."""
    table = {}
    rows = 1
    while rows <= WORKLOADS[w]["batch"]:
        m = median(runs, f"BM_{w}Compute/rows:{rows}")
        if m:
            table[rows] = (m["fwd_bwd_ms"] / 1e3, m["opt_ms"] / 1e3)
        rows *= 2
    return table


def backward_share(w):
    """Backward FLOPs / (forward + backward FLOPs), and each layer's share of the backward
    pass in backward order [(layer, share)]."""
    spec = WORKLOADS[w]
    layers = spec["layers"]
    fwd = sum(2 * spec["macs"][l] for l in layers)
    bwd = {l: 2 * spec["macs"][l] * (1 if i == 0 else 2) for i, l in enumerate(layers)}
    total = sum(bwd.values())
    return total / (fwd + total), [(l, bwd[l] / total) for l in reversed(layers)]


def buckets_of(w, bucket_bytes):
    """[(bytes, ready fraction of the backward pass)] in launch order."""
    spec = WORKLOADS[w]
    _, shares = backward_share(w)
    ready, t = {}, 0.0
    for layer, share in shares:
        t += share
        ready[layer] = t
    grads = []  # reverse parameter order: a layer's bias, then its weight
    for layer in reversed(spec["layers"]):
        for floats in reversed(spec["params"][layer]):
            grads.append((4 * floats, ready[layer]))
    out, size, last = [], 0, 0.0
    for nbytes, r in grads:
        if size > 0 and size + nbytes > bucket_bytes:
            out.append((size, last))
            size = 0
        size += nbytes
        last = max(last, r)
    if size:
        out.append((size, last))
    return out


def allreduce(p, nbytes, alpha, beta):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta


def step_time(w, p, fwd_bwd, opt, alpha, beta, bucket_bytes, overlap=True):
    """(step seconds, exposed communication seconds, total communication seconds)."""
    if p == 1:
        return fwd_bwd + opt, 0.0, 0.0
    share, _ = backward_share(w)
    t_bwd = share * fwd_bwd
    end, total = 0.0, 0.0
    for nbytes, ready in buckets_of(w, bucket_bytes):
        c = allreduce(p, nbytes, alpha, beta)
        total += c
        start = max(ready * t_bwd, end) if overlap else max(t_bwd, end)
        end = start + c
    exposed = max(0.0, end - t_bwd)
    return fwd_bwd + exposed + opt, exposed, total


def gradient_bytes(w):
    return 4 * sum(sum(v) for v in WORKLOADS[w]["params"].values())


def fmt_ms(s):
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def fmt_bytes(n):
    return f"{n // MIB} MiB" if n >= MIB else f"{n // KIB} KiB"


def measured(np1_path, np2_path):
    r1, r2 = load(np1_path), load(np2_path)
    print("| workload | scaling | batch per rank (1 / 2 ranks) | step, 1 rank | step, 2 ranks "
          "| compute, 2 ranks | communication, 2 ranks | efficiency |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w in ("W1", "W2"):
        for scaling, label in ((0, "strong"), (1, "weak")):
            name = f"BM_{w}DataParallel/scaling:{scaling}/bucket_KiB:4096"
            m1, m2 = median(r1, name), median(r2, name)
            if not (m1 and m2):
                continue
            t1, t2 = m1["real_ms"], m2["real_ms"]
            eff = t1 / (2 * t2) if scaling == 0 else t1 / t2
            print(f"| {w} | {label} | {int(m1['local_batch'])} / {int(m2['local_batch'])} "
                  f"| {t1:.2f} ms | {t2:.2f} ms | {m2['compute_ms']:.2f} ms "
                  f"| {m2['comm_ms']:.2f} ms | {100 * eff:.0f}% |")
    print()
    print("Bucket size at 2 ranks, strong scaling (step time, median; communication per step):")
    print()
    print("| workload | overlap off (4 MiB) | 1 MiB | 4 MiB | 16 MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for w in ("W1", "W2"):
        cells = []
        for kib in (0, 1024, 4096, 16384):
            m = median(r2, f"BM_{w}DataParallel/scaling:0/bucket_KiB:{kib}")
            cells.append(f"{m['real_ms']:.2f} ms ({m['comm_ms']:.2f}, {int(m['buckets'])} buckets)"
                         if m else "-")
        print(f"| {w} | " + " | ".join(cells) + " |")


def machine_network(r2):
    """alpha, beta of this machine between 2 ranks from BM_AllReduce (p = 2: c = 2 alpha +
    s / beta)."""
    small = median(r2, "BM_AllReduce/bytes:4")
    big = median(r2, "BM_AllReduce/bytes:8388608")
    if not (small and big):
        return None
    alpha = small["real_ms"] / 1e3 / 2
    beta = (8 * MIB) / (big["real_ms"] / 1e3 - 2 * alpha)
    return alpha, beta


def model(np1_path, np2_path=None):
    r1 = load(np1_path)
    tables = {w: compute_table(r1, w) for w in WORKLOADS}
    for w, t in tables.items():
        if WORKLOADS[w]["batch"] not in t:
            sys.exit(f"{np1_path}: no BM_{w}Compute results (run bench_dist with -np 1)")
    print("Inputs (measured here, one thread, medians):")
    print()
    print("| workload | gradient bytes | backward share | " +
          " | ".join(f"b={b}" for b in (1, 4, 8, 32, 64, 256)) + " | optimizer step |")
    print("| --- | ---: | ---: |" + " ---: |" * 7)
    for w in WORKLOADS:
        t = tables[w]
        share, _ = backward_share(w)
        cells = [fmt_ms(t[b][0]) if b in t else "-" for b in (1, 4, 8, 32, 64, 256)]
        opt = t[WORKLOADS[w]["batch"]][1]
        print(f"| {w} | {gradient_bytes(w) / 1e6:.2f} MB | {share:.2f} | " + " | ".join(cells) +
              f" | {fmt_ms(opt)} |")
    print()
    print("(b = rows per rank: forward + backward time, TrainStep::run)")
    print()

    if np2_path:
        r2 = load(np2_path)
        net = machine_network(r2)
        if net:
            alpha, beta = net
            print(f"Check at p = 2 on this machine (shared memory: alpha = {alpha * 1e6:.1f} us, "
                  f"beta = {beta / 1e9:.2f} GB/s from BM_AllReduce), 4 MiB buckets; the "
                  "prediction takes the compute time measured in the 2-rank run itself "
                  "(2 ranks share the cores), so it checks the communication term:")
            print()
            print("| workload | scaling | compute, 2 ranks (measured) | predicted step "
                  "| measured step | predicted exposed communication | measured communication |")
            print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
            for w in WORKLOADS:
                B = WORKLOADS[w]["batch"]
                _, opt = tables[w][B]
                for scaling, label in ((0, "strong"), (1, "weak")):
                    m = median(r2, f"BM_{w}DataParallel/scaling:{scaling}/bucket_KiB:4096")
                    if not m:
                        continue
                    fb = m["compute_ms"] / 1e3
                    t, exposed, _ = step_time(w, 2, fb, opt, alpha, beta, 4 * MIB)
                    print(f"| {w} | {label} | {fmt_ms(fb)} | {fmt_ms(t)} | {m['real_ms']:.2f} ms "
                          f"| {fmt_ms(exposed)} | {m['comm_ms']:.2f} ms |")
            print()

    print("Predictions (4 MiB buckets, and the best bucket size for each case; efficiency:")
    print("strong T(1) / (p T(p)), weak T(1) / T(p)):")
    print()
    print("| workload | scaling | network | nodes | rows per node | step (4 MiB) | efficiency "
          "(4 MiB) | best bucket | step (best) | efficiency (best) | all-reduce total |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w in WORKLOADS:
        B = WORKLOADS[w]["batch"]
        fb1, opt = tables[w][B]
        t1 = fb1 + opt
        for scaling, label in ((0, "strong"), (1, "weak")):
            for net_name, beta, alpha in NETWORKS:
                for p in NODES:
                    b = B // p if scaling == 0 else B
                    if b < 1:
                        print(f"| {w} | {label} | {net_name} | {p} | B/p < 1 | - | - | - | - | - "
                              f"| - |")
                        continue
                    fb, _ = tables[w][b]
                    t4, _, total = step_time(w, p, fb, opt, alpha, beta, 4 * MIB)
                    best = min((step_time(w, p, fb, opt, alpha, beta, s)[0], s) for s in BUCKETS)
                    eff = (lambda t: t1 / (p * t)) if scaling == 0 else (lambda t: t1 / t)
                    print(f"| {w} | {label} | {net_name} | {p} | {b} | {fmt_ms(t4)} "
                          f"| {100 * eff(t4):.1f}% | {fmt_bytes(best[1])} | {fmt_ms(best[0])} "
                          f"| {100 * eff(best[0]):.1f}% | {fmt_ms(total)} |")
    print()
    print(f"T(1) (one process, batch B): W1 {fmt_ms(sum(tables['W1'][256]))}, "
          f"W2 {fmt_ms(sum(tables['W2'][64]))}.")


def main(argv):
    if len(argv) == 4 and argv[1] == "measured":
        measured(argv[2], argv[3])
    elif len(argv) in (3, 4) and argv[1] == "model":
        model(argv[2], argv[3] if len(argv) == 4 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
