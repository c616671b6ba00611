// Reference dropout_mask: the inverted-dropout mask of x's shape and dtype.
//
// Training: element i is 0 if u < p else 1/(1-p), where u is the top 24 bits of
// kiln::hash_bits(seed ^ (run counter * 0x9E3779B97F4A7C15), i) divided by 2^24.
// Not training: all ones. The scale 1/(1-p) is computed in double, then rounded to T.
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"
#include "kiln/core/rng.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_dropout_mask(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const float p = node.attrs.alpha;
  if (!(p >= 0.0f && p <= 1.0f))
    return "dropout probability " + std::to_string(p) + " is not in [0, 1]";
  return need_out_shape(out, in[0].shape);
}

template <class T>
void dropout_mask_typed(const KernelArgs& args) {
  T* out = args.output.data<T>();
  const std::int64_t n = args.output.numel();
  if (!args.run.training) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = T(1);
    return;
  }
  const double p = static_cast<double>(args.node.attrs.alpha);
  const T keep = static_cast<T>(1.0 / (1.0 - p));
  const std::uint64_t key = args.node.attrs.seed ^ (args.run.counter * 0x9E3779B97F4A7C15ULL);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t bits = hash_bits(key, static_cast<std::uint64_t>(i));
    const double u = static_cast<double>(bits >> 40) / 16777216.0;  // top 24 bits / 2^24
    out[i] = u < p ? T(0) : keep;
  }
}

void run_dropout_mask(const KernelArgs& args) {
  require(check_dropout_mask, args);
  with_float(args.output.dtype(), [&](auto tag) { dropout_mask_typed<decltype(tag)>(args); });
}

}  // namespace

void add_dropout_kernels(KernelTable& t) {
  t.add<Op::dropout_mask>(
      {"reference", "ref_dropout_mask", supports_check<check_dropout_mask>, run_dropout_mask});
}

}  // namespace kiln::internal::ref
