// Internal: the naming and initialisation helpers of layers.cpp, shared with the sequence
// layers (attention.cpp) so every layer names and seeds its parameters the same way.
#pragma once

#include <cstdint>
#include <string>

#include "kiln/nn/layers.hpp"

namespace kiln::nn::detail {

/// The graph of a layer's input; ValueError naming the layer if x is empty.
Graph& graph_of(Value x, const char* layer, const char* what);
/// The name prefix of a new layer: `requested` (NameError if already used) or the first
/// free "<kind>_<k>".
std::string layer_prefix(const Graph& graph, const std::string& requested, const char* kind);
/// Runs an initialiser (seeded from seed and the parameter's name unless rng is given) and
/// checks its result.
Tensor initial_value(const Initializer& init, const Shape& shape, DType dtype, Rng* rng,
                     std::uint64_t seed, const std::string& param_name);
/// The static, positive size of x's last dimension (x floating).
std::int64_t last_dim(Value x, const char* layer);

}  // namespace kiln::nn::detail
