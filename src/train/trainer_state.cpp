// Trainer: checkpoint/model pairs, resuming, and the trainer's state in a checkpoint.
//
// A pair is "model-<step>.kiln" and "ckpt-<step>.kiln" in one folder. The model file is
// written first (atomically), then the checkpoint (atomically), which records the model
// file's SHA-256 ("pair.model_sha256"): the checkpoint is the commit point. A crash
// before its rename leaves the previous pair intact (and at most an orphan model file,
// removed by the next save); after it, the new pair is complete.
//
// Data-parallel (TrainerOptions::communicator), saving and resuming are collective: rank 0
// writes (and reads) the files, every rank throws what rank 0's write threw, and resume
// sends the checkpoint's bytes to the other ranks, which restore the same state.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "dist/collective_text.hpp"
#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "io/sha256.hpp"
#include "kiln/core/error.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/train/checkpoint.hpp"
#include "kiln/train/trainer.hpp"
#include "train/trainer_impl.hpp"

namespace kiln::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* sha_key = "pair.model_sha256";

Tensor i64_tensor(std::int64_t v) { return Tensor::from<std::int64_t>({v}, Shape({1})); }
Tensor f64_tensor(double v) { return Tensor::from<double>({v}, Shape({1})); }

Tensor digest_tensor(const internal::Sha256Digest& d) {
  std::vector<std::int32_t> v(d.begin(), d.end());
  return Tensor::from(v, Shape({32}));
}

// The step of "<prefix><digits>.kiln", or -1.
std::int64_t step_of(const std::string& file, const std::string& prefix) {
  if (file.size() <= prefix.size() + 5 || file.rfind(prefix, 0) != 0 ||
      file.substr(file.size() - 5) != ".kiln")
    return -1;
  const std::string digits = file.substr(prefix.size(), file.size() - prefix.size() - 5);
  if (digits.empty() || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoll(digits);
}

// Checkpoint steps in `dir`, newest first.
std::vector<std::int64_t> checkpoint_steps(const std::string& dir) {
  std::vector<std::int64_t> steps;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::int64_t s = step_of(it->path().filename().string(), "ckpt-");
    if (s >= 0) steps.push_back(s);
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

// Keeps the newest `keep` checkpoints up to `current` with their model files; removes the
// other pairs (older ones, and newer ones of an abandoned run) and stale temporary files.
void prune(const std::string& dir, std::int64_t current, std::int64_t keep) {
  std::vector<std::int64_t> kept;
  for (std::int64_t s : checkpoint_steps(dir))
    if (s <= current && (keep <= 0 || static_cast<std::int64_t>(kept.size()) < keep))
      kept.push_back(s);
  std::error_code ec;
  std::vector<fs::path> remove;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    std::int64_t s = step_of(file, "ckpt-");
    if (s < 0) s = step_of(file, "model-");
    if (s >= 0 && std::find(kept.begin(), kept.end(), s) == kept.end())
      remove.push_back(it->path());
  }
  for (const fs::path& p : remove) fs::remove(p, ec);  // best effort
  // Each pair has new names, so the saves' own clean-up never sees the temp files of killed
  // earlier saves: remove those of any pair.
  internal::remove_stale_temp_files(dir, [](std::string_view target) {
    const std::string name(target);
    return step_of(name, "ckpt-") >= 0 || step_of(name, "model-") >= 0;
  });
}

std::int64_t i64_of(const Tensor& t, const std::string& name, const std::string& source) {
  if (t.dtype() != DType::i64 || t.numel() != 1)
    throw ValueError(source + ": trainer state '" + name + "' must be one i64");
  return t.data<std::int64_t>()[0];
}

double f64_of(const Tensor& t, const std::string& name, const std::string& source) {
  if (t.dtype() != DType::f64 || t.numel() != 1)
    throw ValueError(source + ": trainer state '" + name + "' must be one f64");
  return t.data<double>()[0];
}

}  // namespace

std::string checkpoint_file_name(std::int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "ckpt-%012lld.kiln", static_cast<long long>(step));
  return buf;
}

std::string model_file_name(std::int64_t step) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "model-%012lld.kiln", static_cast<long long>(step));
  return buf;
}

