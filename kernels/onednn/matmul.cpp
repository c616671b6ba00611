// oneDNN kernel of matmul: one dnnl::matmul primitive per compiled shape; transposes
// are expressed as strides of the memory descriptors, so nothing is copied. The optional
// bias [N] (a 2-D b; a's batch folded into M) becomes the primitive's bias; a ReLU post_op runs
// after it over the output with relu_keep_nan (oneDNN's ReLU post-op turns NaN into 0).
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

using dims = dnnl::memory::dims;

std::int64_t product(const Shape& s, std::size_t begin, std::size_t end) {
  std::int64_t p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

bool build_matmul(const KernelQuery& q, std::string* why, Plan* plan) {
  if (!basic_checks(q, why)) return false;
  if (q.inputs.size() != 2 && q.inputs.size() != 3)
    return decline(why, "matmul needs a, b and an optional bias");
  const Shape& as = q.inputs[0].shape;
  const Shape& bs = q.inputs[1].shape;
  const std::size_t ra = as.rank(), rb = bs.rank();
  if (ra < 2 || rb < 2 || (rb != 2 && rb != ra))
    return decline(why, "b must be 2-D or have a's rank (>= 2)");
  const bool ta = q.node.attrs.transpose_a, tb = q.node.attrs.transpose_b;
  const std::int64_t batch = product(as, 0, ra - 2);
  if (rb == ra && product(bs, 0, rb - 2) != batch)
    return decline(why, "batch dims of a and b differ");
  std::int64_t m = ta ? as[ra - 1] : as[ra - 2];
  const std::int64_t k = ta ? as[ra - 2] : as[ra - 1];
  const std::int64_t n = tb ? bs[rb - 2] : bs[rb - 1];
  const bool b_shared = rb == 2;

  dnnl::memory::desc a_md, b_md, c_md;
  const auto f32 = dnnl::memory::data_type::f32;
  if (b_shared && !ta) {  // one tall product: [batch*M, K] x [K, N]
    m *= batch;
    a_md = plain_desc({m, k});
    b_md = dnnl::memory::desc({k, n}, f32, tb ? dims{1, k} : dims{n, 1});
    c_md = plain_desc({m, n});
  } else {  // batched; a 2-D b is broadcast over the batch
    a_md = dnnl::memory::desc({batch, m, k}, f32, ta ? dims{m * k, 1, m} : dims{m * k, k, 1});
    const std::int64_t b_batch = b_shared ? 1 : batch;
    b_md = dnnl::memory::desc({b_batch, k, n}, f32, tb ? dims{k * n, 1, k} : dims{k * n, n, 1});
    c_md = plain_desc({batch, m, n});
  }
  // Constant weights (an inference plan's) go in the layout the primitive picks, packed
  // once: W4's 3136x512 layer ran 11% faster at 1 thread and 24% at 2 (64 rows).
  const bool pack_b = b_shared && q.inputs[1].constant;
  const dnnl::memory::desc b_arg =
      pack_b ? dnnl::memory::desc(b_md.dims(), f32, dnnl::memory::format_tag::any) : b_md;
  // Fused epilogue (set by the fusion pass): out = post_op(a.b + bias), bias [N].
  const bool has_bias = q.inputs.size() == 3;
  const PostOp post_op = q.node.attrs.post_op;
  if (post_op != PostOp::none && post_op != PostOp::relu) return decline(why, "unknown post_op");
  dnnl::memory::desc bias_md;
  if (has_bias) {
    if (ra != 2 && (!b_shared || ta))
      return decline(why, "a bias needs a 2-D a, or a 2-D b and an untransposed a");
    if (q.inputs[2].shape != Shape{n}) return decline(why, "bias must be [N]");
    dims bias_dims(c_md.dims().size(), 1);
    bias_dims.back() = n;
    bias_md = plain_desc(bias_dims);
  }
  const dnnl::primitive_attr attr;  // the ReLU epilogue runs in run_matmul
  const auto desc = has_bias ? dnnl::matmul::desc(a_md, b_arg, bias_md, c_md)
                             : dnnl::matmul::desc(a_md, b_arg, c_md);
  dnnl::matmul::primitive_desc pd(desc, attr, engine(), true);
  if (!pd) return decline(why, "oneDNN has no matmul for these layouts");
  plan->pd = pd;
  Binding weights{DNNL_ARG_WEIGHTS, b_md, 1};
  if (pack_b && pd.weights_desc() != b_md) weights = {DNNL_ARG_WEIGHTS, pd.weights_desc(), 1, b_md};
  plan->bindings = {{DNNL_ARG_SRC, a_md, 0}, weights, {DNNL_ARG_DST, c_md, -1}};
  if (has_bias) plan->bindings.push_back({DNNL_ARG_BIAS, bias_md, 2});
  return true;
}

/// True for products Eigen runs faster: one row per product (GEMV, after folding a's
/// batch into M when b is shared) or few multiply-adds in total.
bool small_matmul(const KernelQuery& q) {
  const Shape& as = q.inputs[0].shape;
  const Shape& bs = q.inputs[1].shape;
  const std::size_t ra = as.rank(), rb = bs.rank();
  const bool ta = q.node.attrs.transpose_a, tb = q.node.attrs.transpose_b;
  const std::int64_t batch = product(as, 0, ra - 2);
  const std::int64_t m = ta ? as[ra - 1] : as[ra - 2];
  const std::int64_t k = ta ? as[ra - 2] : as[ra - 1];
  const std::int64_t n = tb ? bs[rb - 2] : bs[rb - 1];
  const std::int64_t rows = rb == 2 && !ta ? batch * m : m;
  return rows == 1 || batch * m * n * k < min_matmul_macs;
}

bool supports_matmul(const KernelQuery& q, std::string* why) {
  if (q.inputs.size() >= 2 && q.inputs[0].shape.rank() >= 2 && q.inputs[1].shape.rank() >= 2 &&
      small_matmul(q))
    return decline(why, "small matmul or one row: the eigen kernel is faster");
  return supports_with(build_matmul, q, why);
}
std::shared_ptr<void> prepare_matmul(const KernelQuery& q) { return prepare_with(build_matmul, q); }
void run_matmul(const KernelArgs& args) {
  execute(build_matmul, args);
  if (args.node.attrs.post_op == PostOp::relu)
    relu_keep_nan(args.output.data<float>(), args.output.numel());
}

}  // namespace

void register_matmul(KernelTable& t) {
  t.add<Op::matmul>({"onednn", "onednn_matmul", supports_matmul, run_matmul, prepare_matmul});
}

}  // namespace kiln::internal::onednn
