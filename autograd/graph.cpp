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
  SmallVector<std::shared_ptr<Node>, 8> pending;
  // (This node's own lambdas are gone already: the derived part is destroyed first.)
  auto harvest = [&pending](Node& n) {
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
    n->release();  // its lambdas may hold tensors too
    harvest(*n);
  }
}

void Node::release() {
  release_saved();
  inputs.clear();
  released_ = true;
}

void Node::throw_released() const {
  throw std::logic_error(
      fmt::format("node '{}' (created at {}:{}): its saved values were released by backward()",
                  name, where.file_name(), where.line()));
}

void Node::check_read_inputs() const {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if ((reads_inputs >> std::min<std::size_t>(i, 31) & 1) != 0 &&
        inputs[i].impl()->storage->version != input_versions[i])
      throw std::logic_error(fmt::format(
          "node '{}' (created at {}:{}): input {} (shape {}) was modified in place after the op "
          "ran (its version is {}, it was {}), and the backward needs the value the op saw. Change "
          "it after backward(), or pass the op a clone()",
          name, where.file_name(), where.line(), i, shape_str(inputs[i].shape()),
          inputs[i].version(), input_versions[i]));
}

namespace detail {

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->requires_grad()) return true;
  return false;
}

void link(std::shared_ptr<Node> node, Tensor& output, const char* name, TensorList inputs,
          std::source_location where, InputMask reads_inputs) {
  if (anomaly_enabled) check_forward_finite(output, name, where);  // AnomalyGuard
  node->name = name;
  node->next.reserve(inputs.size());
  if (reads_inputs != 0) node->input_versions.reserve(inputs.size());
  // The inputs are kept as they are: a non-leaf's handle holds only the node its edge holds
  // anyway, so keeping it makes nothing live longer (and there is no cycle: every reference still
  // points from later ops to earlier ones).
  for (const Tensor& input : inputs) {
    const auto& impl = input.impl();
    if (reads_inputs != 0) node->input_versions.push_back(impl->storage->version);
    if (impl->grad_fn)
      node->next.push_back({impl->grad_fn, nullptr});
    else if (impl->requires_grad)
      node->next.push_back({nullptr, impl});
    else
      node->next.push_back({});
  }
  node->inputs = std::move(inputs);
  node->reads_inputs = reads_inputs;
  const Shape& shape = output.shape();
  node->shape = SmallVector<int64_t, 4>(shape.begin(), shape.end());
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
  /// Forgets every node, keeping the memory.
  void clear() {
    std::fill(slots_.begin(), slots_.end(), nullptr);
    size_ = 0;
  }
  std::size_t capacity() const { return slots_.size(); }

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

// What one traversal works in. backward() borrows this thread's spare one, so a training step
// allocates none of it once warm; a backward() run from inside a backward lambda gets its own.
struct Traversal {
  NodeSet seen;
  std::vector<std::pair<Node*, std::size_t>> stack;
  std::vector<Node*> order;  // the result
};

// Iterative depth-first search; a node is emitted after everything that feeds it, so the
// reversed list visits every consumer of a node's output before the node itself.
void sort_topologically(Node* root, Traversal& t) {
  t.seen.clear();
  t.stack.clear();
  t.order.clear();
  t.seen.insert(root);
  t.stack.emplace_back(root, 0);
  while (!t.stack.empty()) {
    auto& [node, next_edge] = t.stack.back();
    if (next_edge < node->next.size()) {
      Node* child = node->next[next_edge++].node.get();
      if (child && t.seen.insert(child)) t.stack.emplace_back(child, 0);
    } else {
      t.order.push_back(node);
      t.stack.pop_back();
    }
  }
  std::reverse(t.order.begin(), t.order.end());
}

class BorrowedTraversal {
 public:
  BorrowedTraversal() : t_(spare_ ? std::move(spare_) : std::make_unique<Traversal>()) {}
  ~BorrowedTraversal() {
    // Kept for the next backward() unless a huge graph made it big.
    constexpr std::size_t kKeepNodes = 4096;
    if (!spare_ && t_->seen.capacity() <= 4 * kKeepNodes) spare_ = std::move(t_);
  }
  BorrowedTraversal(const BorrowedTraversal&) = delete;
  BorrowedTraversal& operator=(const BorrowedTraversal&) = delete;
  Traversal& get() { return *t_; }

 private:
  static thread_local std::unique_ptr<Traversal> spare_;
  std::unique_ptr<Traversal> t_;
};
thread_local std::unique_ptr<Traversal> BorrowedTraversal::spare_;

}  // namespace

