// Internal: helpers shared by the builder functions in src/ops/.
#pragma once

#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"

namespace kiln::internal {

/// Throws ValueError if v is not a valid handle; `what` names the argument.
inline void require_valid(Value v, const char* op, const char* what) {
  if (!v.valid()) throw ValueError(std::string(op) + ": argument '" + what + "' is an empty Value");
}

/// Throws ValueError if a and b live in different graphs.
inline void require_same_graph(Value a, Value b, const char* op) {
  if (&a.graph() != &b.graph())
    throw ValueError(std::string(op) + ": values '" + a.name() + "' and '" + b.name() +
                     "' belong to different graphs");
}

/// Axis in [-rank, rank) made non-negative; throws ShapeError naming the op otherwise.
std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, const char* op, Value x);

/// Axes made non-negative, sorted and unique; empty means all axes.
std::vector<std::int64_t> normalize_axes(std::vector<std::int64_t> axes, std::size_t rank,
                                         const char* op, Value x);

/// a and b brought to one shape by numpy broadcasting (reshape + expand).
std::pair<Value, Value> broadcast_pair(Value a, Value b, const char* op);

/// Pooling options as node attributes (a zero stride means the kernel size).
inline Attrs pool_attrs(const Pool2dOptions& o) {
  Attrs a;
  a.kernel = o.kernel;
  a.stride = (o.stride[0] == 0 && o.stride[1] == 0) ? o.kernel : o.stride;
  a.padding = o.padding;
  a.include_pad = o.include_pad;
  return a;
}

}  // namespace kiln::internal
