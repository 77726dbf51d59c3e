// Recording the graph as ops run, and the reverse-mode engine that walks it.
#include "autograd/graph.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <stdexcept>
#include <utility>

#include "autograd/allocator.h"
#include "autograd/detail/anomaly.h"
#include "autograd/detail/dispatch.h"

namespace ag {

namespace {
thread_local bool grad_enabled = true;
}  // namespace

bool is_grad_enabled() {
  return grad_enabled;
}

NoGradGuard::NoGradGuard() : previous_(grad_enabled) {
  grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  grad_enabled = previous_;
}

Node::~Node() {
  // Take apart, one at a time, every node that only this chain keeps alive; each is then
  // destroyed with no edges left, so no destructor recurses.
  std::vector<std::shared_ptr<Node>> pending;
  auto harvest = [&pending](Node& n) {
    n.backward = nullptr;
    n.forward = nullptr;
    n.inputs.clear();
    // Edge by edge, so that when several edges hold the same node (add(h, h)) the earlier ones
    // let go first and the last one, now the only owner, takes it apart here.
    for (Edge& e : n.next) {
      if (!e.node) continue;
      if (e.node.use_count() == 1)
        pending.push_back(std::move(e.node));
      else
        e.node.reset();
    }
    n.next.clear();
  };
  harvest(*this);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    harvest(*n);
  }
}

namespace detail {

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

void record(Tensor& output, const char* name, std::vector<Tensor> inputs, BackwardFn backward,
            ForwardFn forward, std::source_location where) {
  if (anomaly_enabled) check_forward_finite(output, name, where);  // AnomalyGuard
  auto node = make_pooled<Node>();
  node->name = name;
  node->next.reserve(inputs.size());
  for (Tensor& input : inputs) {
    const auto& impl = input.impl();
    if (impl->grad_fn)
      node->next.push_back({impl->grad_fn, nullptr});
    else if (impl->requires_grad)
      node->next.push_back({nullptr, impl});
    else
      node->next.push_back({});
    // The node keeps values, never the graph behind them. A leaf has no graph behind it (and its
    // edge holds it anyway), so it is kept as it is.
    if (impl->grad_fn) input = input.detach();
  }
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  node->forward = std::move(forward);
  node->shape = output.shape();
  node->dtype = output.dtype();
  node->where = where;
  output.impl()->grad_fn = std::move(node);
}

namespace {

// The nodes one traversal has seen: open addressing in one flat array, so that marking a node
// allocates nothing (std::unordered_set allocates once per element).
class NodeSet {
 public:
  /// Adds `node`; false when it was already there.
  bool insert(Node* node) {
    if (2 * (size_ + 1) > slots_.size()) rehash(std::max<std::size_t>(64, 2 * slots_.size()));
    std::size_t i = slot_of(node);
    while (slots_[i] && slots_[i] != node) i = (i + 1) & (slots_.size() - 1);
    if (slots_[i]) return false;
    slots_[i] = node;
    ++size_;
    return true;
  }

