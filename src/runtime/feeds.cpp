#include "runtime/feeds.hpp"

#include <cmath>
#include <cstdint>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln::internal {
namespace {

std::string quoted_names(std::span<const FeedSpec> inputs) {
  std::string s;
  for (const FeedSpec& in : inputs) {
    if (!s.empty()) s += ", ";
    s += "'";
    s += in.name;
    s += "'";
  }
  return s;
}

// "<where>: input '<name>' " — the start of most messages.
std::string about(std::string_view where, std::string_view name) {
  std::string s(where);
  s += ": input '";
  s += name;
  s += "' ";
  return s;
}

template <class T>
void check_finite_values(const Tensor& t, std::string_view where, std::string_view name) {
  const T* p = t.data<T>();
  const auto n = static_cast<std::size_t>(t.numel());
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i]))
      throw ValueError(about(where, name) + "holds " + std::to_string(p[i]) + " at element " +
                       std::to_string(i) + " (flat index); its values must be finite");
  }
}

}  // namespace

std::vector<std::size_t> match_feeds(std::span<const FeedSpec> inputs, const Feeds& feeds,
                                     std::string_view where, bool check_finite,
                                     const std::function<bool(const std::string&)>& ignorable) {
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::vector<std::size_t> feed_of(inputs.size(), none);
  // The first feed that fixed the batch size, and that size.
  std::size_t batch_feed = none;
  std::int64_t batch_size = 0;
  for (std::size_t f = 0; f < feeds.size(); ++f) {
    const auto& [name, tensor] = feeds[f];
    std::size_t i = 0;
    while (i < inputs.size() && inputs[i].name != name) ++i;
    if (i == inputs.size()) {
      if (ignorable && ignorable(name)) continue;
      throw NameError(std::string(where) + ": '" + name +
                      "' is not an input (inputs: " + quoted_names(inputs) + ")");
    }
    if (feed_of[i] != none) throw NameError(about(where, name) + "is fed twice");
    feed_of[i] = f;
    const FeedSpec& spec = inputs[i];
    if (!tensor.defined()) throw ValueError(about(where, name) + "is an undefined tensor");
    if (tensor.dtype() != spec.dtype)
      throw DTypeError(about(where, name) + "must be " + std::string(to_string(spec.dtype)) +
                       ", got " + std::string(to_string(tensor.dtype())));
    const Shape& want = *spec.shape;
    bool fits = tensor.rank() == want.rank();
    for (std::size_t d = 0; fits && d < want.rank(); ++d)
      fits = want[d] == batch || want[d] == tensor.dim(d);
    if (!fits)
      throw ShapeError(about(where, name) + "must have shape " + want.str() + ", got " +
                       tensor.shape().str());
    for (std::size_t d = 0; d < want.rank(); ++d) {
      if (want[d] != batch) continue;
      if (batch_feed == none) {
        batch_feed = f;
        batch_size = tensor.dim(d);
      } else if (tensor.dim(d) != batch_size) {
        throw ShapeError(std::string(where) + ": inputs '" + feeds[batch_feed].first + "' and '" +
                         name + "' have different batch sizes (" + std::to_string(batch_size) +
                         " and " + std::to_string(tensor.dim(d)) + ")");
      }
    }
    if (check_finite) {
      if (tensor.dtype() == DType::f32)
        check_finite_values<float>(tensor.contiguous(), where, name);
      else if (tensor.dtype() == DType::f64)
        check_finite_values<double>(tensor.contiguous(), where, name);
    }
  }
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (feed_of[i] == none) throw NameError(about(where, inputs[i].name) + "is missing");
  return feed_of;
}

}  // namespace kiln::internal
