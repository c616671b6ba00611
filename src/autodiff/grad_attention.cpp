// Backward rules of attention and gelu (helper "attention" replaces this contract
// placeholder).
#include "autodiff/grad_rules.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {

std::vector<Value> g_attention(const GradContext&) {
  throw Error("attention: gradient not built yet");
}
std::vector<Value> g_gelu(const GradContext&) { throw Error("gelu: gradient not built yet"); }

}  // namespace kiln::internal
