// Graphviz DOT export.
#include <sstream>

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
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    const char* style = n.op == Op::input       ? "shape=box, style=filled, fillcolor=\"#dbeafe\""
                        : n.op == Op::parameter ? "shape=box, style=filled, fillcolor=\"#fde68a\""
                        : n.op == Op::constant  ? "shape=box, style=filled, fillcolor=\"#e5e7eb\""
                                                : "shape=ellipse";
    os << "  n" << i << " [label=\"" << escape(n.name) << "\\n"
       << op_name(n.op) << " " << n.shape.str() << " " << to_string(n.dtype) << "\", " << style
       << "];\n";
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    for (auto in : nodes_[i].inputs) os << "  n" << in << " -> n" << i << ";\n";
  os << "}\n";
  return os.str();
}

}  // namespace kiln
