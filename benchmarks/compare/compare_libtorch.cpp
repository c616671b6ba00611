// DESIGN.md workloads W1 (MLP training), W2 (CNN training), W3 (batch-1 inference latency)
// and W4 (CNN inference) in Kiln and in libtorch's C++ API, in one Google Benchmark binary.
// Each workload is registered as <workload>/kiln/threads:<n> followed by
// <workload>/libtorch/threads:<n>, so the two run back to back under the same machine
// conditions; run.sh repeats the whole binary and takes medians. W3 runs at 1 thread only:
// Kiln through kiln::infer::Model (saved to memory and loaded), libtorch through a
// torch::nn::Sequential in eval() under torch::InferenceMode.
//
// Peak memory: `compare_libtorch --peak-rss=<W1|W2|W4>:<kiln|libtorch>[:steps]` builds one
// workload in a fresh process, runs it (default 50 steps, 1 thread), and prints the
// process's peak resident set (getrusage ru_maxrss) before and after, so each library is
// measured in its own process.
//
// Threads: both libraries use the same libgomp pool. Every benchmark sets the thread count
// for both (kiln::set_num_threads and torch::set_num_threads, which set OpenMP's); libtorch's
// inter-op pool is fixed at 1 thread (at::set_num_interop_threads) before anything runs.
// libtorch's dense layers call BLAS: with Debian's OpenMP build of OpenBLAS
// (libopenblas0-openmp) it threads inside the same OpenMP pool, so nothing is
// oversubscribed (run.sh also exports OMP_NUM_THREADS and OPENBLAS_NUM_THREADS equal to the
// thread count, so a pthreads OpenBLAS could not start more threads than that).
//
// Warm-up is excluded: each workload is built, compiled (Kiln) and stepped
// kiln_bench::warm_up_steps times (or run once, W4) before timing; models are cached per thread
// count across Google Benchmark's calibration runs. libtorch's training step sets gradients to None
// instead of zeroing them (PyTorch 2's default); W4 runs under torch::InferenceMode with the model
// in eval().
//
//   compare_libtorch --benchmark_filter=threads:1 --benchmark_format=json
//   compare_libtorch --peak-rss=W2:kiln:50
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/threads.hpp"
#include "train_loop.hpp"
#include "workloads.hpp"

namespace {

using kiln_bench::Batch;

// ---------------------------------------------------------------------------------------------
// libtorch workloads

torch::Tensor images(const Batch& b, std::int64_t n) {
  return torch::from_blob(const_cast<float*>(b.x.data()),
                          {n, 1, kiln_bench::w2_side, kiln_bench::w2_side}, torch::kFloat)
      .clone();
}

torch::Tensor labels(const Batch& b) {
  return torch::from_blob(const_cast<std::int32_t*>(b.y.data()),
                          {static_cast<std::int64_t>(b.y.size())}, torch::kInt)
      .to(torch::kLong);
}

struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : fc1(register_module("fc1",
                            torch::nn::Linear(kiln_bench::w1_features, kiln_bench::w1_hidden))),
        fc2(register_module("fc2",
                            torch::nn::Linear(kiln_bench::w1_hidden, kiln_bench::w1_hidden))),
        fc3(register_module("fc3", torch::nn::Linear(kiln_bench::w1_hidden, kiln_bench::classes))) {
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(fc1->forward(x));
    x = torch::relu(fc2->forward(x));
    return fc3->forward(x);
  }
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(Mlp);

struct CnnImpl : torch::nn::Module {
  CnnImpl()
      : conv1(register_module("conv1",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 5).padding(2)))),
        conv2(register_module("conv2",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)))),
        fc1(register_module("fc1", torch::nn::Linear(3136, 512))),
        fc2(register_module("fc2", torch::nn::Linear(512, kiln_bench::classes))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    x = torch::relu(fc1->forward(x.flatten(1)));
    return fc2->forward(x);
  }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(Cnn);

/// One training step per call: forward, cross-entropy, backward, optimizer step.
template <class Net>
class TorchTrain {
 public:
  TorchTrain(Net net, std::unique_ptr<torch::optim::Optimizer> opt, torch::Tensor x,
             torch::Tensor y)
      : net_(std::move(net)), opt_(std::move(opt)), x_(std::move(x)), y_(std::move(y)) {
    first_loss_ = step();
    for (int i = 1; i < kiln_bench::warm_up_steps; ++i) step();
  }
  double step() {
    for (auto& p : net_->parameters()) p.mutable_grad() = torch::Tensor();  // set to None
    torch::Tensor loss = torch::nn::functional::cross_entropy(net_->forward(x_), y_);
    loss.backward();
    opt_->step();
    return loss.item<double>();
  }
  double first_loss() const { return first_loss_; }

