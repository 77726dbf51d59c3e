// to_dot: the graph as Graphviz DOT. Ops are the graph's nodes; leaves and constant inputs are
// drawn from the nodes' edges and saved input values.
#include "autograd/dot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>
#include <unordered_map>

#include "autograd/detail/dispatch.h"
#include "autograd/graph.h"

namespace ag {
namespace {

// A DOT string literal's contents; "\n" in the result is DOT's line break.
std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string_view base_name(std::string_view path) {
  const std::size_t slash = path.find_last_of("/\\");
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

double l2_norm(const Tensor& t) {
  double total = 0.0;
  for (double v : t.to_vector()) total += v * v;
  return std::sqrt(total);
}

std::string describe(const Tensor& t) {
  return fmt::format("{} {}", shape_str(t.shape()), dtype_name(t.dtype()));
}

class DotWriter {
 public:
  explicit DotWriter(const DotOptions& options) : options_(options) {
    for (const auto& [name, tensor] : options.names)
      if (tensor.defined()) names_.emplace(tensor.impl()->storage.get(), name);
  }

  std::string write(const Tensor& root) {
    out_ = "digraph autograd {\n  node [fontname=\"Helvetica\", fontsize=10];\n";
    if (!root.grad_fn()) {  // a leaf on its own
      source_for(root.requires_grad() ? root.impl() : nullptr, root);
    } else {
      std::vector<Node*> order = detail::topological_order(root.grad_fn().get());
      std::reverse(order.begin(), order.end());  // inputs first
      std::unordered_map<const Node*, Tensor> values{{root.grad_fn().get(), root}};
      for (const Node* node : order)
        for (std::size_t k = 0; k < node->next.size() && k < node->inputs.size(); ++k)
          if (node->next[k].node) values.emplace(node->next[k].node.get(), node->inputs[k]);

      for (std::size_t n = 0; n < order.size(); ++n) {
        const Node& node = *order[n];
        std::vector<std::string> sources;
        for (std::size_t k = 0; k < node.next.size(); ++k) {
          const Edge& e = node.next[k];
          const Tensor input = k < node.inputs.size() ? node.inputs[k] : Tensor();
          sources.push_back(e.node ? ops_.at(e.node.get()) : source_for(e.leaf, input));
        }
        const std::string id = fmt::format("op{}", n);
        ops_.emplace(&node, id);
        std::string label = fmt::format("{}\\n{} {}", escape(node.name), shape_str(node.shape),
                                        dtype_name(node.dtype));
        if (options_.where)
          label +=
              fmt::format("\\n{}:{}", escape(base_name(node.where.file_name())), node.where.line());
        const auto value = values.find(&node);
        if (options_.value_norms && value != values.end())
          label += fmt::format("\\n|value| = {:.4g}", l2_norm(value->second));
        out_ += fmt::format(
            "  {} [shape=box, style=\"rounded,filled\", fillcolor=\"#dbe9f6\"{}, label=\"{}\"];\n",
            id, &node == root.grad_fn().get() ? ", peripheries=2" : "", label);
        for (const std::string& source : sources) out_ += fmt::format("  {} -> {};\n", source, id);
      }
    }
    out_ += "}\n";
    return out_;
  }

 private:
  // The DOT id of a leaf that requires grad (`leaf` set) or of a constant input (`value` only),
  // declared on first sight. A constant is known by its storage and shape, so the same data fed
  // to two ops is one node; after release its value (and so its identity) is gone.
  std::string source_for(const std::shared_ptr<TensorImpl>& leaf, const Tensor& value) {
    const bool is_leaf = leaf != nullptr;
    const Tensor t = is_leaf ? Tensor(leaf) : value;
    const std::string key =
        !t.defined() ? fmt::format("released{}", released_++)
        : is_leaf    ? fmt::format("leaf{}", static_cast<const void*>(leaf.get()))
                     : fmt::format("const{}{}", static_cast<const void*>(t.impl()->storage.get()),
                                   shape_str(t.shape()));
    if (const auto found = sources_.find(key); found != sources_.end()) return found->second;

    const std::string id = fmt::format("{}{}", is_leaf ? "leaf" : "const", sources_.size());
    sources_.emplace(key, id);
    std::string label;
    if (!t.defined()) {
      label = "constant\\n(released)";
    } else {
      const auto name = names_.find(t.impl()->storage.get());
      label = name != names_.end() ? escape(name->second) : (is_leaf ? "leaf" : "constant");
      label += "\\n" + describe(t) + (is_leaf ? "\\nrequires grad" : "\\nno grad");
      if (options_.value_norms) label += fmt::format("\\n|value| = {:.4g}", l2_norm(t));
      if (options_.grad_norms && is_leaf)
        label += leaf->grad.defined() ? fmt::format("\\n|grad| = {:.4g}", l2_norm(t.grad()))
                                      : std::string("\\ngrad: none yet");
    }
    out_ +=
        fmt::format("  {} [shape=ellipse{}, label=\"{}\"];\n", id,
                    is_leaf ? ", style=filled, fillcolor=\"#fde9c9\"" : ", style=dashed", label);
    return id;
  }

  const DotOptions& options_;
  std::unordered_map<const void*, std::string> names_;  // storage -> name
  std::unordered_map<const Node*, std::string> ops_;    // node -> DOT id
  std::map<std::string, std::string> sources_;          // leaf / constant key -> DOT id
  int released_ = 0;
  std::string out_;
};

}  // namespace

std::string to_dot(const Tensor& root, const DotOptions& options) {
  if (!root.defined()) throw std::invalid_argument("to_dot: the tensor is undefined");
  return DotWriter(options).write(root);
}

}  // namespace ag