 private:
  std::size_t slot_of(const Node* node) const {  // Fibonacci hashing: the product's top bits
    const auto bits = static_cast<uint64_t>(reinterpret_cast<std::uintptr_t>(node));
    return static_cast<std::size_t>((bits * uint64_t{0x9E3779B97F4A7C15}) >> shift_);
  }
  void rehash(std::size_t capacity) {  // capacity: a power of two
    const std::vector<Node*> old = std::exchange(slots_, std::vector<Node*>(capacity));
    shift_ = 64 - std::countr_zero(capacity);
    size_ = 0;
    for (Node* node : old)
      if (node) insert(node);
  }
  std::vector<Node*> slots_;
  std::size_t size_ = 0;
  int shift_ = 0;
};

}  // namespace

std::vector<Node*> topological_order(Node* root) {
  // Iterative depth-first search; a node is emitted after everything that feeds it, so the
  // reversed list visits every consumer of a node's output before the node itself.
  std::vector<Node*> post_order;
  NodeSet seen;
  seen.insert(root);
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next_edge] = stack.back();
    if (next_edge < node->next.size()) {
      Node* child = node->next[next_edge++].node.get();
      if (child && seen.insert(child)) stack.emplace_back(child, 0);
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  std::reverse(post_order.begin(), post_order.end());
  return post_order;
}

namespace {

// Adds `g` to the gradient slot `slot`. The first gradient is stored as it is (it may be shared
// with another slot, e.g. add's backward returns its input twice), so later sums make a new
// tensor instead of writing into it.
void accumulate_into_node(Tensor& slot, Tensor g) {
  if (!slot.defined()) {
    slot = std::move(g);
  } else {
    Tensor sum = slot.clone();
    sum.add_(g);
    slot = std::move(sum);
  }
}

// A leaf's grad() is its own storage, so it can be summed into in place across backward() calls.
void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  if (!leaf.grad.defined())
    leaf.grad = g.clone();
  else
    leaf.grad.add_(g);
}

void check_gradient(const Node& node, std::size_t i, const Tensor& g) {
  const Tensor& input = node.inputs[i];
  if (g.shape() != input.shape() || g.dtype() != input.dtype())
    fail("backward of '{}' (created at {}:{}): gradient {} is {} {}, but input {} is {} {}",
         node.name, node.where.file_name(), node.where.line(), i, dtype_name(g.dtype()),
         shape_str(g.shape()), i, dtype_name(input.dtype()), shape_str(input.shape()));
}

}  // namespace

void run_backward(const Tensor& root, BackwardOptions options) {
  if (!root.defined()) throw std::invalid_argument("backward: the tensor is undefined");
  if (root.numel() != 1)
    fail(
        "backward: only a scalar output can start backward(), got shape {} ({} elements); "
        "reduce it first, e.g. with ag::sum",
        shape_str(root.shape()), root.numel());
  if (!root.requires_grad())
    fail(
        "backward: the tensor does not require grad (no input was marked with "
        "requires_grad_(), or it was computed under NoGradGuard)");

  const Tensor seed = full(root.shape(), 1.0, root.dtype());
  const auto& impl = root.impl();
  if (!impl->grad_fn) {  // a leaf: d(root)/d(root) = 1
    accumulate_into_leaf(*impl, seed);
    return;
  }

  const std::vector<Node*> order = topological_order(impl->grad_fn.get());
  for (Node* node : order)
    if (node->released())
      throw std::runtime_error(fmt::format(
          "backward: the graph through '{}' (created at {}:{}) was already released by an "
          "earlier backward(); pass {{.retain_graph = true}} to the first backward() to run "
          "backward through it twice",
          node->name, node->where.file_name(), node->where.line()));

  NoGradGuard no_grad;  // gradients are plain values, not part of any graph
  // If a backward throws, no node keeps a partial gradient for the next backward() to add to.
  // (Leaves already reached keep what was added to them.)
  struct ClearScratch {
    const std::vector<Node*>& nodes;
    ~ClearScratch() {
      for (Node* n : nodes) n->grad = Tensor();
    }
  } clear_scratch{order};

  order.front()->grad = seed;
  for (Node* node : order) {
    const Tensor grad_output = std::exchange(node->grad, Tensor());
    if (grad_output.defined()) {  // else nothing flowed here (its inputs need no grad)
      std::vector<Tensor> grads = node->backward(grad_output);
      if (grads.size() != node->next.size())
        fail("backward of '{}': returned {} gradients for {} inputs", node->name, grads.size(),
             node->next.size());
      for (std::size_t i = 0; i < grads.size(); ++i) {
        const Edge& edge = node->next[i];
        if (!grads[i].defined() || !edge.needs_grad()) continue;
        check_gradient(*node, i, grads[i]);
        if (anomaly_enabled) check_backward_finite(*node, i, grads[i]);  // AnomalyGuard
        if (edge.node)
          accumulate_into_node(edge.node->grad, std::move(grads[i]));
        else
          accumulate_into_leaf(*edge.leaf, grads[i]);
      }
    }
    if (!options.retain_graph) {  // release what the backward saved, keep the structure
      node->backward = nullptr;
      node->forward = nullptr;
      node->inputs.clear();
    }
  }
}

}  // namespace detail
}  // namespace ag
