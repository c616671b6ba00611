// oneDNN kernel of attention: the Eigen kernel's heads loop (masks, softmax, threads over
// (batch, head) pairs; eigen::attention_heads) with its two products per pair as
// dnnl_sgemm calls. At W7's heads (128 x 128 x 64, one core of an AMD EPYC with AVX-512)
// q k^T took 31 us with Eigen and 22 us with dnnl_sgemm (which also applies the scale),
// p v 27 and 22 us. A call inside the kernel's parallel region runs on its thread only.
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstdint>

#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

void sgemm_scores(const float* q, const float* k, float* s, std::int64_t tq, std::int64_t tk,
                  std::int64_t d, float scale) {
  if (d == 0) {
    std::fill(s, s + tq * tk, 0.0f);
    return;
  }
  dnnl_sgemm('N', 'T', tq, tk, d, scale, q, d, k, d, 0.0f, s, tk);
}

void sgemm_values(const float* p, const float* v, float* y, std::int64_t tq, std::int64_t tk,
                  std::int64_t dv) {
  dnnl_sgemm('N', 'N', tq, dv, tk, 1.0f, p, tk, v, dv, 0.0f, y, dv);
}

bool supports_attention(const KernelQuery& q, std::string* why) {
  if (!eigen::supports_attention(q, why)) return false;
  // Policy (see onednn_common.hpp): small heads stay with Eigen.
  const Shape& qs = q.inputs[0].shape;
  const std::int64_t tk = q.inputs[1].shape[2];
  if (qs[2] * tk * qs[3] < min_matmul_macs)
    return decline(why, "small heads: the eigen kernel is faster");
  return true;
}

void run_attention(const KernelArgs& args) {
  eigen::attention_heads(args, {sgemm_scores, sgemm_values});
}

}  // namespace

void register_attention(KernelTable& t) {
  t.add<Op::attention>({"onednn", "onednn_attention_sgemm", supports_attention, run_attention});
}

}  // namespace kiln::internal::onednn
