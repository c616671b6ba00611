// Internal: the op table (name, arity, shape rule and per-op facts) shared by builders,
// runtime, passes, the model format and tests: one place for what an op is.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/graph/op.hpp"
#include "kiln_ops_in_build.hpp"  // generated from KILN_OPS (cmake/KilnOps.cmake)

namespace kiln::internal {

/// Shape and dtype of a value.
struct TensorDesc {
  Shape shape;
  DType dtype = DType::f32;
  /// Set on a kernel's input that keeps its storage and values for every run of the plan
  /// (a parameter or constant of an executable compiled with
  /// CompileOptions::constant_parameters): kernels may transform it once and keep that.
  bool constant = false;
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

/// Facts about an op, read from the table instead of lists kept where they are used.
enum OpFlag : std::uint32_t {
  /// input, parameter, constant: no inputs and no kernel.
  op_leaf = 1u << 0,
  /// Output element i depends on input element i only (equal shapes after the builders'
  /// broadcasting): add, relu, exp, ...
  op_elementwise = 1u << 1,
  /// Has a backward rule. The rules live in kiln (src/autodiff/grad_rules.cpp); the op
  /// table test checks this flag against them.
  op_differentiable = 1u << 2,
  /// Created only by autodiff (backward primitives): refused in model files and absent
  /// from kiln_infer's kernel table (the op table test checks the latter).
  op_training_only = 1u << 3,
  /// The fusion pass folds a following per-channel bias add and relu into its kernel's
  /// epilogue (attrs.post_op and a third input; matmul only when rank 2).
  op_epilogue_fusable = 1u << 4,
};

struct OpInfo {
  Op op;
  std::string_view name;
  int arity;  ///< number of inputs, -1 for variadic (>= 1)
  ShapeRule infer;
  std::uint32_t flags = 0;  ///< OpFlag bits

  bool has(OpFlag f) const { return (flags & f) != 0; }
};

/// The entry for op; the table is indexed by Op.
const OpInfo& op_info(Op op);

/// Runs op's shape rule (arity and dtype checks included).
TensorDesc infer(Op op, const Attrs& attrs, std::span<const TensorDesc> inputs,
                 std::string_view node_name);

/// Whether op has a backward rule (the table's flag; agreement with kiln's rules is tested).
inline bool is_differentiable(Op op) { return op_info(op).has(op_differentiable); }

/// Dimension compatibility where kiln::batch (-1) matches anything.
inline bool dims_match(std::int64_t a, std::int64_t b) { return a == b || a < 0 || b < 0; }

}  // namespace kiln::internal
