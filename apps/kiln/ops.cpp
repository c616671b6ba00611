// kiln ops: the ops a set of model files uses, printed as the KILN_OPS list of a selective
// build (cmake/KilnOps.cmake), e.g.
//   cmake --preset edge -DKILN_OPS="$(kiln ops digits_mlp.kiln digits_cnn.kiln)"
// or, with --json, per model as well.
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/graph/op.hpp"
#include "kiln/io/load_graph.hpp"

namespace kiln_cli {
namespace {

bool is_leaf(kiln::Op op) {
  return op == kiln::Op::input || op == kiln::Op::parameter || op == kiln::Op::constant;
}

// The names of the ops marked in `used`, in Op order.
std::vector<std::string> names(const std::vector<bool>& used) {
  std::vector<std::string> out;
  for (int i = 0; i < kiln::op_count; ++i)
    if (used[static_cast<std::size_t>(i)])
      out.emplace_back(kiln::op_name(static_cast<kiln::Op>(i)));
  return out;
}

}  // namespace

int run_ops(const OpsArgs& args) {
  std::vector<bool> all(kiln::op_count, false);
  nlohmann::json per_model = nlohmann::json::object();
  for (const std::string& path : args.models) {
    const kiln::LoadedGraph m = kiln::load_graph(path);
    std::vector<bool> used(kiln::op_count, false);
    for (const kiln::Node& node : m.graph->nodes()) {
      if (is_leaf(node.op)) continue;
      used[static_cast<std::size_t>(node.op)] = true;
      all[static_cast<std::size_t>(node.op)] = true;
    }
    per_model[path] = names(used);
  }
  const std::vector<std::string> ops = names(all);
  if (args.json) {
    std::cout << nlohmann::json{{"ops", ops}, {"models", per_model}}.dump(2) << "\n";
    return exit_ok;
  }
  std::string line;
  for (const std::string& op : ops) line += (line.empty() ? "" : ";") + op;
  std::cout << line << "\n";
  return exit_ok;
}

}  // namespace kiln_cli