 private:
  Net net_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  torch::Tensor x_, y_;
  double first_loss_ = 0.0;
};

struct TorchW1 : TorchTrain<Mlp> {
  static TorchW1 make() {
    torch::manual_seed(0);
    Mlp net;
    auto opt = std::make_unique<torch::optim::SGD>(net->parameters(),
                                                   torch::optim::SGDOptions(0.01).momentum(0.9));
    const Batch b = kiln_bench::w1_data();
    torch::Tensor x = torch::from_blob(const_cast<float*>(b.x.data()),
                                       {kiln_bench::w1_batch, kiln_bench::w1_features})
                          .clone();
    return TorchW1{TorchTrain<Mlp>(net, std::move(opt), x, labels(b))};
  }
};

struct TorchW2 : TorchTrain<Cnn> {
  static TorchW2 make() {
    torch::manual_seed(0);
    Cnn net;
    auto opt =
        std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
    const Batch b = kiln_bench::w2_data();
    return TorchW2{
        TorchTrain<Cnn>(net, std::move(opt), images(b, kiln_bench::w2_batch), labels(b))};
  }
};

/// W6 in libtorch: nn::LSTM(64, 256, num_layers 2, batch_first), the last step's output
/// through Linear(256, 10).
struct LstmNetImpl : torch::nn::Module {
  LstmNetImpl()
      : lstm(register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(kiln_bench::w6_features,
                                                                            kiln_bench::w6_hidden)
                                                         .num_layers(2)
                                                         .batch_first(true)))),
        fc(register_module("fc", torch::nn::Linear(kiln_bench::w6_hidden, kiln_bench::classes))) {}
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = std::get<0>(lstm->forward(x));
    return fc->forward(out.select(1, kiln_bench::w6_steps - 1));
  }
  torch::nn::LSTM lstm;
  torch::nn::Linear fc;
};
TORCH_MODULE(LstmNet);

/// W7 in libtorch: nn::TransformerEncoderLayer(256, 4, feed-forward 1024, dropout 0, ReLU,
/// post-norm) on [steps, batch, d] (libtorch 1.13's C++ layer has no batch_first; the data
/// is laid out that way once, outside the timing), the mean over the steps through
/// Linear(256, 10).
struct EncoderNetImpl : torch::nn::Module {
  EncoderNetImpl()
      : encoder(register_module("encoder", torch::nn::TransformerEncoderLayer(
                                               torch::nn::TransformerEncoderLayerOptions(
                                                   kiln_bench::w7_model, kiln_bench::w7_heads)
                                                   .dim_feedforward(kiln_bench::w7_feedforward)
                                                   .dropout(0.0)))),
        fc(register_module("fc", torch::nn::Linear(kiln_bench::w7_model, kiln_bench::classes))) {}
  torch::Tensor forward(torch::Tensor x) { return fc->forward(encoder->forward(x).mean(0)); }
  torch::nn::TransformerEncoderLayer encoder;
  torch::nn::Linear fc;
};
TORCH_MODULE(EncoderNet);

torch::Tensor sequences(const Batch& b, std::int64_t batch, std::int64_t steps,
                        std::int64_t features) {
  return torch::from_blob(const_cast<float*>(b.x.data()), {batch, steps, features}, torch::kFloat)
      .clone();
}

struct TorchW6 : TorchTrain<LstmNet> {
  static TorchW6 make() {
    torch::manual_seed(0);
    LstmNet net;
    auto opt =
        std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
    const Batch b = kiln_bench::w6_data();
    return TorchW6{TorchTrain<LstmNet>(
        net, std::move(opt),
        sequences(b, kiln_bench::w6_batch, kiln_bench::w6_steps, kiln_bench::w6_features),
        labels(b))};
  }
};

struct TorchW7 : TorchTrain<EncoderNet> {
  static TorchW7 make() {
    torch::manual_seed(0);
    EncoderNet net;
    auto opt =
        std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
    const Batch b = kiln_bench::w7_data();
    torch::Tensor x = sequences(b, kiln_bench::w7_batch, kiln_bench::w7_steps, kiln_bench::w7_model)
                          .transpose(0, 1)
                          .contiguous();
    return TorchW7{TorchTrain<EncoderNet>(net, std::move(opt), x, labels(b))};
  }
};