NamedTensors Trainer::Impl::trainer_state() const {
  NamedTensors out;
  out.emplace_back("trainer.epoch", i64_tensor(position.epoch));
  out.emplace_back("trainer.batch", i64_tensor(position.batch));
  out.emplace_back("trainer.step", i64_tensor(position.step));
  out.emplace_back("trainer.stop", i64_tensor(stop ? 1 : 0));
  out.emplace_back("trainer.loss_sum", f64_tensor(sums.loss_sum));
  out.emplace_back("trainer.rows", i64_tensor(sums.rows));
  // Where a fit with another number of ranks continues (see Trainer::fit).
  if (epoch_rows >= 0) out.emplace_back("trainer.epoch_rows", i64_tensor(epoch_rows));
  out.emplace_back("dist.world_size", i64_tensor(world()));
  if (!sums.predictions.empty()) {
    out.emplace_back("trainer.epoch_predictions", concat_rows(sums.predictions));
    out.emplace_back("trainer.epoch_targets", concat_rows(sums.targets));
  }
  for (std::size_t e = 0; e < history.epochs.size(); ++e)
    for (const auto& [key, v] : history.epochs[e])
      out.emplace_back("history." + std::to_string(e) + "." + key, f64_tensor(v));
  if (fitting) {
    for (std::size_t i = 0; i < callbacks.size(); ++i) {
      const std::string prefix = "callback." + std::to_string(i) + "." + callbacks[i]->kind() + "/";
      for (auto& [name, t] : callbacks[i]->state()) out.emplace_back(prefix + name, t);
    }
  } else {
    for (const auto& [key, state] : callback_states)
      for (const auto& [name, t] : state) out.emplace_back("callback." + key + "/" + name, t);
  }
  return out;
}

