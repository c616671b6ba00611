// Internal: the op table (name, arity, shape rule) shared by builders, runtime and tests.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/graph/op.hpp"

namespace kiln::internal {

/// Shape and dtype of a value.
struct TensorDesc {
  Shape shape;
  DType dtype = DType::f32;
};

/// What a shape rule sees; fail() throws ShapeError naming op, node and input shapes.
struct RuleContext {
  Op op;
  std::string_view node_name;
  const Attrs& attrs;
  std::span<const TensorDesc> inputs;
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void fail_dtype(const std::string& what) const;
};

using ShapeRule = TensorDesc (*)(const RuleContext&);

struct OpInfo {
  Op op;
  std::string_view name;
  int arity;  ///< number of inputs, -1 for variadic (>= 1)
  ShapeRule infer;
};

/// The entry for op; the table is indexed by Op.
const OpInfo& op_info(Op op);

/// Runs op's shape rule (arity and dtype checks included).
TensorDesc infer(Op op, const Attrs& attrs, std::span<const TensorDesc> inputs,
                 std::string_view node_name);

/// Dimension compatibility where kiln::batch (-1) matches anything.
inline bool dims_match(std::int64_t a, std::int64_t b) { return a == b || a < 0 || b < 0; }

}  // namespace kiln::internal
