// Issue 10's data loading figures.
//
// BM_ReadCsv: kiln::data::read_csv of 1M rows x 20 numeric columns (19 features and a
// regression target; numbers of 3 to 9 significant digits, ~140 MB). The file is written once
// into a temporary folder, outside the timing; one iteration reads it whole. Reported as MB/s
// of file (bytes_per_second) on one core. BM_ReadCsvTwoColumns keeps 2 of the 20 columns.
//
// BM_LoaderFeedsW1Step: a loader over 8192 rows of 784 f32 features (and i32 labels) with
// batch 256 and shuffling feeds a consumer that spends a W1 training step's time (14 ms,
// busy) on each batch. One iteration is one batch; wait_us is the mean time per batch spent
// inside Loader::next(), with the next batch prefetched on a background thread (prefetch:1)
// and assembled on the caller's thread (prefetch:0). Epochs roll over (set_epoch) as a
// training loop does. busy:1 spins for the step (a step keeps its core busy; the prefetch
// thread then needs the other core); busy:0 sleeps instead, which separates the loader's own
// latency from competition for cores on a loaded machine.
//
//   bench_data --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "kiln/data/csv.hpp"
#include "kiln/data/loader.hpp"

namespace {

namespace fs = std::filesystem;

// The CSV file, written on first use and removed at exit.
class CsvFile {
 public:
  CsvFile() {
    dir_ = fs::temp_directory_path() / ("kiln_bench_data_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "numeric.csv").string();
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    std::string text;
    for (int c = 0; c < columns; ++c) text += (c ? ",c" : "c") + std::to_string(c);
    text += "\n";
    std::mt19937_64 gen(42);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_int_distribution<int> digits(3, 9);
    char buf[64];
    for (std::int64_t r = 0; r < rows; ++r) {
      for (int c = 0; c < columns; ++c) {
        const double v = normal(gen) * (c % 2 ? 100.0 : 1.0);
        const auto res =
            std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, digits(gen));
        text.append(buf, res.ptr);
        text += c + 1 < columns ? ',' : '\n';
      }
      if (text.size() > (1u << 20)) {
        std::fwrite(text.data(), 1, text.size(), f);
        text.clear();
      }
    }
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    bytes_ = static_cast<std::int64_t>(fs::file_size(path_));
  }
  ~CsvFile() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  CsvFile(const CsvFile&) = delete;
  CsvFile& operator=(const CsvFile&) = delete;

  static const CsvFile& get() {
    static const CsvFile file;
    return file;
  }
  const std::string& path() const { return path_; }
  std::int64_t bytes() const { return bytes_; }

  static constexpr std::int64_t rows = 1'000'000;
  static constexpr int columns = 20;

 private:
  fs::path dir_;
  std::string path_;
  std::int64_t bytes_ = 0;
};

void BM_ReadCsv(benchmark::State& state) {
  const CsvFile& file = CsvFile::get();
  const kiln::data::CsvOptions options{.target = "c19", .task = kiln::data::CsvTask::regression};
  std::int64_t rows = 0;
  for (auto _ : state) {
    const kiln::data::CsvData data = kiln::data::read_csv(file.path(), options);
    rows = data.dataset.size();
    benchmark::DoNotOptimize(data.dataset["features"].raw());
  }
  if (rows != CsvFile::rows) state.SkipWithError("wrong number of rows");
  state.SetBytesProcessed(state.iterations() * file.bytes());
  state.SetItemsProcessed(state.iterations() * CsvFile::rows);
  state.counters["file_MB"] = static_cast<double>(file.bytes()) / 1e6;
}

void BM_ReadCsvTwoColumns(benchmark::State& state) {
  const CsvFile& file = CsvFile::get();
  const kiln::data::CsvOptions options{
      .target = "c19", .features = {"c3"}, .task = kiln::data::CsvTask::regression};
  for (auto _ : state) {
    const kiln::data::CsvData data = kiln::data::read_csv(file.path(), options);
    benchmark::DoNotOptimize(data.dataset["features"].raw());
  }
  state.SetBytesProcessed(state.iterations() * file.bytes());
  state.SetItemsProcessed(state.iterations() * CsvFile::rows);
}

// Busy for `d`, as a training step keeps its core busy.
void spin_for(std::chrono::steady_clock::duration d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

void BM_LoaderFeedsW1Step(benchmark::State& state) {
  constexpr std::int64_t rows = 8192;
  constexpr std::int64_t features = 784;
  std::vector<float> x(static_cast<std::size_t>(rows * features));
  std::vector<std::int32_t> y(static_cast<std::size_t>(rows));
  std::mt19937 gen(1);
  for (float& v : x) v = static_cast<float>(gen() % 256) / 255.0f;
  for (std::int32_t& v : y) v = static_cast<std::int32_t>(gen() % 10);
  const kiln::data::Dataset d({{"pixels", kiln::Tensor::from(x, {rows, features})},
                               {"label", kiln::Tensor::from(y, {rows})}});
  kiln::data::Loader loader(
      d, {.batch_size = 256, .shuffle = true, .seed = 7, .prefetch = state.range(0) != 0});
  const auto step = std::chrono::milliseconds(14);
  const bool busy = state.range(1) != 0;
  std::int64_t epoch = 0;
  double waited_us = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<kiln::data::Batch> b = loader.next();
    if (!b) {
      loader.set_epoch(++epoch);
      b = loader.next();
    }
    waited_us +=
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(b->front().second.raw());
    if (busy)
      spin_for(step);
    else
      std::this_thread::sleep_for(step);
  }
  state.counters["wait_us"] = benchmark::Counter(waited_us, benchmark::Counter::kAvgIterations);
  state.counters["epochs"] = static_cast<double>(epoch);
}

}  // namespace

BENCHMARK(BM_ReadCsv)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadCsvTwoColumns)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoaderFeedsW1Step)
    ->ArgNames({"prefetch", "busy"})
    ->Args({1, 1})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(100);

BENCHMARK_MAIN();
