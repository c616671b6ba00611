// Eigen kernel of upsample_nearest2d (NCHW, f32): each input row is widened once into
// its first output row, which is then copied to the other sh - 1 rows. Threads split the
// N*C planes.
#include <cstring>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

bool supports_upsample(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 1 || q.inputs[0].shape.rank() != 4)
    return decline(why, "needs one 4-D input");
  if (q.output.shape.numel() == 0) return decline(why, "empty tensors are left to the reference");
  return true;
}

void widen_row(const float* s, float* d, std::int64_t w, std::int64_t sw) {
  if (sw == 1) {
    std::memcpy(d, s, static_cast<std::size_t>(w) * sizeof(float));
  } else if (sw == 2) {
    for (std::int64_t j = 0; j < w; ++j) d[2 * j] = d[2 * j + 1] = s[j];
  } else {
    for (std::int64_t j = 0; j < w; ++j) std::fill(d + j * sw, d + (j + 1) * sw, s[j]);
  }
}

void run_upsample(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const std::int64_t h = xs[2], w = xs[3];
  const std::int64_t sh = args.node.attrs.stride[0], sw = args.node.attrs.stride[1];
  const std::int64_t ow = w * sw, out_plane = h * sh * ow;
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  const std::size_t row_bytes = static_cast<std::size_t>(ow) * sizeof(float);
  const std::int64_t grain = std::max<std::int64_t>(1, parallel_grain / out_plane);
  parallel_ranges(xs[0] * xs[1], grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t p = lo; p < hi; ++p) {
      for (std::int64_t i = 0; i < h; ++i) {
        float* first = y + p * out_plane + i * sh * ow;
        widen_row(x + (p * h + i) * w, first, w, sw);
        for (std::int64_t r = 1; r < sh; ++r) std::memcpy(first + r * ow, first, row_bytes);
      }
    }
  });
}

}  // namespace

void register_upsample(KernelTable& t) {
  t.add<Op::upsample_nearest2d>(
      {"eigen", "eigen_upsample_nearest2d", supports_upsample, run_upsample});
}

}  // namespace kiln::internal::eigen
