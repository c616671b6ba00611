// Trainer: what data-parallel training (TrainerOptions::communicator) adds to fit, the
// checkpoint pairs and resume: every rank's epoch predictions gathered in the epoch's row
// order, rank 0's logs on every rank, one stop decision, and errors of one rank thrown on
// all of them (run_collectively).
#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "io/archive.hpp"
#include "kiln/core/error.hpp"
#include "kiln/dist/communicator.hpp"
#include "train/trainer_impl.hpp"

namespace kiln::train {
namespace {

// The error kinds run_collectively carries from one rank to the others.
enum class ErrorKind : std::uint8_t {
  none,
  error,
  shape,
  dtype,
  value,
  name,
  format,
  out_of_memory,
  io,
  data,
  non_finite,
  distributed
};

ErrorKind kind_of(const std::exception& e) {
  // Most derived first (NonFiniteError is a ValueError).
  if (dynamic_cast<const NonFiniteError*>(&e)) return ErrorKind::non_finite;
  if (dynamic_cast<const ShapeError*>(&e)) return ErrorKind::shape;
  if (dynamic_cast<const DTypeError*>(&e)) return ErrorKind::dtype;
  if (dynamic_cast<const ValueError*>(&e)) return ErrorKind::value;
  if (dynamic_cast<const NameError*>(&e)) return ErrorKind::name;
  if (dynamic_cast<const FormatError*>(&e)) return ErrorKind::format;
  if (dynamic_cast<const OutOfMemoryError*>(&e)) return ErrorKind::out_of_memory;
  if (dynamic_cast<const IoError*>(&e)) return ErrorKind::io;
  if (dynamic_cast<const DataError*>(&e)) return ErrorKind::data;
  if (dynamic_cast<const DistributedError*>(&e)) return ErrorKind::distributed;
  return ErrorKind::error;
}

[[noreturn]] void throw_as(ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::shape:
      throw ShapeError(message);
    case ErrorKind::dtype:
      throw DTypeError(message);
    case ErrorKind::value:
      throw ValueError(message);
    case ErrorKind::name:
      throw NameError(message);
    case ErrorKind::format:
      throw FormatError(message);
    case ErrorKind::out_of_memory:
      throw OutOfMemoryError(message);
    case ErrorKind::io:
      throw IoError(message);
    case ErrorKind::data:
      throw DataError(message);
    case ErrorKind::non_finite:
      throw NonFiniteError(message);
    case ErrorKind::distributed:
      throw DistributedError(message);
    case ErrorKind::none:
    case ErrorKind::error:
      break;
  }
  throw Error(message);
}

std::vector<std::uint8_t> encode_status(ErrorKind kind, const std::string& message) {
  std::vector<std::uint8_t> out(message.begin(), message.end());
  out.insert(out.begin(), static_cast<std::uint8_t>(kind));
  return out;
}

// This rank's pending batches: u32 batch count, i64 rows per batch, then the predictions
// and targets stacked (when there are any).
std::vector<std::uint8_t> encode_outputs(const EpochSums& s) {
  internal::ArchiveWriter w;
  w.u32(static_cast<std::uint32_t>(s.local_predictions.size()));
  for (const Tensor& p : s.local_predictions) w.i64(p.rank() == 0 ? 1 : p.dim(0));
  if (!s.local_predictions.empty()) {
    w.tensor("predictions", concat_rows(s.local_predictions));
    w.tensor("targets", concat_rows(s.local_targets));
  }
  return w.finish();
}

struct RankOutputs {
  std::vector<std::int64_t> batch_rows;
  Tensor predictions, targets;
};

RankOutputs decode_outputs(std::span<const std::uint8_t> bytes, int rank) {
  internal::ArchiveReader r(bytes, "rank " + std::to_string(rank) + "'s epoch predictions");
  RankOutputs out;
  const std::size_t n = r.count("batch count", 8);
  std::int64_t rows = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out.batch_rows.push_back(r.i64("batch rows"));
    rows += out.batch_rows.back();
  }
  if (n > 0) {
    out.predictions = r.tensor("predictions").second;
    out.targets = r.tensor("targets").second;
    if (out.predictions.dim(0) != rows || out.targets.dim(0) != rows)
      r.fail("the predictions and targets do not hold the batches' rows");
  }
  r.expect_end();
  return out;
}

// Rows of every rank's tensor interleaved batch by batch as the sharded loader dealt them:
// the k-th batches of shards 0..p-1 are the k-th global batch, whose j-th rows, in rank
// order, are consecutive in the epoch's order (shard i reads positions i, i + p, ...).
Tensor interleave(const std::vector<RankOutputs>& ranks, bool targets) {
  const auto& first = targets ? ranks[0].targets : ranks[0].predictions;
  std::int64_t rows = 0;
  for (const RankOutputs& r : ranks) rows += (targets ? r.targets : r.predictions).dim(0);
  std::vector<std::int64_t> dims(first.shape().dims().begin(), first.shape().dims().end());
  dims[0] = rows;
  Tensor out = Tensor::empty(Shape(dims), first.dtype());
  const std::size_t row_bytes =
      first.dim(0) == 0 ? 0 : first.nbytes() / static_cast<std::size_t>(first.dim(0));
  auto* dst = static_cast<std::uint8_t*>(out.raw());
  std::vector<std::int64_t> offset(ranks.size(), 0);
  for (std::size_t k = 0; k < ranks[0].batch_rows.size(); ++k) {
    std::int64_t most = 0;
    for (const RankOutputs& r : ranks) most = std::max(most, r.batch_rows[k]);
    for (std::int64_t j = 0; j < most; ++j)
      for (std::size_t i = 0; i < ranks.size(); ++i) {
        if (j >= ranks[i].batch_rows[k]) continue;
        const Tensor& t = targets ? ranks[i].targets : ranks[i].predictions;
        std::memcpy(dst,
                    static_cast<const std::uint8_t*>(t.raw()) +
                        static_cast<std::size_t>(offset[i] + j) * row_bytes,
                    row_bytes);
        dst += row_bytes;
      }
    for (std::size_t i = 0; i < ranks.size(); ++i) offset[i] += ranks[i].batch_rows[k];
  }
  return out;
}

}  // namespace

