// The Communicator's defaults (a blocking start_all_reduce_sum) and the helpers every
// data-parallel run uses: moving bytes and parameters from rank 0, checking that every
// rank holds the same model, averaging buffers.
#include "kiln/dist/communicator.hpp"

#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dist/collective_text.hpp"
#include "internal/fnv1a.hpp"
#include "kiln/core/error.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::dist {
namespace {

// Every parameter and buffer of a graph (trainable or not), in creation order.
std::vector<std::int32_t> parameter_ids(const Graph& graph) {
  std::vector<std::int32_t> ids;
  const auto& nodes = graph.nodes();
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].op == Op::parameter) ids.push_back(static_cast<std::int32_t>(i));
  return ids;
}

// The 8 bytes of `v`, least significant first, and back: sizes and checksums travel in
// the same byte order whatever the ranks' machines.
std::array<std::uint8_t, 8> le_bytes(std::uint64_t v) {
  std::array<std::uint8_t, 8> b{};
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
  return b;
}

std::uint64_t from_le_bytes(std::span<const std::uint8_t> b) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < b.size(); ++i) v |= std::uint64_t{b[i]} << (8 * i);
  return v;
}

// "'fc1/w' (trainable f32 [4, 8])".
std::string describe(const Node& n) {
  return "'" + n.name + "' (" + (n.trainable ? "trainable " : "buffer ") +
         std::string(to_string(n.dtype)) + " " + n.value.shape().str() + ")";
}

