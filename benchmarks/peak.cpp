// The machine's limits, which the workloads' figures in RESULTS.md are fractions of:
//
//   BM_PeakFlops      f32 fused multiply-add throughput per core at the widest vector the
//                     compiler targets here (-march=native: AVX-512, AVX2 or NEON), 12
//                     independent accumulators so that latency does not bind: GFLOP/s
//                     (2 per lane per FMA), per thread and in total.
//   BM_ReadBandwidth  sum of a float array, 8 vector accumulators: bytes read per second,
//                     from a block that stays in L1 (16 KiB), in L2 (512 KiB), in L3
//                     (8 MiB) and from DRAM (512 MiB).
//
// Each runs at 1 and 2 threads (Google Benchmark threads, each on its own copy of the
// data). Nothing of Kiln runs here: this is the hardware, as seen by the compiler's best
// plain loops.
//
//   peak --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int lanes = 16;
constexpr const char* isa = "avx512";
#elif defined(__AVX__)
constexpr int lanes = 8;
constexpr const char* isa = "avx";
#elif defined(__ARM_NEON) || defined(__SSE2__)
constexpr int lanes = 4;
constexpr const char* isa = "128-bit";
#else
constexpr int lanes = 1;
constexpr const char* isa = "scalar";
#endif

// GCC/Clang vector extension: a*b + c on it is one FMA instruction with -ffp-contract=fast
// (set for this file in CMakeLists.txt) on targets that have FMA.
using vfloat = float __attribute__((vector_size(lanes * sizeof(float))));

vfloat splat(float x) {
  vfloat v;
  for (int i = 0; i < lanes; ++i) v[i] = x;
  return v;
}

float horizontal_sum(vfloat v) {
  float s = 0.0f;
  for (int i = 0; i < lanes; ++i) s += v[i];
  return s;
}

void BM_PeakFlops(benchmark::State& state) {
  constexpr int accumulators = 12;
  constexpr std::int64_t inner = 1 << 14;  // FMA rounds per iteration
  vfloat acc[accumulators];
  for (int i = 0; i < accumulators; ++i) acc[i] = splat(0.001f * static_cast<float>(i));
  // b slightly below 1 and c small: the values stay finite and normal for any run length.
  vfloat b = splat(0.999999f), c = splat(1e-6f);
  benchmark::DoNotOptimize(b);
  benchmark::DoNotOptimize(c);
  for (auto _ : state) {
    for (std::int64_t r = 0; r < inner; ++r) {
#pragma GCC unroll 12
      for (int i = 0; i < accumulators; ++i) acc[i] = acc[i] * b + c;
    }
    benchmark::ClobberMemory();
  }
  float sink = 0.0f;
  for (int i = 0; i < accumulators; ++i) sink += horizontal_sum(acc[i]);
  benchmark::DoNotOptimize(sink);
  const double flops = 2.0 * lanes * accumulators * static_cast<double>(inner);
  // This thread's FLOPs; Google Benchmark sums the threads' counters and divides by the
  // wall-clock time.
  state.counters["GFLOPs"] = benchmark::Counter(
      flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(isa);
}

void BM_ReadBandwidth(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const std::size_t n = bytes / sizeof(vfloat);
  std::vector<vfloat> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = splat(static_cast<float>(i % 7) * 1e-3f);
  const vfloat* p = data.data();
  for (auto _ : state) {
    // Named accumulators (an array of them would live on the stack).
    vfloat a0 = splat(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      a0 += p[i];
      a1 += p[i + 1];
      a2 += p[i + 2];
      a3 += p[i + 3];
      a4 += p[i + 4];
      a5 += p[i + 5];
      a6 += p[i + 6];
      a7 += p[i + 7];
    }
    float s = horizontal_sum(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)));
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(n * sizeof(vfloat)));
  state.SetLabel(isa);
}

}  // namespace

BENCHMARK(BM_PeakFlops)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ReadBandwidth)
    ->ArgName("bytes")
    ->Arg(16 << 10)
    ->Arg(512 << 10)
    ->Arg(8 << 20)
    ->Arg(512 << 20)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

BENCHMARK_MAIN();