void Trainer::Impl::load_trainer_state(const NamedTensors& state, const std::string& source) {
  TrainerPosition pos;
  bool stop_flag = false;
  EpochSums s;
  std::int64_t rows_done = -1;  // unknown in checkpoints written before it was saved
  std::int64_t world_size = 1;
  History h;
  std::map<std::string, CallbackState> cbs;
  bool has_position = false;
  for (const auto& [name, t] : state) {
    if (name == "trainer.epoch") {
      pos.epoch = i64_of(t, name, source);
      has_position = true;
    } else if (name == "trainer.batch") {
      pos.batch = i64_of(t, name, source);
    } else if (name == "trainer.step") {
      pos.step = i64_of(t, name, source);
    } else if (name == "trainer.stop") {
      stop_flag = i64_of(t, name, source) != 0;
    } else if (name == "trainer.loss_sum") {
      s.loss_sum = f64_of(t, name, source);
    } else if (name == "trainer.rows") {
      s.rows = i64_of(t, name, source);
    } else if (name == "trainer.epoch_rows") {
      rows_done = i64_of(t, name, source);
      if (rows_done < 0)
        throw ValueError(source + ": trainer state 'trainer.epoch_rows' is negative");
    } else if (name == "dist.world_size") {
      world_size = i64_of(t, name, source);
      if (world_size < 1)
        throw ValueError(source + ": trainer state 'dist.world_size' must be at least 1, got " +
                         std::to_string(world_size));
    } else if (name == "trainer.epoch_predictions") {
      s.predictions = {t};
    } else if (name == "trainer.epoch_targets") {
      s.targets = {t};
    } else if (name.rfind("history.", 0) == 0) {
      const auto dot = name.find('.', 8);
      const std::string index = name.substr(8, dot == std::string::npos ? 0 : dot - 8);
      if (dot == std::string::npos || index.empty() || index.size() > 9 ||
          !std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw ValueError(source + ": bad history entry '" + name + "'");
      const auto e = static_cast<std::size_t>(std::stoll(index));
      if (e > h.epochs.size() || e > 1000000)
        throw ValueError(source + ": history entry '" + name + "' is out of order");
      if (e == h.epochs.size()) h.epochs.emplace_back();
      h.epochs[e][name.substr(dot + 1)] = f64_of(t, name, source);
    } else if (name.rfind("callback.", 0) == 0) {
      const auto slash = name.find('/');
      if (slash == std::string::npos)
        throw ValueError(source + ": bad callback entry '" + name + "'");
      cbs[name.substr(9, slash - 9)].emplace_back(name.substr(slash + 1), t);
    }
  }
  if (!has_position)
    throw ValueError(source + ": holds no trainer state (not written by Trainer::save_checkpoint)");
  position = pos;
  stop = stop_flag;
  sums = std::move(s);
  epoch_rows = rows_done;
  saved_world = world_size;
  history = std::move(h);
  callback_states = std::move(cbs);
}

std::vector<std::uint8_t> Trainer::Impl::model_bytes() const {
  SaveOptions so = options.model;
  if (so.inputs.empty())
    for (const std::string& name : prediction_inputs) so.inputs.push_back(graph->find(name));
  if (so.outputs.empty()) so.outputs = {options.predictions};
  return serialize_model(*graph, so);
}

void Trainer::save_model(const std::string& path) {
  const Impl& m = *impl_;
  run_collectively(m.comm(), true, [&] { internal::write_file_atomically(path, m.model_bytes()); });
}

CheckpointPair Trainer::save_checkpoint(const std::string& dir,
                                        const CheckpointPairOptions& options) {
  Impl& m = *impl_;
  CheckpointPair pair;
  pair.step = m.position.step;
  pair.model = join(dir, model_file_name(pair.step));
  pair.checkpoint = join(dir, checkpoint_file_name(pair.step));
  // Every rank's predictions of the epoch so far, for the metrics of a resumed fit.
  m.gather_epoch_outputs();
  run_collectively(m.comm(), true, [&] {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw IoError(dir + ": cannot create the checkpoint folder: " + ec.message());
    const std::vector<std::uint8_t> model = m.model_bytes();
    internal::write_file_atomically(pair.model, model);
    CheckpointSave what;
    what.optimizer = m.options.optimizer;
    what.step = pair.step;
    what.train_step = m.step.get();
    what.extra = m.trainer_state();
    what.extra.emplace_back(sha_key, digest_tensor(internal::sha256(model)));
    kiln::save_checkpoint(pair.checkpoint, *m.graph, what);
    prune(dir, pair.step, options.keep_last);
  });
  return pair;
}

std::optional<CheckpointPair> latest_checkpoint(const std::string& dir) {
  for (std::int64_t s : checkpoint_steps(dir)) {
    CheckpointPair pair{join(dir, checkpoint_file_name(s)), join(dir, model_file_name(s)), s};
    try {
      const auto bytes = internal::read_file(pair.checkpoint);
      (void)internal::open_envelope(bytes, internal::checkpoint_magic, checkpoint_format_version,
                                    pair.checkpoint, "checkpoint");
      (void)model_content_hash(pair.model);  // checks the model file's envelope
      return pair;
    } catch (const Error&) {
      continue;  // an incomplete pair: try the one before
    }
  }
  return std::nullopt;
}

void Trainer::Impl::finish_restore(const CheckpointInfo& info, const std::string& source) {
  load_trainer_state(info.extra, source);
  if (position.step != info.step)
    throw ValueError(source + ": trainer step " + std::to_string(position.step) +
                     " differs from the checkpoint's step " + std::to_string(info.step));
  resumed = true;
}

std::string Trainer::Impl::restore_pair(const std::string& path,
                                        std::vector<std::uint8_t>* checkpoint_bytes) {
  std::vector<CheckpointPair> candidates;
  const bool folder = fs::is_directory(path);
  if (folder) {
    for (std::int64_t s : checkpoint_steps(path))
      candidates.push_back(
          {join(path, checkpoint_file_name(s)), join(path, model_file_name(s)), s});
    if (candidates.empty())
      throw ValueError("Trainer.resume: folder '" + path + "' holds no checkpoint (ckpt-*.kiln)");
  } else {
    const fs::path p(path);
    const std::int64_t s = step_of(p.filename().string(), "ckpt-");
    candidates.push_back({path, s >= 0 ? (p.parent_path() / model_file_name(s)).string() : "", s});
  }
  std::string failures;
  for (const CheckpointPair& pair : candidates) {
    try {
      std::vector<std::uint8_t> bytes = internal::read_file(pair.checkpoint);
      const CheckpointInfo info =
          restore_checkpoint(bytes, pair.checkpoint, *graph,
                             {.optimizer = options.optimizer, .train_step = step.get()});
      const Tensor* sha = nullptr;
      for (const auto& [name, t] : info.extra)
        if (name == sha_key) sha = &t;
      const bool model_there = !pair.model.empty() && fs::exists(pair.model);
      if (folder || model_there) {
        // The pair must match: the model file the checkpoint was committed with.
        if (!sha || !model_there)
          throw ValueError(pair.checkpoint + ": its model file '" + pair.model + "' is missing");
        const auto digest = internal::sha256(internal::read_file(pair.model));
        if (!std::equal(digest.begin(), digest.end(), sha->data<std::int32_t>(),
                        sha->data<std::int32_t>() + sha->numel()))
          throw ValueError(pair.checkpoint + ": model file '" + pair.model +
                           "' is not the one saved with it (SHA-256 differs)");
      }
      finish_restore(info, pair.checkpoint);
      if (checkpoint_bytes) *checkpoint_bytes = std::move(bytes);
      return pair.checkpoint;
    } catch (const Error& e) {
      if (!folder) throw;
      failures += std::string("\n  ") + e.what();
    }
  }
  throw ValueError("Trainer.resume: no checkpoint in '" + path + "' loads:" + failures);
}

TrainerPosition Trainer::resume(const std::string& path) {
  Impl& m = *impl_;
  if (m.fitting) throw ValueError("Trainer.resume: called during fit");
  dist::Communicator* comm = m.comm();
  if (!comm) {
    (void)m.restore_pair(path, nullptr);
    return m.position;
  }
  // Rank 0 finds, checks and restores the pair, then sends the checkpoint's bytes (the
  // other ranks need no access to the files); every rank restores them alike.
  std::vector<std::uint8_t> bytes;
  std::string source;
  run_collectively(comm, true, [&] { source = m.restore_pair(path, &bytes); });
  dist::broadcast_bytes(*comm, bytes, 0);
  source = dist::broadcast_text(*comm, source, 0);
  run_collectively(comm, false, [&] {
    if (comm->rank() == 0) return;
    const CheckpointInfo info = restore_checkpoint(
        bytes, source, *m.graph, {.optimizer = m.options.optimizer, .train_step = m.step.get()});
    m.finish_restore(info, source);
  });
  return m.position;
}

}  // namespace kiln::train
