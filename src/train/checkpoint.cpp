// Checkpoints. Payload (cereal portable binary, see src/io/archive.hpp):
//   i64 step
//   u8 has_rng, 4 x u64 state (when set)
//   u8 has_optimizer, then kind, u32 entry count, tensors (name, dtype, dims, bytes)
//   u32 parameter count, per parameter: u8 trainable, tensor record
//   from version 3 on: u8 has_run_count, u64 run count, u32 extra count, tensor records
// The optimizer's per-parameter entries are "<graph parameter name>.<slot>" from version 2
// on; version 1 named them by the optimizer's parameter position ("<index>.<slot>").
#include "kiln/train/checkpoint.hpp"

#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "internal/text.hpp"
#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/train/train_step.hpp"

namespace kiln {
namespace {

template <class E>
[[noreturn]] void fail(const std::string& source, const std::string& what) {
  std::string msg = source;
  msg += ": ";
  msg += what;
  throw E(msg);
}

using internal::quoted_list;

// "fc1.weight.exp_avg" -> {"fc1.weight", "exp_avg"}; "step" -> {"step", ""}.
std::pair<std::string, std::string> split_entry(const std::string& entry) {
  const auto dot = entry.rfind('.');
  if (dot == std::string::npos) return {entry, {}};
  return {entry.substr(0, dot), entry.substr(dot + 1)};
}

// For each of the optimizer's parameter names, the name of the graph parameter sharing its
// storage (the optimizer's own name for a tensor that is not one of the graph's).
std::map<std::string, std::string> graph_names(const Graph& graph, const optim::Optimizer& opt) {
  std::map<const void*, const Node*> by_storage;
  for (const Node& n : graph.nodes())
    if (n.op == Op::parameter && n.value.numel() > 0) by_storage.emplace(n.value.raw(), &n);
  std::map<std::string, std::string> out;
  const auto& params = opt.parameters();
  const auto& names = opt.parameter_names();
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto it = by_storage.find(params[i].raw());
    const bool same = it != by_storage.end() && it->second->shape == params[i].shape() &&
                      it->second->dtype == params[i].dtype();
    out.emplace(names[i], same ? it->second->name : names[i]);
  }
  return out;
}

}  // namespace

std::vector<std::uint8_t> serialize_checkpoint(const Graph& graph, const CheckpointSave& what) {
  internal::ArchiveWriter w;
  w.i64(what.step);
  w.boolean(what.rng != nullptr);
  if (what.rng)
    for (auto word : what.rng->state()) w.u64(word);
  w.boolean(what.optimizer != nullptr);
  if (what.optimizer) {
    w.string(std::string(what.optimizer->kind()));
    // Entries by graph parameter name, whatever the optimizer calls its parameters.
    const auto to_graph = graph_names(graph, *what.optimizer);
    const optim::State state = what.optimizer->state();
    w.u32(static_cast<std::uint32_t>(state.size()));
    for (const auto& [name, t] : state) {
      auto [param, slot] = split_entry(name);
      auto it = to_graph.find(param);
      w.tensor(it == to_graph.end() || slot.empty() ? name : it->second + "." + slot, t);
    }
  }
  std::uint32_t count = 0;
  for (const Node& n : graph.nodes())
    if (n.op == Op::parameter) ++count;
  w.u32(count);
  for (const Node& n : graph.nodes()) {
    if (n.op != Op::parameter) continue;
    w.boolean(n.trainable);
    w.tensor(n.name, n.value);
  }
  w.boolean(what.train_step != nullptr);
  w.u64(what.train_step ? what.train_step->run_count() : 0);
  std::unordered_set<std::string> extra_names;
  for (const auto& [name, t] : what.extra) {
    if (name.empty()) throw ValueError("serialize_checkpoint: an extra state entry has no name");
    if (!extra_names.insert(name).second)
      throw ValueError("serialize_checkpoint: extra state '" + name + "' is given twice");
  }
  w.u32(static_cast<std::uint32_t>(what.extra.size()));
  for (const auto& [name, t] : what.extra) w.tensor(name, t);
  return internal::wrap_envelope(internal::checkpoint_magic, checkpoint_format_version, w.finish());
}

void save_checkpoint(const std::string& path, const Graph& graph, const CheckpointSave& what) {
  internal::write_file_atomically(path, serialize_checkpoint(graph, what));
}