std::vector<Node*> topological_order(Node* root) {
  Traversal t;
  sort_topologically(root, t);
  return std::move(t.order);
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

// Nothing but `g` itself holds its values: it can become a leaf's gradient as it is.
bool sole_owner(const Tensor& g) {
  return g.impl().use_count() == 1 && g.impl()->storage.use_count() == 1;
}

// A leaf's grad() is its own storage, summed into in place across backward() calls. The first
// gradient after zero_grad() (or ever) is taken over as it is, when nothing else holds it, rather
// than copied or added to zeros: for a weight matrix, two passes over it fewer per step.
void accumulate_into_leaf(TensorImpl& leaf, Tensor g) {
  if (leaf.grad.defined() && !leaf.grad_pending_zero) {
    leaf.grad.add_(g);
    return;
  }
  leaf.grad_pending_zero = false;
  if (sole_owner(g))
    leaf.grad = std::move(g);
  else if (leaf.grad.defined())
    leaf.grad.copy_(g);
  else
    leaf.grad = g.clone();
}

// What the engine already holds for each of `node`'s inputs that the node's backward may add
// into (see Node::backward): a gradient nothing else shares, so that writing it changes no other
// value. A leaf's grad() that a caller holds, a first gradient also stored in another slot (add's
// backward returns one tensor twice), a leaf gradient still owed its deferred zeros: none is
// offered. Two edges to one slot: only the first is offered (the copy here is then a second owner).
TensorList writable_gradients(const Node& node) {
  TensorList into;
  into.reserve(node.next.size());
  for (const Edge& edge : node.next) {
    const Tensor* held = nullptr;
    if (edge.node)
      held = &edge.node->grad;
    else if (edge.leaf && !edge.leaf->grad_pending_zero)
      held = &edge.leaf->grad;
    into.push_back(held && held->defined() && sole_owner(*held) ? *held : Tensor());
  }
  return into;
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

  Tensor seed = Tensor::empty(root.shape(), root.dtype());
  detail::fill_values(seed, 1.0);
  const auto& impl = root.impl();
  if (!impl->grad_fn) {  // a leaf: d(root)/d(root) = 1
    accumulate_into_leaf(*impl, seed);
    return;
  }

  BorrowedTraversal traversal;
  sort_topologically(impl->grad_fn.get(), traversal.get());
  const std::vector<Node*>& order = traversal.get().order;
  // Refuse before anything runs, so that a refusal leaves every gradient and node as it was.
  for (Node* node : order) {
    if (node->released())
      throw std::runtime_error(fmt::format(
          "backward: the graph through '{}' (created at {}:{}) was already released by an "
          "earlier backward(); pass {{.retain_graph = true}} to the first backward() to run "
          "backward through it twice",
          node->name, node->where.file_name(), node->where.line()));
    node->check_inputs_unchanged();
  }

  NoGradGuard no_grad;  // gradients are plain values, not part of any graph
  // If a backward throws, no node keeps a partial gradient for the next backward() to add to.
  // (Leaves already reached keep what was added to them. An op that adds into held gradients
  // makes everything that can throw, its buffers, before it writes any of them.)
  struct ClearScratch {
    const std::vector<Node*>& nodes;
    ~ClearScratch() {
      for (Node* n : nodes) n->grad = Tensor();
    }
  } clear_scratch{order};

  order.front()->grad = std::move(seed);
  for (Node* node : order) {
    const Tensor grad_output = std::exchange(node->grad, Tensor());
    if (grad_output.defined()) {  // else nothing flowed here (its inputs need no grad)
      // Under an AnomalyGuard no op adds into a held gradient, so that each op's own gradient
      // is what gets checked (and nothing is changed before a check throws).
      const TensorList into =
          node->adds_into() && !anomaly_enabled ? writable_gradients(*node) : TensorList();
      TensorList grads = node->backward(grad_output, into);
      if (grads.size() != node->next.size())
        fail("backward of '{}': returned {} gradients for {} inputs", node->name, grads.size(),
             node->next.size());
      for (std::size_t i = 0; i < grads.size(); ++i) {
        const Edge& edge = node->next[i];
        if (!grads[i].defined() || !edge.needs_grad()) continue;
        check_gradient(*node, i, grads[i]);
        if (anomaly_enabled) check_backward_finite(*node, i, grads[i]);  // AnomalyGuard
        if (adds_into(into, i) && grads[i].impl() == into[i].impl())
          continue;  // the backward added it into the gradient held already
        if (edge.node)
          accumulate_into_node(edge.node->grad, std::move(grads[i]));
        else
          accumulate_into_leaf(*edge.leaf, std::move(grads[i]));
      }
    }
    if (!options.retain_graph) node->release();  // what the backward saved; keeps the structure
  }
}

}  // namespace detail
}  // namespace ag
