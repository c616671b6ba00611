#include <optional>

#include "internal/op_info.hpp"
#include "passes/passes.hpp"

namespace kiln::internal {
namespace {

struct Use {
  std::int32_t node;
  std::size_t slot;
};

// Uses of each live node's value, by live nodes.
std::vector<std::vector<Use>> uses_of(const PassGraph& pg, const std::vector<bool>& live) {
  std::vector<std::vector<Use>> uses(pg.nodes.size());
  for (std::size_t id = 0; id < pg.nodes.size(); ++id) {
    if (!live[id]) continue;
    const auto& ins = pg.nodes[id].inputs;
    for (std::size_t k = 0; k < ins.size(); ++k)
      uses[static_cast<std::size_t>(ins[k])].push_back({static_cast<std::int32_t>(id), k});
  }
  return uses;
}

bool is_output(const PassGraph& pg, std::int32_t id) {
  for (auto o : pg.outputs)
    if (o == id) return true;
  return false;
}

// A use that reads only the value's shape: expand's optional 'like' input.
bool shape_only(const PassGraph& pg, const Use& u) {
  return pg.nodes[static_cast<std::size_t>(u.node)].op == Op::expand && u.slot == 1;
}

// True when `id`'s value is read, apart from shape-only uses, by `consumer` alone.
bool only_used_by(const PassGraph& pg, const std::vector<std::vector<Use>>& uses, std::int32_t id,
                  std::int32_t consumer) {
  if (is_output(pg, id)) return false;
  for (const Use& u : uses[static_cast<std::size_t>(id)])
    if (u.node != consumer && !shape_only(pg, u)) return false;
  return true;
}

bool fusable_producer(const PassGraph& pg, const Node& n) {
  if (n.attrs.post_op != PostOp::none) return false;
  if (!op_info(n.op).has(op_epilogue_fusable)) return false;
  if (n.op != Op::matmul || n.shape.rank() == 2) return true;
  // A batched a with a 2-D b (a dense layer over [B, T, F]) is one tall [B*T, F] product
  // in the kernels, so its bias and ReLU are an epilogue too; a transposed a is not.
  const Node& b = pg.nodes[static_cast<std::size_t>(n.inputs[1])];
  return b.shape.rank() == 2 && !n.attrs.transpose_a;
}

// The 1-D bias behind `e` = expand(reshape(bias)), when it is per channel of `p`.
std::optional<std::int32_t> channel_bias(const PassGraph& pg, const Node& p, std::int32_t e) {
  const Node& en = pg.nodes[static_cast<std::size_t>(e)];
  if (en.op != Op::expand) return std::nullopt;
  const Node& rn = pg.nodes[static_cast<std::size_t>(en.inputs[0])];
  if (rn.op != Op::reshape) return std::nullopt;
  const std::int32_t b = rn.inputs[0];
  const Node& bn = pg.nodes[static_cast<std::size_t>(b)];
  if (bn.shape.rank() != 1 || bn.dtype != p.dtype) return std::nullopt;
  // The reshape must put the bias on the channel axis (1: NCHW; the last: the matmul's
  // columns) with 1s elsewhere.
  const std::size_t channel_axis = p.op == Op::matmul ? p.shape.rank() - 1 : 1;
  const Shape& rs = rn.shape;
  if (rs.rank() != p.shape.rank()) return std::nullopt;
  for (std::size_t i = 0; i < rs.rank(); ++i) {
    const bool on_channel = i == channel_axis;
    if (on_channel ? rs[i] != bn.shape[0] || rs[i] != p.shape[i] : rs[i] != 1) return std::nullopt;
  }
  return b;
}

// `to` now computes `from`'s value (and takes its name); every use of `from` moves to `to`.
void redirect(PassGraph& pg, std::int32_t from, std::int32_t to) {
  pg.nodes[static_cast<std::size_t>(to)].name = pg.nodes[static_cast<std::size_t>(from)].name;
  for (auto& n : pg.nodes)
    for (auto& i : n.inputs)
      if (i == from) i = to;
  for (auto& o : pg.outputs)
    if (o == from) o = to;
  pg.dead[static_cast<std::size_t>(from)] = true;
  if (pg.folded_into.size() != pg.nodes.size()) pg.folded_into.assign(pg.nodes.size(), -1);
  pg.folded_into[static_cast<std::size_t>(from)] = to;
}

}  // namespace

std::vector<bool> live_nodes(const PassGraph& pg) {
  std::vector<bool> live(pg.nodes.size(), false);
  for (auto o : pg.outputs) live[static_cast<std::size_t>(o)] = true;
  for (std::size_t id = pg.nodes.size(); id-- > 0;) {
    if (!live[id]) continue;
    for (auto i : pg.nodes[id].inputs) live[static_cast<std::size_t>(i)] = true;
  }
  return live;
}

void fuse_epilogues(PassGraph& pg, bool pool_into_conv) {
  auto live = live_nodes(pg);
  auto uses = uses_of(pg, live);
  for (std::size_t id = 0; id < pg.nodes.size(); ++id) {
    if (!live[id] || pg.dead[id]) continue;
    Node& n = pg.nodes[id];
    const auto self = static_cast<std::int32_t>(id);
    // add(producer, expand(reshape(bias))) -> producer with a bias input
    if (n.op == Op::add) {
      for (std::size_t k = 0; k < 2; ++k) {
        const std::int32_t p = n.inputs[k], e = n.inputs[1 - k];
        Node& pn = pg.nodes[static_cast<std::size_t>(p)];
        if (!fusable_producer(pg, pn) || pn.inputs.size() != 2 || pn.shape != n.shape) continue;
        if (!only_used_by(pg, uses, p, self)) continue;
        const auto bias = channel_bias(pg, pn, e);
        if (!bias) continue;
        // Nodes run in id order: a bias computed by a node created after the producer
        // (e.g. b_ih + b_hh added after the matmul) is not ready when the producer runs.
        const Node& bn = pg.nodes[static_cast<std::size_t>(*bias)];
        if (*bias > p && !op_info(bn.op).has(op_leaf)) continue;
        pn.inputs.push_back(*bias);
        redirect(pg, self, p);
        live = live_nodes(pg);
        uses = uses_of(pg, live);
        break;
      }
      continue;
    }
    // relu(producer) -> producer with a relu epilogue
    if (n.op == Op::relu) {
      const std::int32_t p = n.inputs[0];
      Node& pn = pg.nodes[static_cast<std::size_t>(p)];
      if (!fusable_producer(pg, pn) || !only_used_by(pg, uses, p, self)) continue;
      pn.attrs.post_op = PostOp::relu;
      redirect(pg, self, p);
      live = live_nodes(pg);
      uses = uses_of(pg, live);
      continue;
    }
    // relu_backward(y, max_pool2d_backward(y, g)) -> max_pool2d_backward with the ReLU's
    // gradient as epilogue: the pooling's input is the ReLU's output, so one pass over y
    // routes the gradient and masks it (training plans of conv + ReLU + pooling).
    if (n.op == Op::relu_backward) {
      const std::int32_t p = n.inputs[1];
      Node& pn = pg.nodes[static_cast<std::size_t>(p)];
      if (pn.op != Op::max_pool2d_backward || pn.inputs[0] != n.inputs[0] ||
          pn.attrs.post_op != PostOp::none || !only_used_by(pg, uses, p, self))
        continue;
      pn.attrs.post_op = PostOp::relu;
      redirect(pg, self, p);
      live = live_nodes(pg);
      uses = uses_of(pg, live);
      continue;
    }
    // max_pool2d(conv2d+relu) -> conv2d with a relu_max_pool epilogue. Nodes run in id
    // order, so the relu before this pool is already folded into its conv.
    if (pool_into_conv && n.op == Op::max_pool2d) {
      const std::int32_t p = n.inputs[0];
      Node& pn = pg.nodes[static_cast<std::size_t>(p)];
      const Attrs& a = n.attrs;
      if (pn.op != Op::conv2d || pn.attrs.post_op != PostOp::relu || a.stride != a.kernel ||
          a.padding != Pair{0, 0} || n.dtype != DType::f32 || !only_used_by(pg, uses, p, self))
        continue;
      pn.attrs.post_op = PostOp::relu_max_pool;
      pn.attrs.kernel = a.kernel;
      pn.shape = n.shape;
      pn.scope = n.scope;
      redirect(pg, self, p);
      live = live_nodes(pg);
      uses = uses_of(pg, live);
    }
  }
}

}  // namespace kiln::internal