// One line per parameter: what must agree between ranks before bytes can move.
std::vector<std::string> layout(const Graph& graph) {
  std::vector<std::string> lines;
  for (const std::int32_t id : parameter_ids(graph)) lines.push_back(describe(graph.node(id)));
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  return text;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> lines;
  std::string::size_type begin = 0, end = 0;
  while ((end = text.find('\n', begin)) != std::string::npos) {
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

// How this rank's layout differs from rank 0's (empty when it does not).
std::string layout_difference(const std::vector<std::string>& mine,
                              const std::vector<std::string>& root) {
  const std::size_t n = std::min(mine.size(), root.size());
  for (std::size_t i = 0; i < n; ++i)
    if (mine[i] != root[i])
      return "parameter " + std::to_string(i) + " is " + mine[i] + " there, " + root[i] +
             " on rank 0";
  if (mine.size() != root.size())
    return std::to_string(mine.size()) + " parameters and buffers there, " +
           std::to_string(root.size()) + " on rank 0";
  return {};
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

}  // namespace

Communicator::~Communicator() = default;

RequestId Communicator::start_all_reduce_sum(std::span<float> data) {
  all_reduce_sum(data);
  return 0;
}

bool Communicator::test(RequestId) { return true; }

void Communicator::wait(RequestId) {}

void broadcast_bytes(Communicator& comm, std::vector<std::uint8_t>& bytes, int root) {
  std::array<std::uint8_t, 8> size = le_bytes(bytes.size());
  comm.broadcast(size, root);
  if (comm.rank() != root) bytes.resize(static_cast<std::size_t>(from_le_bytes(size)));
  comm.broadcast(bytes, root);
}

std::string broadcast_text(Communicator& comm, std::string_view text, int root) {
  std::vector<std::uint8_t> bytes = comm.rank() == root
                                        ? std::vector<std::uint8_t>(text.begin(), text.end())
                                        : std::vector<std::uint8_t>{};
  broadcast_bytes(comm, bytes, root);
  return std::string(bytes.begin(), bytes.end());
}

std::vector<std::string> all_gather_text(Communicator& comm, std::string_view text) {
  const auto all = comm.all_gather(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  std::vector<std::string> out;
  for (const auto& bytes : all) out.emplace_back(bytes.begin(), bytes.end());
  return out;
}

std::uint64_t parameter_checksum(const Graph& graph) {
  internal::Fnv1a h;
  for (const std::int32_t id : parameter_ids(graph)) {
    const Node& n = graph.node(id);
    h.add_u64(n.name.size()).add(n.name);
    h.add_u64(n.trainable ? 1 : 0);
    h.add_u64(static_cast<std::uint64_t>(n.value.dtype()));
    h.add_u64(n.value.rank());
    for (const std::int64_t d : n.value.shape()) h.add_u64(static_cast<std::uint64_t>(d));
    const Tensor t = n.value.contiguous();
    h.add(t.raw(), t.nbytes());
  }
  return h.value();
}

void broadcast_parameters(Communicator& comm, Graph& graph) {
  // The layouts first: bytes of differently shaped graphs must never be copied.
  const std::vector<std::string> mine = layout(graph);
  const std::vector<std::string> root = split(broadcast_text(comm, join(mine), 0));
  const std::vector<std::string> differences = all_gather_text(comm, layout_difference(mine, root));
  std::string failed;
  for (std::size_t r = 0; r < differences.size(); ++r)
    if (!differences[r].empty())
      failed += (failed.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + ": " +
                differences[r];
  if (!failed.empty())
    throw DistributedError(
        "broadcast_parameters: the model of some rank differs from rank 0's "
        "(every rank must build the same graph): " +
        failed);

  const std::vector<std::int32_t> ids = parameter_ids(graph);
  std::size_t total = 0;
  for (const std::int32_t id : ids) total += graph.node(id).value.nbytes();
  std::vector<std::uint8_t> packed(total);
  if (comm.rank() == 0) {
    std::size_t at = 0;
    for (const std::int32_t id : ids) {
      const Tensor t = graph.node(id).value.contiguous();
      std::memcpy(packed.data() + at, t.raw(), t.nbytes());
      at += t.nbytes();
    }
  }
  comm.broadcast(packed, 0);
  if (comm.rank() != 0) {
    std::size_t at = 0;
    for (const std::int32_t id : ids) {
      Tensor& t = graph.tensor(graph.value(id));
      Tensor src = Tensor::empty(t.shape(), t.dtype());
      std::memcpy(src.raw(), packed.data() + at, src.nbytes());
      t.copy_from(src);
      at += src.nbytes();
    }
  }
  verify_parameters(comm, graph);
}

void verify_parameters(Communicator& comm, const Graph& graph) {
  const auto all = comm.all_gather(le_bytes(parameter_checksum(graph)));
  std::vector<std::uint64_t> sums;
  for (const auto& b : all) {
    if (b.size() != 8)
      throw DistributedError("verify_parameters: rank " + std::to_string(sums.size()) + " sent " +
                             std::to_string(b.size()) + " bytes for its checksum, not 8");
    sums.push_back(from_le_bytes(b));
  }
  std::string differing;
  for (std::size_t r = 1; r < sums.size(); ++r)
    if (sums[r] != sums[0])
      differing += (differing.empty() ? "" : ", ") + std::to_string(r) + " (" + hex(sums[r]) + ")";
  if (!differing.empty())
    throw DistributedError("verify_parameters: the parameters and buffers of rank " + differing +
                           " differ from rank 0's (checksum " + hex(sums[0]) + ")");
}

void average_buffers(Communicator& comm, Graph& graph) {
  std::vector<std::int32_t> f32, f64;
  for (const std::int32_t id : parameter_ids(graph)) {
    const Node& n = graph.node(id);
    if (n.trainable) continue;
    if (n.value.dtype() == DType::f32) f32.push_back(id);
    if (n.value.dtype() == DType::f64) f64.push_back(id);
  }
  const auto average = [&]<class T>(const std::vector<std::int32_t>& ids, T) {
    if (ids.empty()) return;
    std::vector<T> packed;
    for (const std::int32_t id : ids) {
      const std::vector<T> v = graph.node(id).value.template to_vector<T>();
      packed.insert(packed.end(), v.begin(), v.end());
    }
    comm.all_reduce_sum(std::span<T>(packed));
    const T ranks = static_cast<T>(comm.size());
    for (T& x : packed) x /= ranks;
    std::size_t at = 0;
    for (const std::int32_t id : ids) {
      Tensor& t = graph.tensor(graph.value(id));
      const std::size_t n = static_cast<std::size_t>(t.numel());
      t.copy_from(Tensor::from(std::span<const T>(packed.data() + at, n), t.shape()));
      at += n;
    }
  };
  average(f32, float{});
  average(f64, double{});
}

}  // namespace kiln::dist
