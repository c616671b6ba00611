// The sequence utilities, composed from other ops: sequence_mask and last_valid_step
// through one_hot of the lengths (a length outside [0, T] is one_hot's error), and the
// sinusoidal position table (a tensor, computed in double).
#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"

namespace kiln {
namespace {

void require_lengths(Value lengths, const char* op) {
  internal::require_valid(lengths, op, "lengths");
  if (!is_integer(lengths.dtype()))
    throw DTypeError(std::string(op) + ": lengths '" + lengths.name() +
                     "' must be i32 or i64, got " + std::string(to_string(lengths.dtype())));
  if (lengths.shape().rank() != 1)
    throw ShapeError(std::string(op) + ": lengths '" + lengths.name() + "' must be [B], got " +
                     lengths.shape().str());
}

}  // namespace

Value sequence_mask(Value lengths, std::int64_t steps, DType dtype, std::string name) {
  require_lengths(lengths, "sequence_mask");
  if (steps <= 0)
    throw ValueError("sequence_mask: steps must be > 0, got " + std::to_string(steps));
  if (!is_floating(dtype))
    throw DTypeError("sequence_mask: dtype must be f32 or f64, got " +
                     std::string(to_string(dtype)));
  // one_hot(lengths) [B, T + 1] times below [T + 1, T], below[l, t] = (t < l).
  std::vector<double> below(static_cast<std::size_t>((steps + 1) * steps));
  for (std::int64_t l = 0; l <= steps; ++l)
    for (std::int64_t t = 0; t < steps; ++t)
      below[static_cast<std::size_t>(l * steps + t)] = t < l ? 1.0 : 0.0;
  Graph& g = lengths.graph();
  const Value table = g.constant(Tensor::from(below, Shape{steps + 1, steps}).to(dtype));
  return matmul(one_hot(lengths, steps + 1, dtype), table, {}, std::move(name));
}

Value last_valid_step(Value x, Value lengths, std::string name) {
  const char* op = "last_valid_step";
  internal::require_valid(x, op, "x");
  require_lengths(lengths, op);
  internal::require_same_graph(x, lengths, op);
  const Shape& s = x.shape();
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string(op) + ": x '" + x.name() + "' must be f32 or f64, got " +
                     std::string(to_string(x.dtype())));
  if (s.rank() != 3 || s[1] <= 0 || s[2] <= 0)
    throw ShapeError(std::string(op) + ": x '" + x.name() +
                     "' must be [B, T, F] with static T and F, got " + s.str());
  const std::int64_t steps = s[1], features = s[2];
  // Row b selects step lengths[b] - 1: one_hot over [0, T] without its first column (a
  // length of 0 selects nothing, giving zeros).
  const Value pick = slice(one_hot(lengths, steps + 1, x.dtype()), 1, 1, steps + 1);
  const Value y = matmul(reshape(pick, Shape{-1, 1, steps}), x);  // [B, 1, F]
  return reshape(y, Shape{-1, features}, std::move(name));
}

Tensor sinusoidal_positions(std::int64_t steps, std::int64_t dim, DType dtype) {
  if (steps <= 0 || dim <= 0)
    throw ValueError("sinusoidal_positions: steps and dim must be > 0, got " +
                     std::to_string(steps) + " and " + std::to_string(dim));
  if (!is_floating(dtype))
    throw DTypeError("sinusoidal_positions: dtype must be f32 or f64, got " +
                     std::string(to_string(dtype)));
  std::vector<double> pe(static_cast<std::size_t>(steps * dim));
  for (std::int64_t t = 0; t < steps; ++t)
    for (std::int64_t c = 0; c < dim; ++c) {
      const std::int64_t even = c - c % 2;  // 2i
      const double angle = static_cast<double>(t) /
                           std::pow(10000.0, static_cast<double>(even) / static_cast<double>(dim));
      pe[static_cast<std::size_t>(t * dim + c)] = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  return Tensor::from(pe, Shape{steps, dim}).to(dtype);
}

}  // namespace kiln