CheckpointInfo restore_checkpoint(std::span<const std::uint8_t> bytes, const std::string& source,
                                  Graph& graph, const CheckpointLoad& into) {
  const auto env = internal::open_envelope(bytes, internal::checkpoint_magic,
                                           checkpoint_format_version, source, "checkpoint");
  internal::ArchiveReader r(env.payload, source);
  CheckpointInfo info;
  info.step = r.i64("step");
  if (info.step < 0) r.fail("negative step " + std::to_string(info.step));
  Rng::State rng_state{};
  info.has_rng = r.boolean("RNG flag");
  if (info.has_rng)
    for (auto& word : rng_state) word = r.u64("RNG state");
  info.has_optimizer = r.boolean("optimizer flag");
  optim::State opt_state;
  if (info.has_optimizer) {
    info.optimizer_kind = r.name("optimizer kind");
    const std::size_t n = r.count("optimizer state entries", internal::min_tensor_record_bytes);
    std::unordered_set<std::string> seen;
    for (std::size_t i = 0; i < n; ++i) {
      auto entry = r.tensor("optimizer state entry");
      if (!seen.insert(entry.first).second)
        r.fail("duplicate optimizer state entry '" + entry.first + "'");
      opt_state.push_back(std::move(entry));
    }
  }
  const std::size_t n_params = r.count("parameter count", 1 + internal::min_tensor_record_bytes);
  std::unordered_map<std::string, std::pair<bool, Tensor>> params;
  for (std::size_t i = 0; i < n_params; ++i) {
    const bool trainable = r.boolean("parameter trainable flag");
    auto [name, t] = r.tensor("parameter");
    if (!params.emplace(name, std::make_pair(trainable, std::move(t))).second)
      r.fail("duplicate parameter '" + name + "'");
  }
  if (env.version >= 3) {
    info.has_run_count = r.boolean("run counter flag");
    info.run_count = r.u64("run counter");
    const std::size_t n_extra = r.count("extra state entries", internal::min_tensor_record_bytes);
    std::unordered_set<std::string> seen;
    for (std::size_t i = 0; i < n_extra; ++i) {
      auto entry = r.tensor("extra state entry");
      if (!seen.insert(entry.first).second) r.fail("duplicate extra state '" + entry.first + "'");
      info.extra.push_back(std::move(entry));
    }
  }
  r.expect_end();

  // Everything is read; check that it fits before changing anything.
  std::vector<std::pair<Tensor*, const Tensor*>> copies;
  std::size_t matched = 0;
  for (Value v : [&] {
         auto all = graph.parameters();
         auto bufs = graph.buffers();
         all.insert(all.end(), bufs.begin(), bufs.end());
         return all;
       }()) {
    const Node& n = v.node();
    auto it = params.find(n.name);
    const char* kind = n.trainable ? "parameter" : "buffer";
    if (it == params.end())
      fail<NameError>(source, std::string("no ") + kind + " '" + n.name + "' in the checkpoint");
    const Tensor& t = it->second.second;
    if (it->second.first != n.trainable)
      fail<ValueError>(source,
                       "'" + n.name + "' is a " + kind + " in the graph but not in the checkpoint");
    if (t.dtype() != n.dtype)
      fail<DTypeError>(source, std::string(kind) + " '" + n.name + "': checkpoint has " +
                                   std::string(to_string(t.dtype())) + ", the graph " +
                                   std::string(to_string(n.dtype)));
    if (t.shape() != n.shape)
      fail<ShapeError>(source, std::string(kind) + " '" + n.name + "': checkpoint has " +
                                   t.shape().str() + ", the graph " + n.shape.str());
    copies.emplace_back(&graph.tensor(v), &t);
    ++matched;
  }
  if (matched != params.size()) {
    for (const auto& [name, p] : params)
      if (!graph.contains(name) || graph.find(name).node().op != Op::parameter)
        fail<NameError>(source, "checkpoint parameter '" + name + "' is not in the graph");
  }
  if (into.rng && !info.has_rng) fail<ValueError>(source, "the checkpoint has no RNG state");
  if (into.train_step && !info.has_run_count)
    fail<ValueError>(source, "the checkpoint has no run counter (saved without a TrainStep)");
  if (into.optimizer) {
    if (!info.has_optimizer) fail<ValueError>(source, "the checkpoint has no optimizer state");
    if (info.optimizer_kind != into.optimizer->kind())
      fail<ValueError>(source, "the checkpoint's optimizer is '" + info.optimizer_kind +
                                   "', not '" + std::string(into.optimizer->kind()) + "'");
    // Checkpoint entries are by graph parameter name (version 1: by position); rename them
    // to the optimizer's names after checking that the parameters match by name.
    optim::Optimizer& opt = *into.optimizer;
    const auto to_graph = graph_names(graph, opt);
    std::map<std::string, std::string> to_key;    // optimizer name -> checkpoint key
    std::map<std::string, std::string> from_key;  // checkpoint key -> optimizer name
    const auto& names = opt.parameter_names();
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string key = env.version == 1 ? std::to_string(i) : to_graph.at(names[i]);
      to_key.emplace(names[i], key);
      from_key.emplace(key, names[i]);
    }
    std::set<std::string> expected, present;
    for (const std::string& name : opt.state_names()) {
      auto [param, slot] = split_entry(name);
      if (!slot.empty()) expected.insert(to_key.at(param));
    }
    for (auto& [name, t] : opt_state) {
      auto [key, slot] = split_entry(name);
      if (slot.empty()) continue;
      present.insert(key);
      auto it = from_key.find(key);
      if (it != from_key.end()) name = it->second + "." + slot;
    }
    std::vector<std::string> missing, unknown;
    for (const auto& k : expected)
      if (!present.count(k)) missing.push_back(k);
    for (const auto& k : present)
      if (!expected.count(k)) unknown.push_back(k);
    if (!missing.empty() || !unknown.empty()) {
      std::string msg = "optimizer state does not match the optimizer's parameters by name:";
      if (!missing.empty()) msg += " no state for " + quoted_list(missing);
      if (!missing.empty() && !unknown.empty()) msg += ";";
      if (!unknown.empty())
        msg += " state for parameters it does not have: " + quoted_list(unknown);
      fail<ValueError>(source, msg);
    }
    try {
      opt.load_state(opt_state);  // checks everything, changes nothing on error
    } catch (const ValueError& e) {
      fail<ValueError>(source, std::string("optimizer state: ") + e.what());
    } catch (const ShapeError& e) {
      fail<ShapeError>(source, std::string("optimizer state: ") + e.what());
    } catch (const DTypeError& e) {
      fail<DTypeError>(source, std::string("optimizer state: ") + e.what());
    }
  }
  for (auto& [dst, src] : copies) dst->copy_from(*src);
  if (into.rng) into.rng->set_state(rng_state);
  if (into.train_step) into.train_step->set_run_count(info.run_count);
  return info;
}

CheckpointInfo load_checkpoint(const std::string& path, Graph& graph, const CheckpointLoad& into) {
  const auto bytes = internal::read_file(path);
  return restore_checkpoint(bytes, path, graph, into);
}

}  // namespace kiln
