// Node attributes in model files: v1 writes every field in a fixed order; v2 writes tagged
// (key, type, value) records for the fields that differ from Attrs{}. One table of keys
// (visit_attrs) and one set of range checks serve both versions.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "io/model_format.hpp"

namespace kiln::internal {
namespace {

constexpr std::int64_t max_attr = 0x7fffffff;
constexpr std::int64_t max_pair_attr = std::int64_t{1} << 30;

/// v2 value tags (part of the format's contract).
enum Tag : std::uint8_t {
  tag_i64 = 1,
  tag_f32 = 2,
  tag_bool = 3,
  tag_i64_list = 4,
  tag_pair = 5,
  tag_dtype = 6,
  tag_u64 = 7,
  tag_post_op = 8,
};

/// Calls f(key, field of a, field of b, integer limit) for every attribute, in file order.
/// The keys are the file's names for the fields: renaming a field keeps its key.
template <class A, class B, class F>
void visit_attrs(A& a, B& b, F&& f) {
  f("axes", a.axes, b.axes, max_attr);
  f("axis", a.axis, b.axis, max_attr);
  f("start", a.start, b.start, max_attr);
  f("stop", a.stop, b.stop, max_attr);
  f("size", a.size, b.size, max_attr);
  f("alpha", a.alpha, b.alpha, 0);
  f("seed", a.seed, b.seed, 0);
  f("keepdims", a.keepdims, b.keepdims, 0);
  f("transpose_a", a.transpose_a, b.transpose_a, 0);
  f("transpose_b", a.transpose_b, b.transpose_b, 0);
  f("mean", a.mean, b.mean, 0);
  f("dtype", a.dtype, b.dtype, 0);
  f("kernel", a.kernel, b.kernel, max_pair_attr);
  f("stride", a.stride, b.stride, max_pair_attr);
  f("padding", a.padding, b.padding, max_pair_attr);
  f("dilation", a.dilation, b.dilation, max_pair_attr);
  f("output_padding", a.output_padding, b.output_padding, max_pair_attr);
  f("groups", a.groups, b.groups, max_pair_attr);
  f("include_pad", a.include_pad, b.include_pad, 0);
  f("eps", a.eps, b.eps, 0);
  f("momentum", a.momentum, b.momentum, 0);
  f("post_op", a.post_op, b.post_op, 0);
  f("reverse", a.reverse, b.reverse, 0);
  f("causal", a.causal, b.causal, 0);
}

template <class T>
constexpr Tag tag_of() {
  if constexpr (std::is_same_v<T, std::vector<std::int64_t>>)
    return tag_i64_list;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return tag_i64;
  else if constexpr (std::is_same_v<T, float>)
    return tag_f32;
  else if constexpr (std::is_same_v<T, bool>)
    return tag_bool;
  else if constexpr (std::is_same_v<T, DType>)
    return tag_dtype;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return tag_u64;
  else if constexpr (std::is_same_v<T, Pair>)
    return tag_pair;
  else {
    static_assert(std::is_same_v<T, PostOp>, "an attribute type without a tag");
    return tag_post_op;
  }
}

/// Bit-exact comparison for floats (so -0.0 and NaN payloads are written as they are).
template <class T>
bool same(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, float>)
    return std::memcmp(&a, &b, sizeof a) == 0;
  else
    return a == b;
}

std::uint8_t post_op_code(PostOp p) {
  switch (p) {
    case PostOp::none:
      return 0;
    case PostOp::relu:
      return 1;
    case PostOp::relu_max_pool:  // a compiled plan's, never in a graph: not stored
      break;
  }
  return 0xff;
}

// ---- range checks shared by v1 and v2 ----

std::int64_t bounded(ArchiveReader& r, const std::string& node, const char* attr,
                     std::int64_t limit) {
  const std::int64_t v = r.i64(attr);
  if (v < -limit || v > limit)
    r.fail("node '" + node + "': attribute " + attr + " = " + std::to_string(v) +
           " is out of range");
  return v;
}

float finite(ArchiveReader& r, const std::string& node, const char* attr) {
  const float v = r.f32(attr);
  if (!std::isfinite(v)) r.fail("node '" + node + "': attribute " + attr + " is not finite");
  return v;
}

std::vector<std::int64_t> axes_list(ArchiveReader& r, const std::string& node, const char* attr) {
  const std::size_t n = r.count("attribute axes", 8);
  if (n > max_rank) r.fail("node '" + node + "': " + std::to_string(n) + " axes");
  std::vector<std::int64_t> axes(n);
  std::int64_t product = 1;
  for (auto& v : axes) {
    v = bounded(r, node, attr, max_attr);
    const std::int64_t f = v <= 0 ? 1 : v;
    if (product > std::numeric_limits<std::int64_t>::max() / 8 / f)
      r.fail("node '" + node + "': the product of attribute axes overflows");
    product *= f;
  }
  return axes;
}

PostOp post_op(ArchiveReader& r, const std::string& node) {
  const std::uint8_t code = r.u8("attribute post_op");
  if (code == 0) return PostOp::none;
  if (code == 1) return PostOp::relu;
  r.fail("node '" + node + "': unknown post-op " + std::to_string(code));
}

}  // namespace