int Trainer::Impl::rank() const { return options.communicator ? options.communicator->rank() : 0; }
int Trainer::Impl::world() const { return options.communicator ? options.communicator->size() : 1; }

void run_collectively(dist::Communicator* comm, bool rank0_only,
                      const std::function<void()>& work) {
  if (!comm) {
    work();
    return;
  }
  std::vector<std::uint8_t> status = encode_status(ErrorKind::none, {});
  if (!rank0_only || comm->rank() == 0) {
    try {
      work();
    } catch (const std::exception& e) {
      status = encode_status(kind_of(e), e.what());
    }
  }
  const auto all = comm->all_gather(status);
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty() || all[r][0] == static_cast<std::uint8_t>(ErrorKind::none)) continue;
    std::string message(all[r].begin() + 1, all[r].end());
    if (r != 0)
      message = "rank " + std::to_string(r) + " of " + std::to_string(all.size()) + ": " + message;
    throw_as(static_cast<ErrorKind>(std::min<std::uint8_t>(
                 all[r][0], static_cast<std::uint8_t>(ErrorKind::distributed))),
             message);
  }
}

void Trainer::Impl::gather_epoch_outputs() {
  dist::Communicator* c = comm();
  if (!c || options.metrics.empty()) return;
  const auto all = c->all_gather(encode_outputs(sums));
  sums.local_predictions.clear();
  sums.local_targets.clear();
  std::vector<RankOutputs> ranks;
  for (std::size_t r = 0; r < all.size(); ++r)
    ranks.push_back(decode_outputs(all[r], static_cast<int>(r)));
  for (std::size_t r = 1; r < ranks.size(); ++r)
    if (ranks[r].batch_rows.size() != ranks[0].batch_rows.size())
      throw DistributedError("Trainer.fit: rank " + std::to_string(r) + " trained " +
                             std::to_string(ranks[r].batch_rows.size()) +
                             " batches since the last gather, rank 0 " +
                             std::to_string(ranks[0].batch_rows.size()));
  if (ranks[0].batch_rows.empty()) return;
  sums.predictions.push_back(interleave(ranks, false));
  sums.targets.push_back(interleave(ranks, true));
}

void Trainer::Impl::agree_on_logs(Logs& logs) const {
  dist::Communicator* c = comm();
  if (!c) return;
  internal::ArchiveWriter w;
  w.u32(static_cast<std::uint32_t>(logs.size()));
  for (const auto& [k, v] : logs) {
    w.string(k);
    w.f64(v);
  }
  std::vector<std::uint8_t> bytes = w.finish();
  dist::broadcast_bytes(*c, bytes, 0);
  if (c->rank() == 0) return;
  internal::ArchiveReader r(bytes, "rank 0's epoch logs");
  Logs out;
  const std::size_t n = r.count("log entries", 16);
  for (std::size_t i = 0; i < n; ++i) {
    std::string key = r.string("log name");
    out[key] = r.f64("log value");
  }
  r.expect_end();
  logs = std::move(out);
}

bool Trainer::Impl::agree_on_stop(bool stop_here) const {
  dist::Communicator* c = comm();
  if (!c) return stop_here;
  std::vector<double> flag{stop_here ? 1.0 : 0.0};
  c->all_reduce_sum(flag);
  return flag[0] > 0.0;
}

void Trainer::Impl::check_same_fit(
    const std::vector<std::pair<std::string, std::int64_t>>& facts) const {
  dist::Communicator* c = comm();
  if (!c) return;
  std::vector<std::uint8_t> mine(facts.size() * sizeof(std::int64_t));
  for (std::size_t i = 0; i < facts.size(); ++i)
    std::memcpy(mine.data() + i * sizeof(std::int64_t), &facts[i].second, sizeof(std::int64_t));
  const auto all = c->all_gather(mine);
  std::string diffs;
  for (std::size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    for (std::size_t i = 0; i < facts.size(); ++i) {
      std::int64_t a = 0, b = 0;
      if (all[r].size() != mine.size() || all[0].size() != mine.size()) {
        diffs += "; rank " + std::to_string(r) + " sent other facts";
        break;
      }
      std::memcpy(&a, all[0].data() + i * sizeof a, sizeof a);
      std::memcpy(&b, all[r].data() + i * sizeof b, sizeof b);
      if (a != b)
        diffs += "; rank " + std::to_string(r) + " has " + facts[i].first + " " +
                 std::to_string(b) + ", rank 0 " + std::to_string(a);
    }
  }
  if (!diffs.empty())
    throw DistributedError(
        "Trainer.fit: every rank must fit the same way (the same datasets, options "
        "and checkpoint)" +
        diffs);
}

}  // namespace kiln::train
