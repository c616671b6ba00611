// Data-parallel training over MPI in a custom loop (Kiln::kiln_mpi): every rank reads its
// shard of data/digits.csv, the gradients are averaged over the ranks by DataParallel, and
// rank 0 saves the model. The last line (rank 0) is test_accuracy=<value>.
//
//   mpirun -np 2 train_mpi [path/to/digits.csv [path/to/model.kiln]]
//   srun -n 2 train_mpi ...                 # under Slurm
//   train_mpi ...                           # without a launcher: one rank
//
// An exception on any rank (a bad CSV row, ...) aborts the whole job with a message naming
// the rank (run_or_abort); a rank that dies ends the job through the launcher.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/data/loader.hpp"
#include "kiln/dist/data_parallel.hpp"
#include "kiln/dist/mpi.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/train_step.hpp"

#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif
#ifndef KILN_TRAIN_MPI_MODEL
#define KILN_TRAIN_MPI_MODEL "digits_mpi.kiln"
#endif

namespace {

// Pixels 0..16 divided by 16, as "pixels"; the target as "label".
kiln::data::Dataset scaled(const kiln::data::Dataset& d) {
  std::vector<float> pixels = d["features"].to_vector<float>();
  for (float& v : pixels) v /= 16.0f;
  return kiln::data::Dataset(
      {{"pixels", kiln::Tensor::from(pixels, d["features"].shape())}, {"label", d["target"]}});
}

}  // namespace

int main(int argc, char** argv) {
  // 1. MPI: every rank runs this program; a process not started by mpirun is one rank.
  kiln::dist::Communicator& world = kiln::dist::init(&argc, &argv);
  return kiln::dist::run_or_abort(world, [&] {
    const std::string path = argc > 1 ? argv[1] : KILN_DIGITS_CSV;
    const std::string model_path = argc > 2 ? argv[2] : KILN_TRAIN_MPI_MODEL;
    constexpr std::uint64_t seed = 42;
    constexpr std::int64_t epochs = 20, batch_per_rank = 32;

    // Every rank reads the file and makes the same seeded split.
    const kiln::data::CsvData data = kiln::data::read_csv(path, {.target = "label"});
    auto [train_rows, test_rows] =
        kiln::data::split(data.dataset, {.test_fraction = 0.2, .seed = seed, .stratify = true});
    const kiln::data::Dataset train = scaled(train_rows), test = scaled(test_rows);

    kiln::Graph g;
    kiln::Value x = g.input("pixels", {kiln::batch, 64});
    kiln::Value y = g.input("label", {kiln::batch}, kiln::i32);
    kiln::Value h = kiln::nn::dense(x, 128, {.activation = kiln::relu, .name = "fc1"});
    kiln::Value logits = kiln::nn::dense(h, 10, {.name = "fc2"});
    kiln::Value probs = kiln::softmax(logits, -1, "probs");
    kiln::TrainStep step(kiln::softmax_cross_entropy(logits, y));
    kiln::optim::SGD opt(step.named_parameters(), {.lr = 0.05, .momentum = 0.9});

    // 2. DataParallel: rank 0's weights everywhere, gradients averaged over the ranks.
    kiln::dist::DataParallel dp(step, world);
    dp.broadcast_parameters();
    // 3. Each rank reads its own shard: the global batch is batch_per_rank x ranks.
    kiln::data::Loader loader(train, {.batch_size = batch_per_rank,
                                      .shuffle = true,
                                      .seed = seed,
                                      .shard_index = world.rank(),
                                      .shard_count = world.size()});
    for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
      loader.set_epoch(epoch);
      double loss_sum = 0.0;
      std::int64_t batches = 0;
      for (const kiln::data::Batch& b : loader) {
        loss_sum += dp.run(b);  // the global batch's mean loss, the same on every rank
        opt.step(dp.gradients());
        ++batches;
      }
      if (world.rank() == 0 && (epoch + 1) % 5 == 0) {
        std::printf("epoch %lld: loss %.4f (%d ranks, global batch %lld)\n",
                    static_cast<long long>(epoch + 1), loss_sum / static_cast<double>(batches),
                    world.size(), static_cast<long long>(batch_per_rank * world.size()));
      }
    }
    const kiln::dist::DataParallelStats& stats = dp.stats();
    // Every rank holds the same weights; rank 0 evaluates and saves.
    kiln::dist::verify_parameters(world, g);
    if (world.rank() == 0) {
      std::printf(
          "%lld steps, %zu all-reduce buckets of %zu bytes per step; compute %.2f s, "
          "waiting for the reductions %.2f s\n",
          static_cast<long long>(stats.runs), stats.buckets, stats.bytes_per_run,
          stats.compute_seconds, stats.communication_seconds);
      kiln::Executable predict(g, {logits});
      const kiln::Tensor scores = predict.run({{"pixels", test["pixels"]}})[0];
      const double acc = kiln::metrics::accuracy(scores, test["label"]);
      kiln::save_model(model_path, g,
                       {.inputs = {x}, .outputs = {probs}, .output_names = {"probs"}});
      std::printf("saved model to %s\n", model_path.c_str());
      std::printf("test_accuracy=%.4f\n", acc);
    }
    return 0;
  });
}
