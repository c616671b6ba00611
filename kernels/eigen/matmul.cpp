// Eigen kernel of matmul: GEMM on row-major maps, transposes folded into the product;
// the fusion pass's optional bias [N] (a 2-D b) and ReLU post-op run as an epilogue.
#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

#include <cstring>

namespace kiln::internal::eigen {
namespace {

struct GemmShape {
  std::int64_t batch = 1;  // number of products
  std::int64_t m = 0, k = 0, n = 0;
  bool b_shared = true;  // b is 2-D and used by every batch
};

GemmShape gemm_shape(const Shape& a, const Shape& b, const Attrs& at) {
  const std::size_t ra = a.rank(), rb = b.rank();
  GemmShape g;
  g.m = at.transpose_a ? a[ra - 1] : a[ra - 2];
  g.k = at.transpose_a ? a[ra - 2] : a[ra - 1];
  g.n = at.transpose_b ? b[rb - 2] : b[rb - 1];
  g.batch = dims_product(a, 0, ra - 2);
  g.b_shared = rb == 2;
  if (g.b_shared && !at.transpose_a) {  // one tall product: [batch*M, K] x [K, N]
    g.m *= g.batch;
    g.batch = 1;
  }
  return g;
}

bool supports_gemm(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 && q.inputs.size() != 3)
    return decline(why, "matmul needs a, b and an optional bias");
  const std::size_t ra = q.inputs[0].shape.rank(), rb = q.inputs[1].shape.rank();
  if (ra < 2 || rb < 2) return decline(why, "matmul operands must have rank >= 2");
  // A bias [N] needs one product: a 2-D b shared by every matrix of a, folded into one tall
  // [batch*M, K] product (gemm_shape), which a transposed a cannot be.
  if (q.inputs.size() == 3 &&
      (rb != 2 || (ra != 2 && q.node.attrs.transpose_a) || q.inputs[2].shape.rank() != 1 ||
       q.inputs[2].shape[0] != q.output.shape[q.output.shape.rank() - 1]))
    return decline(why, "a bias needs a 2-D b, a one-product shape and length N");
  if (q.node.attrs.post_op != PostOp::none && q.node.attrs.post_op != PostOp::relu)
    return decline(why, "only the relu post-op is fused");
  if (rb != 2 && rb != ra) return decline(why, "b must be 2-D or have a's rank");
  if (rb == ra &&
      dims_product(q.inputs[0].shape, 0, ra - 2) != dims_product(q.inputs[1].shape, 0, rb - 2))
    return decline(why, "batch dims of a and b differ");
  return true;
}

using Mat = RowMajorMatrix;

/// C = op(A) * op(B) for one product; A, B, C row-major.
void gemm(const float* a, const float* b, float* c, const GemmShape& g, bool ta, bool tb) {
  Eigen::Map<const Mat> A(a, ta ? g.k : g.m, ta ? g.m : g.k);
  Eigen::Map<const Mat> B(b, tb ? g.n : g.k, tb ? g.k : g.n);
  Eigen::Map<Mat> C(c, g.m, g.n);
  if (g.k == 0) {
    C.setZero();
  } else if (!ta && !tb) {
    C.noalias() = A * B;
  } else if (ta && !tb) {
    C.noalias() = A.transpose() * B;
  } else if (!ta) {
    C.noalias() = A * B.transpose();
  } else {
    C.noalias() = A.transpose() * B.transpose();
  }
}

/// The ReLU epilogue over rows x cols of C, threads splitting the rows.
void relu_rows(float* c, std::int64_t rows, std::int64_t cols) {
  const std::int64_t grain =
      std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, cols));
  parallel_ranges(rows, grain, [&](std::int64_t lo, std::int64_t hi) {
    ArrayMap block(c + lo * cols, (hi - lo) * cols);
    block = relu_keep_nan(block);
  });
}

