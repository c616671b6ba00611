// Internal: helpers shared by the layer builders of src/nn (layers.cpp, recurrent.cpp):
// the graph of a layer's input, the layer's name prefix, reproducible initial values.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/nn/layers.hpp"

namespace kiln::nn::detail {

/// The graph of a layer's input; ValueError naming the layer if x is empty.
Graph& graph_of(Value x, const char* layer, const char* what);
/// ValueError unless x is a valid value of `graph`.
void check_input(Graph& graph, Value x, const char* layer, const char* what);
/// The name prefix of a new layer: `requested` (which must be free; NameError otherwise) or
/// the first free "<kind>_<k>".
std::string layer_prefix(const Graph& graph, const std::string& requested, const char* kind);
/// The initial value of parameter `param_name` from `init` (rng, or one seeded by (seed,
/// param_name)); ValueError if the initialiser does not make shape and dtype.
Tensor initial_value(const Initializer& init, const Shape& shape, DType dtype, Rng* rng,
                     std::uint64_t seed, const std::string& param_name);
/// The static, positive size of x's last dimension (x floating).
std::int64_t last_dim(Value x, const char* layer);

}  // namespace kiln::nn::detail
