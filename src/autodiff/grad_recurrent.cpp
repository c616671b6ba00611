// Backward rules of lstm and gru (helper "rnn" replaces this contract placeholder).
#include "autodiff/grad_rules.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {

std::vector<Value> g_lstm(const GradContext&) { throw Error("lstm: gradient not built yet"); }
std::vector<Value> g_gru(const GradContext&) { throw Error("gru: gradient not built yet"); }

}  // namespace kiln::internal
