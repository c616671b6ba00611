// Reference index kernels: gather (row lookup) and one_hot.
//
// An index outside its range raises kiln::ValueError naming the node and the index.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

// ---- gather -------------------------------------------------------------------------

/// table [R, D...] (any dtype), indices int [S...] -> [S..., D...].
std::string check_gather(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_integer(in[1], "indices"); !e.empty()) return e;
  if (auto e = need_same_dtype(in.first(1), out); !e.empty()) return e;
  const Shape& table = in[0].shape;
  if (table.rank() < 1) return "table must have rank >= 1";
  std::vector<std::int64_t> expected(in[1].shape.dims());
  expected.insert(expected.end(), table.dims().begin() + 1, table.dims().end());
  return need_out_shape(out, Shape(std::move(expected)));
}

void run_gather(const KernelArgs& args) {
  require(check_gather, args);
  const Tensor& table = args.inputs[0];
  const Tensor& indices = args.inputs[1];
  const std::int64_t rows = table.dim(0);
  const std::size_t row_bytes =
      static_cast<std::size_t>(product(table.shape(), 1, table.rank())) * size_of(table.dtype());
  const auto* src = static_cast<const unsigned char*>(table.raw());
  auto* out = static_cast<unsigned char*>(args.output.raw());
  for (std::int64_t s = 0; s < indices.numel(); ++s) {
    const std::int64_t row = index_at(indices, s);
    if (row < 0 || row >= rows)
      throw ValueError("gather " + node_label(args.node) + ": index " + std::to_string(row) +
                       " (at position " + std::to_string(s) + ") is outside [0, " +
                       std::to_string(rows) + ")");
    if (row_bytes > 0)
      std::memcpy(out + static_cast<std::size_t>(s) * row_bytes,
                  src + static_cast<std::size_t>(row) * row_bytes, row_bytes);
  }
}

// ---- one_hot ------------------------------------------------------------------------

/// labels int [S...] -> [S..., size] of attrs.dtype.
std::string check_one_hot(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_integer(in[0], "labels"); !e.empty()) return e;
  if (out.dtype != node.attrs.dtype)
    return "output dtype " + std::string(to_string(out.dtype)) + ", attribute dtype " +
           std::string(to_string(node.attrs.dtype));
  if (node.attrs.size < 0) return "negative depth " + std::to_string(node.attrs.size);
  std::vector<std::int64_t> expected(in[0].shape.dims());
  expected.push_back(node.attrs.size);
  return need_out_shape(out, Shape(std::move(expected)));
}

template <class T>
void one_hot_typed(const KernelArgs& args) {
  const Tensor& labels = args.inputs[0];
  const std::int64_t depth = args.node.attrs.size;
  T* out = args.output.data<T>();
  for (std::int64_t i = 0; i < args.output.numel(); ++i) out[i] = T(0);
  for (std::int64_t s = 0; s < labels.numel(); ++s) {
    const std::int64_t label = index_at(labels, s);
    if (label < 0 || label >= depth)
      throw ValueError("one_hot " + node_label(args.node) + ": label " + std::to_string(label) +
                       " (at position " + std::to_string(s) + ") is outside [0, " +
                       std::to_string(depth) + ")");
    out[s * depth + label] = T(1);
  }
}

void run_one_hot(const KernelArgs& args) {
  require(check_one_hot, args);
  with_any(args.output.dtype(), [&](auto tag) { one_hot_typed<decltype(tag)>(args); });
}

}  // namespace

void add_index_kernels(KernelTable& t) {
  t.add<Op::gather>({"reference", "ref_gather", supports_check<check_gather>, run_gather});
  t.add<Op::one_hot>({"reference", "ref_one_hot", supports_check<check_one_hot>, run_one_hot});
}

}  // namespace kiln::internal::ref