void write_attrs(ArchiveWriter& w, const Attrs& a) {
  w.u32(static_cast<std::uint32_t>(a.axes.size()));
  for (auto v : a.axes) w.i64(v);
  w.i64(a.axis);
  w.i64(a.start);
  w.i64(a.stop);
  w.i64(a.size);
  w.f32(a.alpha);
  w.u64(a.seed);
  w.boolean(a.keepdims);
  w.boolean(a.transpose_a);
  w.boolean(a.transpose_b);
  w.boolean(a.mean);
  w.dtype(a.dtype);
  for (const Pair* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.output_padding}) {
    w.i64((*p)[0]);
    w.i64((*p)[1]);
  }
  w.i64(a.groups);
  w.boolean(a.include_pad);
  w.f32(a.eps);
  w.f32(a.momentum);
  w.u8(post_op_code(a.post_op));
}

Attrs read_attrs(ArchiveReader& r, const std::string& node) {
  Attrs a;
  a.axes = axes_list(r, node, "axes");
  a.axis = bounded(r, node, "axis", max_attr);
  a.start = bounded(r, node, "start", max_attr);
  a.stop = bounded(r, node, "stop", max_attr);
  a.size = bounded(r, node, "size", max_attr);
  a.alpha = finite(r, node, "alpha");
  a.seed = r.u64("attribute seed");
  a.keepdims = r.boolean("attribute keepdims");
  a.transpose_a = r.boolean("attribute transpose_a");
  a.transpose_b = r.boolean("attribute transpose_b");
  a.mean = r.boolean("attribute mean");
  a.dtype = r.dtype("node '" + node + "': attribute dtype");
  for (Pair* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.output_padding}) {
    (*p)[0] = bounded(r, node, "kernel/stride/padding/dilation", max_pair_attr);
    (*p)[1] = bounded(r, node, "kernel/stride/padding/dilation", max_pair_attr);
  }
  a.groups = bounded(r, node, "groups", max_pair_attr);
  a.include_pad = r.boolean("attribute include_pad");
  a.eps = finite(r, node, "eps");
  a.momentum = finite(r, node, "momentum");
  a.post_op = post_op(r, node);
  return a;
}

void write_attrs_v2(ArchiveWriter& w, const Attrs& a) {
  const Attrs defaults{};
  std::uint32_t n = 0;
  visit_attrs(a, defaults, [&](const char*, const auto& v, const auto& d, std::int64_t) {
    if (!same(v, d)) ++n;
  });
  w.u32(n);
  visit_attrs(a, defaults, [&](const char* key, const auto& v, const auto& d, std::int64_t) {
    using T = std::decay_t<decltype(v)>;
    if (same(v, d)) return;
    w.string(key);
    w.u8(tag_of<T>());
    if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
      w.u32(static_cast<std::uint32_t>(v.size()));
      for (auto x : v) w.i64(x);
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      w.i64(v);
    } else if constexpr (std::is_same_v<T, float>) {
      w.f32(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      w.boolean(v);
    } else if constexpr (std::is_same_v<T, DType>) {
      w.dtype(v);
    } else if constexpr (std::is_same_v<T, std::uint64_t>) {
      w.u64(v);
    } else if constexpr (std::is_same_v<T, Pair>) {
      w.i64(v[0]);
      w.i64(v[1]);
    } else {
      w.u8(post_op_code(v));
    }
  });
}

Attrs read_attrs_v2(ArchiveReader& r, const std::string& node) {
  Attrs a;
  const std::size_t n = r.count("attribute count", min_attr_bytes_v2);
  std::uint32_t seen = 0;  // one bit per key, in visit_attrs order
  for (std::size_t i = 0; i < n; ++i) {
    const std::string key = r.name("attribute key");
    const std::uint8_t tag = r.u8("attribute tag");
    bool found = false;
    int index = 0;
    visit_attrs(a, a, [&](const char* k, auto& v, auto&, std::int64_t limit) {
      (void)limit;
      using T = std::decay_t<decltype(v)>;
      const int bit = index++;
      if (found || key != k) return;
      found = true;
      if (seen & (1u << bit)) r.fail("node '" + node + "': attribute '" + key + "' is given twice");
      seen |= 1u << bit;
      if (tag != tag_of<T>())
        r.fail("node '" + node + "': attribute '" + key + "' has type tag " + std::to_string(tag) +
               ", expected " + std::to_string(tag_of<T>()));
      if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
        v = axes_list(r, node, k);
      } else if constexpr (std::is_same_v<T, std::int64_t>) {
        v = bounded(r, node, k, limit);
      } else if constexpr (std::is_same_v<T, float>) {
        v = finite(r, node, k);
      } else if constexpr (std::is_same_v<T, bool>) {
        v = r.boolean(k);
      } else if constexpr (std::is_same_v<T, DType>) {
        v = r.dtype("node '" + node + "': attribute " + k);
      } else if constexpr (std::is_same_v<T, std::uint64_t>) {
        v = r.u64(k);
      } else if constexpr (std::is_same_v<T, Pair>) {
        v[0] = bounded(r, node, k, limit);
        v[1] = bounded(r, node, k, limit);
      } else {
        v = post_op(r, node);
      }
    });
    if (!found)
      r.fail("node '" + node + "': unknown attribute '" + key +
             "' (written by a newer Kiln? attributes change what an op computes, so unknown "
             "ones are refused)");
  }
  return a;
}

}  // namespace kiln::internal