class TorchW4 {
 public:
  TorchW4() : x_(images(kiln_bench::w2_data(), kiln_bench::w2_batch)) {
    net_->eval();
    run();
  }
  float run() {
    torch::InferenceMode guard;
    return net_->forward(x_).data_ptr<float>()[0];
  }

 private:
  Cnn net_;
  torch::Tensor x_;
};

/// W3 in libtorch: Linear(784, 128), ReLU, Linear(128, 10), Softmax over the classes, in
/// eval() and under torch::InferenceMode, on one image (the same pixels as Kiln's).
class TorchW3 {
 public:
  TorchW3()
      : net_(torch::nn::Linear(kiln_bench::w1_features, kiln_bench::w3_hidden), torch::nn::ReLU(),
             torch::nn::Linear(kiln_bench::w3_hidden, kiln_bench::classes), torch::nn::Softmax(1)) {
    const std::vector<float> pixels = kiln_bench::KilnW3::image();
    x_ = torch::from_blob(const_cast<float*>(pixels.data()), {1, kiln_bench::w1_features},
                          torch::kFloat)
             .clone();
    net_->eval();
    run();
  }
  float run() {
    torch::InferenceMode guard;
    return net_->forward(x_).data_ptr<float>()[0];
  }

 private:
  torch::nn::Sequential net_;
  torch::Tensor x_;
};

// ---------------------------------------------------------------------------------------------
// Benchmarks

void set_threads(int n) {
  kiln::set_num_threads(n);
  torch::set_num_threads(n);
}

/// One workload object per thread count, built on first use (outside the timing).
template <class W>
W& cached(int threads) {
  static std::map<int, std::unique_ptr<W>> cache;
  auto& slot = cache[threads];
  if (!slot) {
    if constexpr (requires { W::make(); }) {
      slot = std::make_unique<W>(W::make());
    } else {
      slot = std::make_unique<W>();
    }
  }
  return *slot;
}

template <class W>
void infer_benchmark(benchmark::State& state, W& w, std::int64_t batch) {
  float first = 0.0f;
  for (auto _ : state) {
    first = w.run();
    benchmark::DoNotOptimize(first);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  if (!std::isfinite(first)) state.SkipWithError("non-finite output");
}

void kiln_w1(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<kiln_bench::KilnW1>(t), kiln_bench::w1_batch);
}
void torch_w1(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<TorchW1>(t), kiln_bench::w1_batch);
}
void kiln_w2(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<kiln_bench::KilnW2>(t), kiln_bench::w2_batch);
}
void torch_w2(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<TorchW2>(t), kiln_bench::w2_batch);
}
void kiln_w3(benchmark::State& s, int t) {
  set_threads(t);
  infer_benchmark(s, cached<kiln_bench::KilnW3>(t), 1);
}
void torch_w3(benchmark::State& s, int t) {
  set_threads(t);
  infer_benchmark(s, cached<TorchW3>(t), 1);
}
void kiln_w4(benchmark::State& s, int t) {
  set_threads(t);
  infer_benchmark(s, cached<kiln_bench::KilnW4>(t), kiln_bench::w2_batch);
}
void torch_w4(benchmark::State& s, int t) {
  set_threads(t);
  infer_benchmark(s, cached<TorchW4>(t), kiln_bench::w2_batch);
}

void kiln_w6(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<kiln_bench::KilnW6>(t), kiln_bench::w6_batch);
}
void torch_w6(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<TorchW6>(t), kiln_bench::w6_batch);
}
void kiln_w7(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<kiln_bench::KilnW7>(t), kiln_bench::w7_batch);
}
void torch_w7(benchmark::State& s, int t) {
  set_threads(t);
  kiln_bench::time_train_steps(s, cached<TorchW7>(t), kiln_bench::w7_batch);
}

void register_pair(const std::string& workload, void (*kiln_fn)(benchmark::State&, int),
                   void (*torch_fn)(benchmark::State&, int), std::vector<int> threads = {1, 2},
                   benchmark::TimeUnit unit = benchmark::kMillisecond) {
  for (int t : threads) {
    const std::string suffix = "/threads:" + std::to_string(t);
    for (auto [lib, fn] : {std::pair{"kiln", kiln_fn}, std::pair{"libtorch", torch_fn}}) {
      benchmark::RegisterBenchmark((workload + "/" + lib + suffix).c_str(), fn, t)
          ->Unit(unit)
          ->UseRealTime()
          ->MeasureProcessCPUTime();
    }
  }
}

