// Eigen-side kernels of gather, one_hot and dropout_mask.
#include <cstring>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kiln/core/rng.hpp"

namespace kiln::internal::eigen {
namespace {

/// Throws ValueError naming the node unless every index lies in [0, limit).
void check_indices(const KernelArgs& args, const Tensor& indices, std::int64_t limit,
                   const char* what) {
  const std::int64_t n = indices.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t v = index_at(indices, i);
    if (v < 0 || v >= limit)
      throw ValueError(std::string(op_name(args.node.op)) + " node '" + args.node.name +
                       "': " + what + " " + std::to_string(v) + " at position " +
                       std::to_string(i) + " is outside [0, " + std::to_string(limit) + ")");
  }
}

bool supports_gather(const KernelQuery& q, std::string* why) {
  if (q.inputs.size() != 2) return decline(why, "gather needs a table and indices");
  if (q.inputs[0].dtype != DType::f32 || q.output.dtype != DType::f32)
    return decline(why, "eigen kernels handle f32 tables only");
  if (!is_index_type(q.inputs[1].dtype)) return decline(why, "indices must be i32 or i64");
  if (q.inputs[0].shape.rank() < 1) return decline(why, "gather table must have rank >= 1");
  return true;
}

void run_gather(const KernelArgs& args) {
  const Tensor& table = args.inputs[0];
  const Tensor& indices = args.inputs[1];
  const std::int64_t rows = table.dim(0);
  check_indices(args, indices, rows, "index");
  const std::int64_t width = rows == 0 ? 0 : table.numel() / rows;
  const float* src = table.data<float>();
  float* y = args.output.data<float>();
  if (width == 0) return;
  const auto bytes = static_cast<std::size_t>(width) * sizeof(float);
  parallel_ranges(indices.numel(), std::max<std::int64_t>(1, parallel_grain / width),
                  [&](std::int64_t lo, std::int64_t hi) {
                    for (std::int64_t s = lo; s < hi; ++s)
                      std::memcpy(y + s * width, src + index_at(indices, s) * width, bytes);
                  });
}

bool supports_one_hot(const KernelQuery& q, std::string* why) {
  if (q.inputs.size() != 1 || !is_index_type(q.inputs[0].dtype))
    return decline(why, "one_hot labels must be i32 or i64");
  if (q.output.dtype != DType::f32) return decline(why, "eigen one_hot writes f32 only");
  return true;
}

void run_one_hot(const KernelArgs& args) {
  const Tensor& labels = args.inputs[0];
  const std::int64_t depth = args.node.attrs.size;
  check_indices(args, labels, depth, "label");
  float* y = args.output.data<float>();
  const std::int64_t n = labels.numel();
  std::memset(y, 0, args.output.nbytes());
  for (std::int64_t i = 0; i < n; ++i) y[i * depth + index_at(labels, i)] = 1.0f;
}

bool supports_dropout_mask(const KernelQuery& q, std::string* why) {
  if (q.output.dtype != DType::f32) return decline(why, "eigen dropout_mask writes f32 only");
  const float p = q.node.attrs.alpha;
  if (!(p >= 0.0f && p <= 1.0f)) return decline(why, "dropout probability is not in [0, 1]");
  return true;
}

void run_dropout_mask(const KernelArgs& args) {
  float* y = args.output.data<float>();
  const std::int64_t n = args.output.numel();
  if (!args.run.training) {
    ArrayMap(y, n).setOnes();
    return;
  }
  const float p = args.node.attrs.alpha;
  const auto keep = static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
  const std::uint64_t seed = args.node.attrs.seed ^ (args.run.counter * 0x9E3779B97F4A7C15ULL);
  constexpr float inv_2_24 = 1.0f / 16777216.0f;
  parallel_ranges(n, parallel_grain / 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const float u =
          static_cast<float>(hash_bits(seed, static_cast<std::uint64_t>(i)) >> 40) * inv_2_24;
      y[i] = u < p ? 0.0f : keep;
    }
  });
}

}  // namespace

void register_indexing(KernelTable& t) {
  t.add<Op::gather>({"eigen", "eigen_gather_rows", supports_gather, run_gather});
  t.add<Op::one_hot>({"eigen", "eigen_one_hot", supports_one_hot, run_one_hot});
  t.add<Op::dropout_mask>({"eigen", "eigen_dropout_mask", supports_dropout_mask, run_dropout_mask});
}

}  // namespace kiln::internal::eigen