#if defined(__GNUC__)
// One row times a row-major matrix (batch-1 inference: a dense layer on one example), in
// the widest vectors the build targets: c = bias + a * B, with the ReLU applied as c is
// stored. B streams through once, row by row, into kTile accumulators of kLanes columns,
// so the product runs at the speed B can be read (from L2 for a layer of a few hundred
// KB), where Eigen's GEMV spent about a fifth more (AVX-512). GCC's vector extensions
// lower to AVX-512 or AVX on x86 (see row_product for narrower vectors).
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif
using VecF = float __attribute__((vector_size(kVecBytes)));
constexpr std::int64_t kLanes = kVecBytes / static_cast<int>(sizeof(float));

inline VecF load(const float* p) {
  VecF v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, VecF v) { std::memcpy(p, &v, sizeof v); }

// Columns [j0, j0 + kTile * kLanes) of c.
template <int kTile>
void row_tile(const float* a, const float* b, const float* bias, float* c, std::int64_t k,
              std::int64_t n, std::int64_t j0, bool relu) {
  VecF acc[kTile];
  for (int t = 0; t < kTile; ++t) acc[t] = bias ? load(bias + j0 + t * kLanes) : VecF{};
  const float* row = b + j0;
  for (std::int64_t i = 0; i < k; ++i, row += n) {
    const VecF x = VecF{} + a[i];
    for (int t = 0; t < kTile; ++t) acc[t] += x * load(row + t * kLanes);
  }
  for (int t = 0; t < kTile; ++t) {
    // NaN stays NaN through the ReLU, as in relu_keep_nan.
    if (relu) acc[t] = acc[t] < VecF{} ? VecF{} : acc[t];
    store(c + j0 + t * kLanes, acc[t]);
  }
}

// Columns [j0, j0 + width) of c, width <= kLanes: one vector per row of B, read past the
// block's last column (those lanes are dropped), except in the last rows of B, where that
// would read beyond B: their columns are copied first. Four accumulators over alternating
// rows of B keep the FMA latency off the critical path.
void row_narrow(const float* a, const float* b, const float* bias, float* c, std::int64_t k,
                std::int64_t n, std::int64_t j0, std::int64_t width, bool relu) {
  // Rows i whose full vector i * n + j0 + [0, kLanes) lies inside B's k * n elements.
  const std::int64_t room = k * n - j0 - kLanes;
  const std::int64_t whole = room < 0 ? 0 : std::min(k, room / n + 1);
  VecF acc[4] = {};
  const float* row = b + j0;
  std::int64_t i = 0;
  for (; i + 4 <= whole; i += 4, row += 4 * n)
    for (int u = 0; u < 4; ++u) acc[u] += (VecF{} + a[i + u]) * load(row + u * n);
  for (; i < whole; ++i, row += n) acc[0] += (VecF{} + a[i]) * load(row);
  for (; i < k; ++i, row += n) {
    float part[kLanes] = {};
    std::memcpy(part, row, static_cast<std::size_t>(width) * sizeof(float));
    acc[0] += (VecF{} + a[i]) * load(part);
  }
  float out[kLanes];
  store(out, (acc[0] + acc[1]) + (acc[2] + acc[3]));
  for (std::int64_t t = 0; t < width; ++t) {
    const float v = out[t] + (bias ? bias[j0 + t] : 0.0f);
    c[j0 + t] = relu && v < 0.0f ? 0.0f : v;
  }
}

void row_times_matrix(const float* a, const float* b, const float* bias, float* c, std::int64_t k,
                      std::int64_t n, bool relu) {
  constexpr int kTile = 8;
  std::int64_t j = 0;
  for (; j + kTile * kLanes <= n; j += kTile * kLanes)
    row_tile<kTile>(a, b, bias, c, k, n, j, relu);
  for (; j < n; j += kLanes) row_narrow(a, b, bias, c, k, n, j, std::min(kLanes, n - j), relu);
}