/// The process's peak resident set so far, in KiB (Linux reports ru_maxrss in KiB).
long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

template <class W>
void run_steps(W& w, int steps) {
  for (int i = 0; i < steps; ++i) {
    if constexpr (requires { w.step(); }) {
      benchmark::DoNotOptimize(w.step());
    } else {
      benchmark::DoNotOptimize(w.run());
    }
  }
}

/// --peak-rss=<W1|W2|W4>:<kiln|libtorch>[:steps]: builds and runs one workload at 1 thread
/// and prints "peak_rss_kib <workload> <library> <steps> <before> <after>", the peak
/// resident set before the workload was built and after it ran. Returns the exit status.
int peak_rss_mode(std::string_view spec) {
  const auto colon = spec.find(':');
  const auto colon2 = colon == std::string_view::npos ? colon : spec.find(':', colon + 1);
  if (colon == std::string_view::npos) {
    std::fprintf(stderr, "usage: --peak-rss=<W1|W2|W4>:<kiln|libtorch>[:steps]\n");
    return 2;
  }
  const std::string workload(spec.substr(0, colon));
  const std::string lib(spec.substr(
      colon + 1, colon2 == std::string_view::npos ? std::string_view::npos : colon2 - colon - 1));
  const int steps = colon2 == std::string_view::npos
                        ? 50
                        : std::atoi(std::string(spec.substr(colon2 + 1)).c_str());
  set_threads(1);
  const long before = peak_rss_kib();
  if (workload == "W1" && lib == "kiln") {
    kiln_bench::KilnW1 w;
    run_steps(w, steps);
  } else if (workload == "W1" && lib == "libtorch") {
    TorchW1 w = TorchW1::make();
    run_steps(w, steps);
  } else if (workload == "W2" && lib == "kiln") {
    kiln_bench::KilnW2 w;
    run_steps(w, steps);
  } else if (workload == "W2" && lib == "libtorch") {
    TorchW2 w = TorchW2::make();
    run_steps(w, steps);
  } else if (workload == "W4" && lib == "kiln") {
    kiln_bench::KilnW4 w;
    run_steps(w, steps);
  } else if (workload == "W4" && lib == "libtorch") {
    TorchW4 w;
    run_steps(w, steps);
  } else {
    std::fprintf(stderr, "--peak-rss: unknown workload or library in '%.*s'\n",
                 static_cast<int>(spec.size()), spec.data());
    return 2;
  }
  std::printf("peak_rss_kib %s %s %d %ld %ld\n", workload.c_str(), lib.c_str(), steps, before,
              peak_rss_kib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_interop_threads(1);
  constexpr std::string_view peak_flag = "--peak-rss=";
  if (argc == 2 && std::string_view(argv[1]).starts_with(peak_flag)) {
    return peak_rss_mode(std::string_view(argv[1]).substr(peak_flag.size()));
  }
  register_pair("W1_mlp_train", kiln_w1, torch_w1);
  register_pair("W2_cnn_train", kiln_w2, torch_w2);
  register_pair("W3_infer_latency", kiln_w3, torch_w3, {1}, benchmark::kMicrosecond);
  register_pair("W4_cnn_infer", kiln_w4, torch_w4);
  register_pair("W6_lstm_train", kiln_w6, torch_w6);
  register_pair("W7_transformer_train", kiln_w7, torch_w7);
  // What bounds each workload, for run.sh's table of fractions of the machine's limit
  // (benchmarks/peak measures the limits): counted FLOPs per sample of the compute-bound
  // ones, bytes read per run of the latency-bound one.
  benchmark::AddCustomContext("flop_per_sample/W1_mlp_train",
                              std::to_string(kiln_bench::w1_train_flops / kiln_bench::w1_batch));
  benchmark::AddCustomContext("flop_per_sample/W2_cnn_train",
                              std::to_string(kiln_bench::w2_train_flops / kiln_bench::w2_batch));
  benchmark::AddCustomContext("flop_per_sample/W4_cnn_infer",
                              std::to_string(kiln_bench::w4_forward_flops / kiln_bench::w2_batch));
  benchmark::AddCustomContext("bytes_per_run/W3_infer_latency",
                              std::to_string(kiln_bench::w3_weight_bytes));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
