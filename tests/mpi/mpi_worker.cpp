// The program tests/mpi/mpi_test.cpp runs under mpiexec: one mode per scenario. It checks
// its own results and exits non-zero (with a line saying what differed) when one is wrong;
// the failure modes end the job on purpose and the test checks how.
//
//   mpi_worker collectives                     sums, gathers, broadcasts, requests (any np)
//   mpi_worker equivalence CSV BATCH STEPS     np ranks with BATCH/np each == 1 process, BATCH
//   mpi_worker throw                           rank 1 throws a DataError in run_or_abort
//   mpi_worker kill CSV STEP                   rank 1 raises SIGKILL on itself at STEP
//   mpi_worker stuck SECONDS                   rank 1 sleeps; the others' all-reduce times out
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/data/loader.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/dist/data_parallel.hpp"
#include "kiln/dist/mpi.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"

namespace {

using kiln::dist::Communicator;

long long steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Counts failed checks; each prints what differed.
struct Checks {
  int rank = 0;
  int failed = 0;
  void expect(bool ok, const std::string& what) {
    if (!ok) {
      ++failed;
      std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
    }
  }
};

int collectives(Communicator& world) {
  const int rank = world.rank(), size = world.size();
  Checks c{rank};

  // Sums: rank r contributes (r + 1) * (i + 1) to element i; the sum is
  // (i + 1) * size (size + 1) / 2, exact in float for these sizes.
  const double ranks_sum = size * (size + 1) / 2.0;
  std::vector<float> f(1000);
  std::vector<double> d(7);
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>((rank + 1) * (i + 1));
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = (rank + 1) * (i + 0.5);
  world.all_reduce_sum(std::span<float>(f));
  world.all_reduce_sum(std::span<double>(d));
  for (std::size_t i = 0; i < f.size(); ++i) {
    c.expect(f[i] == static_cast<float>((i + 1) * ranks_sum),
             "float sum [" + std::to_string(i) + "] = " + std::to_string(f[i]));
  }
  for (std::size_t i = 0; i < d.size(); ++i) {
    c.expect(d[i] == (i + 0.5) * ranks_sum, "double sum [" + std::to_string(i) + "]");
  }
  std::vector<float> none;
  world.all_reduce_sum(std::span<float>(none));  // an empty sum is a valid collective

  // Non-blocking sums started in one order and completed in another: a (waited last), b
  // (tested until done), c (waited first).
  std::vector<float> a(100, static_cast<float>(rank)), b(3, 1.0f), cc(5000, 0.5f);
  const kiln::dist::RequestId ra = world.start_all_reduce_sum(a);
  const kiln::dist::RequestId rb = world.start_all_reduce_sum(b);
  const kiln::dist::RequestId rc = world.start_all_reduce_sum(cc);
  c.expect(ra != rb && rb != rc && ra != rc, "request ids are distinct");
  world.wait(rc);
  while (!world.test(rb)) {
  }
  world.wait(ra);
  const float ranks_below = static_cast<float>(size * (size - 1) / 2);
  for (float v : a) c.expect(v == ranks_below, "non-blocking a = " + std::to_string(v));
  for (float v : b)
    c.expect(v == static_cast<float>(size), "non-blocking b = " + std::to_string(v));
  for (float v : cc) c.expect(v == 0.5f * size, "non-blocking c = " + std::to_string(v));
  bool threw = false;
  try {
    world.wait(ra);  // already complete and released
  } catch (const kiln::DistributedError& e) {
    threw = std::string(e.what()).find("rank " + std::to_string(rank)) != std::string::npos;
  }
  c.expect(threw, "waiting for a released request throws DistributedError naming the rank");

  // Broadcast from the last rank.
  std::vector<std::uint8_t> bytes(33, static_cast<std::uint8_t>(rank));
  world.broadcast(bytes, size - 1);
  for (std::uint8_t v : bytes) c.expect(v == size - 1, "broadcast byte " + std::to_string(v));
  threw = false;
  try {
    world.broadcast(bytes, size);
  } catch (const kiln::DistributedError& e) {
    threw = std::string(e.what()).find("root") != std::string::npos;
  }
  c.expect(threw, "broadcast from a root outside the ranks throws DistributedError");

  // Gather of unequal sizes: rank r sends 3r + 1 bytes, each r + 10; rank 1 sends none
  // when there are three or more ranks.
  const std::size_t mine_n = (size >= 3 && rank == 1) ? 0 : 3 * rank + 1;
  const std::vector<std::uint8_t> mine(mine_n, static_cast<std::uint8_t>(rank + 10));
  const std::vector<std::vector<std::uint8_t>> all = world.all_gather(mine);
  c.expect(all.size() == static_cast<std::size_t>(size), "all_gather gives one part per rank");
  for (int r = 0; r < size && r < static_cast<int>(all.size()); ++r) {
    const std::size_t n = (size >= 3 && r == 1) ? 0 : 3 * r + 1;
    c.expect(all[r] == std::vector<std::uint8_t>(n, static_cast<std::uint8_t>(r + 10)),
             "all_gather part of rank " + std::to_string(r) + " has " +
                 std::to_string(all[r].size()) + " bytes");
  }

  // The libkiln helper over this communicator: a vector of any size from the last rank.
  std::vector<std::uint8_t> message;
  if (rank == size - 1) message = {'k', 'i', 'l', 'n'};
  kiln::dist::broadcast_bytes(world, message, size - 1);
  c.expect(message == std::vector<std::uint8_t>{'k', 'i', 'l', 'n'}, "broadcast_bytes");

  world.barrier();
  std::printf("rank %d of %d (launched_by_mpi %d): collectives %s\n", rank, size,
              kiln::dist::launched_by_mpi() ? 1 : 0, c.failed ? "FAILED" : "OK");
  return c.failed ? 1 : 0;
}

int throw_on_rank_1(Communicator& world) {
  if (world.rank() == 1) {
    throw kiln::DataError("digits.csv: row 7, column \"p3\": \"x\" is not a number");
  }
  std::vector<float> g(10, 1.0f);
  world.all_reduce_sum(std::span<float>(g));  // waits for rank 1, which never comes
  std::printf("rank %d: the all-reduce completed without rank 1\n", world.rank());
  return 0;
}

// The digits model of the equivalence and kill modes: 64-32-10 MLP, softmax cross-entropy.
struct DigitsModel {
  kiln::Graph graph;
  kiln::Value loss;
  DigitsModel() {
    kiln::Value x = graph.input("pixels", {kiln::batch, 64});
    kiln::Value y = graph.input("label", {kiln::batch}, kiln::i32);
    kiln::Value h = kiln::nn::dense(x, 32, {.activation = kiln::relu, .name = "fc1", .seed = 3});
    kiln::Value logits = kiln::nn::dense(h, 10, {.name = "fc2", .seed = 4});
    loss = kiln::softmax_cross_entropy(logits, y);
  }
};

// digits.csv as "pixels" (divided by 16) and "label".
kiln::data::Dataset read_digits(const std::string& path) {
  const kiln::data::CsvData csv = kiln::data::read_csv(path, {.target = "label"});
  const kiln::Tensor features = csv.dataset["features"];
  std::vector<float> pixels = features.to_vector<float>();
  for (float& v : pixels) v /= 16.0f;
  return kiln::data::Dataset(
      {{"pixels", kiln::Tensor::from(pixels, features.shape())}, {"label", csv.dataset["target"]}});
}

constexpr std::uint64_t loader_seed = 11;
const kiln::optim::SGDOptions sgd{.lr = 0.05, .momentum = 0.9};

// Trains `steps` steps of `batch` rows per rank over epochs of `data`; calls at_step(k)
// before step k. Returns the parameters.
template <class Run, class AtStep>
void train(const kiln::data::Dataset& data, std::int64_t batch, int steps, int shard, int shards,
           kiln::TrainStep& step, Run run, AtStep at_step) {
  kiln::optim::SGD opt(step.named_parameters(), sgd);
  kiln::data::Loader loader(data, {.batch_size = batch,
                                   .shuffle = true,
                                   .seed = loader_seed,
                                   .drop_last = true,
                                   .shard_index = shard,
                                   .shard_count = shards});
  int done = 0;
  for (std::int64_t epoch = 0; done < steps; ++epoch) {
    loader.set_epoch(epoch);
    for (const kiln::data::Batch& b : loader) {
      if (done == steps) break;
      at_step(done);
      opt.step(run(b));
      ++done;
    }
  }
}

std::vector<std::vector<float>> values(const kiln::TrainStep& step) {
  std::vector<std::vector<float>> out;
  for (const kiln::Tensor& t : step.parameters()) out.push_back(t.to_vector<float>());
  return out;
}

// Largest relative difference of a parameter tensor: max |a - b| / max |b|.
double max_relative_difference(const std::vector<std::vector<float>>& a,
                               const std::vector<std::vector<float>>& b) {
  double worst = 0.0;
  for (std::size_t t = 0; t < a.size(); ++t) {
    double diff = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < a[t].size(); ++i) {
      diff = std::max(diff, std::fabs(static_cast<double>(a[t][i]) - b[t][i]));
      scale = std::max(scale, std::fabs(static_cast<double>(b[t][i])));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

// Acceptance 1: np ranks with batch B/np each (DataParallel, sharded Loader) end with the
// weights one process reaches with batch B (plain TrainStep, unsharded Loader, computed
// here on rank 0 without a communicator).
int equivalence(Communicator& world, const std::string& csv, std::int64_t batch, int steps) {
  const int rank = world.rank(), size = world.size();
  if (batch % size != 0) throw kiln::ValueError("batch must be a multiple of the ranks");
  const kiln::data::Dataset data = read_digits(csv);

  DigitsModel model;
  kiln::TrainStep step(model.loss);
  const std::vector<std::vector<float>> initial = values(step);
  // Other ranks start elsewhere: broadcast_parameters must bring rank 0's weights.
  if (rank != 0) step.parameters()[0].data<float>()[0] += 1.0f;
  kiln::dist::DataParallel dp(step, world, {.bucket_bytes = 4096});
  dp.broadcast_parameters();
  train(
      data, batch / size, steps, rank, size, step,
      [&](const kiln::data::Batch& b) { return (dp.run(b), dp.gradients()); }, [](int) {});
  const std::vector<std::vector<float>> distributed = values(step);
  std::printf("rank %d of %d: %d steps of %lld rows (global batch %lld), %zu buckets\n", rank, size,
              steps, static_cast<long long>(batch / size), static_cast<long long>(dp.global_rows()),
              dp.stats().buckets);
  // Every rank holds the same weights (checksum over the ranks).
  kiln::dist::verify_parameters(world, model.graph);

  int failed = 0;
  if (rank == 0) {
    DigitsModel ref_model;
    kiln::TrainStep ref(ref_model.loss);
    if (values(ref) != initial) {
      std::fprintf(stderr, "FAILED: the reference model starts from other weights\n");
      return 1;
    }
    train(
        data, batch, steps, 0, 1, ref,
        [&](const kiln::data::Batch& b) { return (ref.run(b), ref.gradients()); }, [](int) {});
    const double rel = max_relative_difference(distributed, values(ref));
    const double moved = max_relative_difference(initial, values(ref));
    // What the tolerance tells apart: one process with a batch of B/np (a rank's own
    // shard, not averaged).
    DigitsModel half_model;
    kiln::TrainStep half(half_model.loss);
    train(
        data, batch / size, steps, 0, size, half,
        [&](const kiln::data::Batch& b) { return (half.run(b), half.gradients()); }, [](int) {});
    const double unaveraged = max_relative_difference(values(half), values(ref));
    std::printf(
        "np %d x batch %lld vs 1 x batch %lld after %d steps: max relative difference "
        "%.3g (weights moved %.3g; one rank's shard alone differs by %.3g)\n",
        size, static_cast<long long>(batch / size), static_cast<long long>(batch), steps, rel,
        moved, unaveraged);
    if (!(rel <= 1e-5)) {
      std::fprintf(stderr, "FAILED: relative difference %.3g > 1e-5\n", rel);
      failed = 1;
    }
    if (!(moved > 1e-2) || !(unaveraged > 1e-3)) {
      std::fprintf(stderr, "FAILED: the check cannot tell training from no training\n");
      failed = 1;
    }
  }
  world.barrier();
  return failed;
}

// Data-parallel training (DataParallel, sharded Loader) until rank 1 kills itself at
// kill_step.
int kill_at_step(Communicator& world, const std::string& csv, int kill_step) {
  const kiln::data::Dataset data = read_digits(csv);
  DigitsModel model;
  kiln::TrainStep step(model.loss);
  kiln::dist::DataParallel dp(step, world);
  dp.broadcast_parameters();
  train(
      data, 16, 1000000, world.rank(), world.size(), step,
      [&](const kiln::data::Batch& b) { return (dp.run(b), dp.gradients()); },
      [&](int k) {
        if (world.rank() == 1 && k == kill_step) {
          std::printf("rank 1 raises SIGKILL at step %d, steady_ns %lld\n", k, steady_ns());
          std::fflush(stdout);
          std::raise(SIGKILL);
        }
      });
  return 0;
}

int stuck(Communicator& world) {
  if (world.rank() == 1) {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::vector<float> g(10, 1.0f);
  std::printf("rank %d enters all_reduce_sum, steady_ns %lld\n", world.rank(), steady_ns());
  std::fflush(stdout);
  world.all_reduce_sum(std::span<float>(g));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  kiln::dist::MpiOptions options;
  if (mode == "stuck" && argc > 2) options.timeout_seconds = std::atof(argv[2]);
  Communicator& world = kiln::dist::init(&argc, &argv, options);
  return kiln::dist::run_or_abort(world, [&] {
    if (mode == "collectives") return collectives(world);
    if (mode == "throw") return throw_on_rank_1(world);
    if (mode == "equivalence" && argc == 5) {
      return equivalence(world, argv[2], std::atoll(argv[3]), std::atoi(argv[4]));
    }
    if (mode == "kill" && argc == 4) return kill_at_step(world, argv[2], std::atoi(argv[3]));
    if (mode == "stuck") return stuck(world);
    std::fprintf(stderr,
                 "usage: mpi_worker collectives|equivalence CSV B STEPS|throw|kill CSV "
                 "STEP|stuck SECONDS\n");
    return 2;
  });
}
