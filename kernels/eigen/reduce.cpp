// Eigen kernels of sum, mean and max.
//
// Dims of size 1 are dropped and neighbouring dims that are both reduced or both kept
// are merged, so the tensor becomes alternating groups. The innermost group is handled
// with vectorised Eigen reductions (reduced) or row accumulation (kept); threads split
// the first kept group, so each owns a disjoint slice of the output.
#include <limits>
#include <vector>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_reduce(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  const auto rank = static_cast<std::int64_t>(q.inputs[0].shape.rank());
  for (auto a : q.node.attrs.axes)
    if (a < 0 || a >= rank) return decline(why, "reduction axis out of range");
  if (q.inputs[0].shape.numel() == 0) return decline(why, "empty input (left to the reference)");
  return true;
}

struct Group {
  std::int64_t size;
  bool reduced;
  std::int64_t in_stride = 0;
  std::int64_t out_stride = 0;  // 0 for reduced groups
};

std::vector<Group> group_dims(const Shape& s, const std::vector<std::int64_t>& axes) {
  std::vector<Group> groups;
  for (std::size_t d = 0; d < s.rank(); ++d) {
    if (s[d] == 1) continue;
    const bool reduced =
        std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(d)) != axes.end();
    if (!groups.empty() && groups.back().reduced == reduced)
      groups.back().size *= s[d];
    else
      groups.push_back({s[d], reduced});
  }
  std::int64_t in = 1, out = 1;
  for (auto it = groups.rbegin(); it != groups.rend(); ++it) {
    it->in_stride = in;
    in *= it->size;
    if (!it->reduced) {
      it->out_stride = out;
      out *= it->size;
    }
  }
  return groups;
}

/// The sum of n floats accumulated in double. Eigen's cast<double>().sum() ran one
/// scalar conversion and addition per element (1 ms for W2's 1.6 M-element bias gradient);
/// 32 lanes of partial sums let the conversions and additions vectorise and pipeline.
double sum_in_double(const float* x, std::int64_t n) {
  constexpr int kLanes = 32;
  double part[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) part[j] += static_cast<double>(x[i + j]);
  double s = 0.0;
  for (; i < n; ++i) s += static_cast<double>(x[i]);
  for (const double p : part) s += p;
  return s;
}

template <bool Max>
struct Reducer {
  const std::vector<Group>& groups;
  std::size_t split;  // level whose loop runs over [lo, hi) instead of [0, size)

  void run(std::size_t level, const float* x, float* y, std::int64_t lo, std::int64_t hi) const {
    const Group& g = groups[level];
    const std::int64_t begin = level == split ? lo : 0, end = level == split ? hi : g.size;
    if (level + 1 == groups.size()) {
      if (g.reduced) {
        ConstArrayMap row(x + begin, end - begin);
        // Sums of contiguous runs accumulate in double: long rows lose no accuracy.
        if constexpr (Max)
          *y = nan_max(*y, row.template maxCoeff<Eigen::PropagateNaN>());
        else
          *y = static_cast<float>(*y + sum_in_double(x + begin, end - begin));
      } else {
        ArrayMap acc(y + begin, end - begin);
        ConstArrayMap row(x + begin, end - begin);
        if constexpr (Max)
          acc = max_keep_nan(acc, row);
        else
          acc += row;
      }
      return;
    }
    for (std::int64_t i = begin; i < end; ++i)
      run(level + 1, x + i * g.in_stride, y + i * g.out_stride, lo, hi);
  }
};

template <Op Kind>
void run_reduce(const KernelArgs& args) {
  constexpr bool is_max = Kind == Op::max;
  const Tensor& in = args.inputs[0];
  const float* x = in.data<float>();
  float* y = args.output.data<float>();
  const std::int64_t out_n = args.output.numel();
  std::fill(y, y + out_n, is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
  const std::vector<Group> groups = group_dims(in.shape(), args.node.attrs.axes);
  if (groups.empty()) {  // every dim is 1
    y[0] = x[0];
    return;
  }
  std::size_t split = 0;
  while (split < groups.size() && groups[split].reduced) ++split;
  const Reducer<is_max> r{groups, split};
  if (split == groups.size()) {  // everything reduced: one vectorised pass
    r.run(0, x, y, 0, 0);
  } else {
    const std::int64_t per_index = in.numel() / groups[split].size;
    parallel_ranges(groups[split].size, std::max<std::int64_t>(1, parallel_grain / per_index),
                    [&](std::int64_t lo, std::int64_t hi) { r.run(0, x, y, lo, hi); });
  }
  if constexpr (Kind == Op::mean) {
    const auto scale =
        static_cast<float>(static_cast<double>(out_n) / static_cast<double>(in.numel()));
    ArrayMap(y, out_n) *= scale;
  }
}

}  // namespace

void register_reduce(KernelTable& t) {
  t.add<Op::sum>({"eigen", "eigen_sum", supports_reduce, run_reduce<Op::sum>});
  t.add<Op::mean>({"eigen", "eigen_mean", supports_reduce, run_reduce<Op::mean>});
  t.add<Op::max>({"eigen", "eigen_max", supports_reduce, run_reduce<Op::max>});
}

}  // namespace kiln::internal::eigen
