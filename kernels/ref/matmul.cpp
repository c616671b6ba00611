// Reference matmul: a plain triple loop with double accumulation.
//
// a is [..., M, K] ([..., K, M] with transpose_a); b is [K, N] ([N, K] with transpose_b),
// either shared by every batch (rank 2) or with a's batch dims; the output is [..., M, N].
// With rank-2 a, an optional third input bias [N] is added to every row (set by the fusion
// pass), and post_op (relu) is applied last: out = post_op(a·b + bias).
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

/// The sizes of one matmul call.
struct MatmulDims {
  std::int64_t batches;  ///< product of a's leading dims
  std::int64_t m, k, n;
  bool shared_b;  ///< b is rank 2 and used by every batch
};

MatmulDims matmul_dims(const Node& node, const Shape& a, const Shape& b) {
  const std::size_t ra = a.rank();
  const std::size_t rb = b.rank();
  const bool ta = node.attrs.transpose_a;
  const bool tb = node.attrs.transpose_b;
  return {product(a, 0, ra - 2), ta ? a[ra - 1] : a[ra - 2], ta ? a[ra - 2] : a[ra - 1],
          tb ? b[rb - 2] : b[rb - 1], rb == 2};
}

std::string check_matmul(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 3); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& a = in[0].shape;
  const Shape& b = in[1].shape;
  if (a.rank() < 2) return "a must have rank >= 2, got " + a.str();
  if (b.rank() != 2 && b.rank() != a.rank())
    return "b must have rank 2 or a's rank, got a " + a.str() + ", b " + b.str();
  const std::size_t rb = b.rank();
  const std::int64_t kb = node.attrs.transpose_b ? b[rb - 1] : b[rb - 2];
  const MatmulDims d = matmul_dims(node, a, b);
  if (d.k != kb) return "inner dims differ: a " + a.str() + ", b " + b.str();
  if (!d.shared_b)
    for (std::size_t i = 0; i + 2 < a.rank(); ++i)
      if (a[i] != b[i]) return "batch dims differ: a " + a.str() + ", b " + b.str();
  if (in.size() == 3 && (!d.shared_b || in[2].shape != Shape{d.n}))
    return "a bias needs a rank-2 b and shape [" + std::to_string(d.n) + "], got b " + b.str() +
           ", bias " + in[2].shape.str();
  std::vector<std::int64_t> expected(a.dims().begin(), a.dims().end() - 2);
  expected.push_back(d.m);
  expected.push_back(d.n);
  return need_out_shape(out, Shape(std::move(expected)));
}

template <class T>
void matmul_typed(const KernelArgs& args) {
  const Tensor& a_t = args.inputs[0];
  const Tensor& b_t = args.inputs[1];
  const MatmulDims d = matmul_dims(args.node, a_t.shape(), b_t.shape());
  const bool ta = args.node.attrs.transpose_a;
  const bool tb = args.node.attrs.transpose_b;
  const T* a_all = a_t.data<T>();
  const T* b_all = b_t.data<T>();
  T* c_all = args.output.data<T>();
  const T* bias = args.inputs.size() > 2 ? args.inputs[2].data<T>() : nullptr;
  const bool relu = args.node.attrs.post_op == PostOp::relu;
  for (std::int64_t bt = 0; bt < d.batches; ++bt) {
    const T* a = a_all + bt * d.m * d.k;
    const T* b = d.shared_b ? b_all : b_all + bt * d.k * d.n;
    T* c = c_all + bt * d.m * d.n;
    for (std::int64_t i = 0; i < d.m; ++i) {
      for (std::int64_t j = 0; j < d.n; ++j) {
        double acc = 0.0;
        for (std::int64_t p = 0; p < d.k; ++p) {
          const double a_ip = a[ta ? p * d.m + i : i * d.k + p];
          const double b_pj = b[tb ? j * d.k + p : p * d.n + j];
          acc += a_ip * b_pj;
        }
        if (bias != nullptr) acc += static_cast<double>(bias[j]);
        if (relu && acc < 0.0) acc = 0.0;
        c[i * d.n + j] = static_cast<T>(acc);
      }
    }
  }
}

void run_matmul(const KernelArgs& args) {
  require(check_matmul, args);
  with_float(args.output.dtype(), [&](auto tag) { matmul_typed<decltype(tag)>(args); });
}

}  // namespace

void add_matmul_kernels(KernelTable& t) {
  t.add<Op::matmul>({"reference", "ref_matmul", supports_check<check_matmul>, run_matmul});
}

}  // namespace kiln::internal::ref
