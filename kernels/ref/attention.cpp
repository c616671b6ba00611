// Reference attention and exact GELU (f32 and f64; all arithmetic in double, rounded once).
//
// attention: q [B, N, Tq, d], k [B, N, Tk, d], v [B, N, Tk, dv], optional key_mask [B, Tk]
//   -> y [B, N, Tq, dv]. For each (b, n, i) key j is allowed when key_mask[b, j] != 0 (no
//   mask: always) and, with causal, j <= i. s_j = scale * q_i . k_j (scale = attrs.alpha,
//   or 1/sqrt(d) when it is 0); m = max over allowed s_j (a NaN wins); p_j = exp(s_j - m) / Z
//   over allowed keys and 0 for the others; y_i = sum over every key of p_j v_j (so a NaN in
//   a masked key's v still reaches y, as in PyTorch's p @ v). A query with no allowed key gets
//   y_i = 0 exactly.
// gelu: x * 0.5 * (1 + erf(x / sqrt 2)).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

// ---- attention ------------------------------------------------------------------------

std::string check_attention(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 3, 4); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& q = in[0].shape;
  const Shape& k = in[1].shape;
  const Shape& v = in[2].shape;
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    return "q, k and v must be 4-D [B, heads, T, d], got " + q.str() + ", " + k.str() + ", " +
           v.str();
  if (k[0] != q[0] || v[0] != q[0] || k[1] != q[1] || v[1] != q[1])
    return "q " + q.str() + ", k " + k.str() + " and v " + v.str() + " differ in batch or heads";
  if (k[3] != q[3]) return "q " + q.str() + " and k " + k.str() + " differ in d";
  if (v[2] != k[2]) return "k " + k.str() + " and v " + v.str() + " differ in steps";
  if (node.attrs.causal && q[2] != k[2])
    return "causal attention needs Tq == Tk, got q " + q.str() + " and k " + k.str();
  if (in.size() == 4) {
    const Shape& m = in[3].shape;
    if (m.rank() != 2 || m[0] != q[0] || m[1] != k[2])
      return "key_mask " + m.str() + " must be [B, Tk] = [" + std::to_string(q[0]) + ", " +
             std::to_string(k[2]) + "]";
  }
  return need_out_shape(out, Shape{q[0], q[1], q[2], v[3]});
}

template <class T>
void attention_typed(const KernelArgs& args) {
  const Shape& qs = args.inputs[0].shape();
  const std::int64_t batch = qs[0], heads = qs[1], tq = qs[2], d = qs[3];
  const std::int64_t tk = args.inputs[1].dim(2), dv = args.inputs[2].dim(3);
  const T* q = args.inputs[0].data<T>();
  const T* k = args.inputs[1].data<T>();
  const T* v = args.inputs[2].data<T>();
  const T* mask = args.inputs.size() == 4 ? args.inputs[3].data<T>() : nullptr;
  T* y = args.output.data<T>();
  const bool causal = args.node.attrs.causal;
  const double scale = args.node.attrs.alpha != 0.0f ? static_cast<double>(args.node.attrs.alpha)
                                                     : 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> s(static_cast<std::size_t>(tk));
  std::vector<char> allowed(static_cast<std::size_t>(tk));
  std::vector<double> acc(static_cast<std::size_t>(dv));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t bh = b * heads + h;
      const T* kb = k + bh * tk * d;
      const T* vb = v + bh * tk * dv;
      for (std::int64_t i = 0; i < tq; ++i) {
        const T* qi = q + (bh * tq + i) * d;
        T* yi = y + (bh * tq + i) * dv;
        bool any = false;
        double m = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < tk; ++j) {
          const auto ju = static_cast<std::size_t>(j);
          allowed[ju] = (mask == nullptr || mask[b * tk + j] != T(0)) && (!causal || j <= i);
          if (!allowed[ju]) continue;
          double dot = 0.0;
          for (std::int64_t c = 0; c < d; ++c)
            dot += static_cast<double>(qi[c]) * static_cast<double>(kb[j * d + c]);
          s[ju] = dot * scale;
          if (std::isnan(s[ju]) || std::isnan(m))
            m = std::numeric_limits<double>::quiet_NaN();
          else if (s[ju] > m)
            m = s[ju];
          any = true;
        }
        if (!any) {
          for (std::int64_t c = 0; c < dv; ++c) yi[c] = T(0);
          continue;
        }
        double z = 0.0;
        for (std::int64_t j = 0; j < tk; ++j) {
          const auto ju = static_cast<std::size_t>(j);
          s[ju] = allowed[ju] ? std::exp(s[ju] - m) : 0.0;
          z += s[ju];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::int64_t j = 0; j < tk; ++j) {
          const double p = s[static_cast<std::size_t>(j)] / z;
          for (std::int64_t c = 0; c < dv; ++c)
            acc[static_cast<std::size_t>(c)] += p * static_cast<double>(vb[j * dv + c]);
        }
        for (std::int64_t c = 0; c < dv; ++c)
          yi[c] = static_cast<T>(acc[static_cast<std::size_t>(c)]);
      }
    }
}

void run_attention(const KernelArgs& args) {
  require(check_attention, args);
  with_float(args.output.dtype(), [&](auto tag) { attention_typed<decltype(tag)>(args); });
}

// ---- gelu -------------------------------------------------------------------------------

std::string check_gelu(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  return need_out_shape(out, in[0].shape);
}

void run_gelu(const KernelArgs& args) {
  require(check_gelu, args);
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.inputs[0].data<T>();
    T* y = args.output.data<T>();
    const std::int64_t n = args.output.numel();
    for (std::int64_t i = 0; i < n; ++i) {
      const double xi = static_cast<double>(x[i]);
      y[i] = static_cast<T>(xi * 0.5 * (1.0 + std::erf(xi / std::numbers::sqrt2)));
    }
  });
}

}  // namespace

void add_attention_kernels(KernelTable& t) {
  t.add<Op::attention>(
      {"reference", "ref_attention", supports_check<check_attention>, run_attention});
  t.add<Op::gelu>({"reference", "ref_gelu", supports_check<check_gelu>, run_gelu});
}

}  // namespace kiln::internal::ref
