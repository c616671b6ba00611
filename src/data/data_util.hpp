// Internal: helpers the data module's files share.
#pragma once

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln::data {

/// A Fisher-Yates permutation of [0, n) drawn from `rng` (the same on every machine).
inline std::vector<std::int64_t> seeded_permutation(std::int64_t n, Rng& rng) {
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::int64_t{0});
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i) + 1));
    std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
  }
  return perm;
}

/// The class of every row of an integer target ([N] or [N, 1]); `what` names it in errors.
inline std::vector<std::int64_t> class_labels(const Tensor& target, const std::string& what) {
  if (!is_integer(target.dtype()))
    throw DTypeError(what + " is " + std::string(to_string(target.dtype())) +
                     "; class labels must be i32 or i64");
  if (target.rank() != 1 && !(target.rank() == 2 && target.dim(1) == 1))
    throw ShapeError(what + " has shape " + target.shape().str() +
                     "; class labels are [N] or [N, 1]");
  if (target.dtype() == DType::i64) return target.to_vector<std::int64_t>();
  const std::vector<std::int32_t> v = target.to_vector<std::int32_t>();
  return {v.begin(), v.end()};
}

}  // namespace kiln::data
