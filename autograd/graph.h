// The dynamic computation graph: one Node per op that ran with grad mode on and an input that
// requires grad. A node keeps its op's backward closure (which saves what the backward needs),
// a way to replay the op's forward (for per-node diagnosis), and one edge per input pointing at
// where that input's gradient goes: the node that produced it, or the leaf that collects it.
//
// Ownership runs one way only, from outputs back to inputs (tensor -> node -> earlier nodes), so
// there are no reference cycles and a graph is freed as soon as its last output handle is gone.
#pragma once

#include <functional>
#include <memory>
#include <source_location>
#include <span>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

/// Gets the output's gradient and returns one gradient per input, in input order (an undefined
/// Tensor where an input needs none). It must not modify grad_output, which may be shared.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
/// Recomputes the op's forward from (detached copies of) its inputs, with everything else the op
/// was called with held fixed. Used by check_graph to test each node on its own.
using ForwardFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;

/// Where an input's gradient goes: into the node that produced it, or into a leaf's grad().
struct Edge {
  std::shared_ptr<Node> node;        // set when the input is a non-leaf
  std::shared_ptr<TensorImpl> leaf;  // set when the input is a leaf that requires grad
  bool needs_grad() const { return node || leaf; }
};

struct Node {
  const char* name = "";         // the op's name, e.g. "matmul"
  std::vector<Edge> next;        // one per input, in input order
  std::vector<Tensor> inputs;    // detached input values (released with the graph)
  BackwardFn backward;           // null once released
  ForwardFn forward;             // null once released
  Shape shape;                   // of the output
  DType dtype = DType::Float32;  // of the output
  std::source_location where;    // where the op was called
  Tensor grad;                   // scratch: the output's gradient during backward()

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Frees the chain of nodes behind this one iteratively (a 100,000-op chain must not overflow
  /// the stack through recursive shared_ptr destructors).
  ~Node();
  bool released() const { return !backward; }
};

/// Whether ops record the graph on this thread (true unless a NoGradGuard is alive).
bool is_grad_enabled();

/// RAII: while alive, ops on this thread record no graph (as torch::NoGradGuard).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

namespace detail {

/// True when grad mode is on and at least one input requires grad: only then does an op record
/// a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

/// Records `output` as produced by op `name` from `inputs`: the node the engine will visit.
void record(Tensor& output, const char* name, std::vector<Tensor> inputs, BackwardFn backward,
            ForwardFn forward, std::source_location where);

/// Runs reverse mode from a scalar `root` (Tensor::backward calls this).
void run_backward(const Tensor& root, BackwardOptions options);

/// Every node reachable from `root`, each after all nodes that consume its output (the order
/// backward() visits them). Iterative: safe on very long chains.
std::vector<Node*> topological_order(Node* root);

}  // namespace detail
}  // namespace ag
