// Graphviz DOT export: one cluster per scope.
#include <map>
#include <sstream>
#include <vector>

#include "kiln/graph/graph.hpp"

namespace kiln {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

}  // namespace

std::string Graph::to_dot() const {
  std::ostringstream os;
  os << "digraph kiln {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  auto node_line = [&](std::size_t i, const char* indent) {
    const Node& n = nodes_[i];
    const char* style = n.op == Op::input       ? "shape=box, style=filled, fillcolor=\"#dbeafe\""
                        : n.op == Op::parameter ? "shape=box, style=filled, fillcolor=\"#fde68a\""
                        : n.op == Op::constant  ? "shape=box, style=filled, fillcolor=\"#e5e7eb\""
                                                : "shape=ellipse";
    os << indent << "n" << i << " [label=\"" << escape(n.name) << "\\n"
       << op_name(n.op) << " " << n.shape.str() << " " << to_string(n.dtype) << "\", " << style
       << "];\n";
  };
  // Scopes in order of their first node.
  std::vector<std::string> scopes;
  std::map<std::string, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const std::string& sc = nodes_[i].scope;
    if (sc.empty()) {
      node_line(i, "  ");
      continue;
    }
    auto [it, fresh] = members.try_emplace(sc);
    if (fresh) scopes.push_back(sc);
    it->second.push_back(i);
  }
  for (std::size_t k = 0; k < scopes.size(); ++k) {
    os << "  subgraph cluster_" << k << " {\n    label=\"" << escape(scopes[k])
       << "\";\n    style=rounded;\n";
    for (std::size_t i : members[scopes[k]]) node_line(i, "    ");
    os << "  }\n";
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    for (auto in : nodes_[i].inputs) os << "  n" << in << " -> n" << i << ";\n";
  os << "}\n";
  return os.str();
}

}  // namespace kiln
