// Eigen kernel of matmul: GEMM on row-major maps, transposes folded into the product;
// the fusion pass's optional bias [N] (a 2-D b) and ReLU post-op run as an epilogue.
#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

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