// Where the row kernel replaces Eigen's GEMV: one row, no transposes, and vectors of at
// least 256 bits. With 128-bit vectors (SSE2 without -march, NEON) W3 measured the same as
// Eigen's GEMV or slower (6.5-7.4 us against 6.5 us without -march), so those builds keep
// Eigen's and leave this code out.
bool row_product(const GemmShape& g, const Attrs& at) {
  return kVecBytes >= 32 && g.batch == 1 && g.m == 1 && g.k > 0 && !at.transpose_a &&
         !at.transpose_b;
}
#else
bool row_product(const GemmShape&, const Attrs&) { return false; }
void row_times_matrix(const float*, const float*, const float*, float*, std::int64_t, std::int64_t,
                      bool) {}
#endif

/// C = post_op(op(A) * op(B) + bias): C starts as the broadcast bias (in place of the
/// zeroing a plain product does), the GEMM accumulates into it, and ReLU runs over the
/// rows while they are still in cache, threads splitting the rows.
void gemm_bias_relu(const float* a, const float* b, const float* bias, float* c, const GemmShape& g,
                    const Attrs& at) {
  Eigen::Map<Mat> C(c, g.m, g.n);
  if (bias != nullptr) {
    C.rowwise() = Eigen::Map<const Eigen::RowVectorXf>(bias, g.n);
    if (g.k > 0) {
      Eigen::Map<const Mat> A(a, at.transpose_a ? g.k : g.m, at.transpose_a ? g.m : g.k);
      Eigen::Map<const Mat> B(b, at.transpose_b ? g.n : g.k, at.transpose_b ? g.k : g.n);
      if (!at.transpose_a && !at.transpose_b)
        C.noalias() += A * B;
      else if (at.transpose_a && !at.transpose_b)
        C.noalias() += A.transpose() * B;
      else if (!at.transpose_a)
        C.noalias() += A * B.transpose();
      else
        C.noalias() += A.transpose() * B.transpose();
    }
  } else {
    gemm(a, b, c, g, at.transpose_a, at.transpose_b);
  }
  if (at.post_op == PostOp::relu) relu_rows(c, g.m, g.n);
}

void run_gemm(const KernelArgs& args) {
  const Attrs& at = args.node.attrs;
  const GemmShape g = gemm_shape(args.inputs[0].shape(), args.inputs[1].shape(), at);
  const float* a = args.inputs[0].data<float>();
  const float* b = args.inputs[1].data<float>();
  float* c = args.output.data<float>();
  if (row_product(g, at)) {
    row_times_matrix(a, b, args.inputs.size() == 3 ? args.inputs[2].data<float>() : nullptr, c, g.k,
                     g.n, at.post_op == PostOp::relu);
    return;
  }
  if (g.batch == 1 && (args.inputs.size() == 3 || at.post_op != PostOp::none)) {
    // A bias implies one product (supports_gemm).
    gemm_bias_relu(a, b, args.inputs.size() == 3 ? args.inputs[2].data<float>() : nullptr, c, g,
                   at);
    return;
  }
  const std::int64_t a_step = g.m * g.k, b_step = g.b_shared ? 0 : g.k * g.n, c_step = g.m * g.n;
  // Small products in a batch run one per thread; large ones use Eigen's own threads.
  const bool per_thread = g.batch > 1 && g.m * g.n * g.k < (std::int64_t{1} << 18);
  if (per_thread) {
    parallel_ranges(g.batch, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i)
        gemm(a + i * a_step, b + i * b_step, c + i * c_step, g, at.transpose_a, at.transpose_b);
    });
  } else {
    for (std::int64_t i = 0; i < g.batch; ++i)
      gemm(a + i * a_step, b + i * b_step, c + i * c_step, g, at.transpose_a, at.transpose_b);
  }
  if (at.post_op == PostOp::relu) relu_rows(c, g.batch * g.m, g.n);
}

}  // namespace

// ---- rnn ----
void gemm_f32(const float* a, const float* b, float* c, std::int64_t m, std::int64_t k,
              std::int64_t n, bool ta, bool tb) {
  GemmShape g;
  g.m = m;
  g.k = k;
  g.n = n;
  gemm(a, b, c, g, ta, tb);
}

void register_matmul(KernelTable& t) {
  t.add<Op::matmul>({"eigen", "eigen_gemm", supports_gemm, run_gemm});
}

}  // namespace kiln::internal::eigen
