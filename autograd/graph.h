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
#include <optional>
#include <source_location>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/small_vector.h"
#include "autograd/tensor.h"

namespace ag {

/// A list of tensors as the graph keeps them: an op's inputs, the gradients its backward returns.
/// Up to two live inside the list itself, so recording a binary op allocates nothing for it.
using TensorList = SmallVector<Tensor, 2>;

/// Recomputes an op's forward from new values of its inputs, with everything else the op was
/// called with held fixed. Used by check_graph to test each node on its own.
using ForwardFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;

/// Where an input's gradient goes: into the node that produced it, or into a leaf's grad().
struct Edge {
  std::shared_ptr<Node> node;        // set when the input is a non-leaf
  std::shared_ptr<TensorImpl> leaf;  // set when the input is a leaf that requires grad
  bool needs_grad() const { return node || leaf; }
};

namespace detail {
/// Which of an op's inputs its backward reads, bit i for input i (bit 31 for inputs 31 and
/// beyond): those whose in-place change between the forward and backward() is refused.
/// matmul(a, b) reads b only for a's gradient and a only for b's, so it passes
/// reads(grad_a ? 1 : -1, grad_b ? 0 : -1); a negative index adds nothing.
using InputMask = uint32_t;
inline constexpr InputMask kAllInputs = ~InputMask{0};
template <class... Is>
constexpr InputMask reads(Is... inputs) {
  return ((inputs < 0 ? InputMask{0} : InputMask{1} << (inputs < 31 ? inputs : 31)) | ... |
          InputMask{0});
}
}  // namespace detail

/// One recorded op. The op's backward and forward lambdas live in the node itself (see
/// detail::record), so recording an op allocates nothing beyond the node.
struct Node {
  const char* name = "";                    // the op's name, e.g. "matmul"
  SmallVector<Edge, 2> next;                // one per input, in input order
  TensorList inputs;                        // the input values (released with the graph)
  SmallVector<uint64_t, 2> input_versions;  // each input's version() when the op ran (if read)
  detail::InputMask reads_inputs = 0;       // bit i: the backward reads input i's value
  SmallVector<int64_t, 4> shape;            // of the output
  DType dtype = DType::Float32;             // of the output
  std::source_location where;               // where the op was called
  Tensor grad;                              // scratch: the output's gradient during backward()

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Frees the chain of nodes behind this one iteratively (a 100,000-op chain must not overflow
  /// the stack through recursive shared_ptr destructors).
  virtual ~Node();

  /// The op's backward: gets the output's gradient and returns one gradient per input, in input
  /// order (an undefined Tensor where an input needs none). It must not modify grad_output, which
  /// may be shared. Throws std::logic_error once the node is released. (It does not check the
  /// inputs' versions: Tensor::backward() checks every node's first, with
  /// check_inputs_unchanged(), as a direct caller should.)
  TensorList backward(const Tensor& grad_output) const { return backward(grad_output, {}); }
  /// The same, as the engine calls it for a node whose op adds_into(): `into` holds, for each
  /// input, the gradient the engine already has for it when nothing else shares that tensor or
  /// its storage (else an undefined Tensor: also for a leaf whose zero_grad() zeros are still
  /// owed, for a second edge to the same gradient, and for every input under an AnomalyGuard),
  /// or is empty. Such an op adds its gradient for input i into into[i] when it is defined and
  /// returns into[i] itself in place i (matmul: GEMM with beta = 1; l2: w.grad += 2·g·w), which
  /// saves a buffer and a pass over it; the engine then adds nothing. It makes every buffer it
  /// needs before writing into any into[i], so that a throw changes nothing. Other ops never
  /// see `into`.
  virtual TensorList backward(const Tensor& grad_output, const TensorList& into) const = 0;
  /// Whether the op's backward can add into the engine's gradients (see backward above).
  bool adds_into() const { return adds_into_; }
  /// Replays the op's forward on new input values (see ForwardFn). Throws once released.
  virtual Tensor forward(const std::vector<Tensor>& inputs) const = 0;
  /// Drops what the op saved for its backward (its lambdas and input values), keeping the
  /// structure: what backward() does to each node unless retain_graph is set.
  void release();
  bool released() const { return released_; }
  /// Throws std::logic_error if a value the backward reads (an input in reads_inputs, or
  /// something else the op saved, such as a custom op's output) was changed in place since the
  /// op ran (its version moved on): the backward would use values the forward never saw.
  /// backward() checks every node of the graph this way before running any, including nodes
  /// that will receive no gradient.
  void check_inputs_unchanged() const {
    if (reads_inputs != 0) check_read_inputs();
    if (checks_other_saved_) check_other_saved();
  }

 protected:
  virtual void release_saved() noexcept = 0;
  /// For ops that save more than their inputs: throws as check_inputs_unchanged does.
  virtual void check_other_saved() const {}
  [[noreturn]] void throw_released() const;
  void check_read_inputs() const;
  bool checks_other_saved_ = false;  // set by an op whose check_other_saved does something
  bool adds_into_ = false;           // set by an op whose backward takes `into`

 private:
  bool released_ = false;
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

/// The gradients a backward returns, one per input, moved into the list as they are given:
/// `return detail::grads(std::move(da), std::move(db));`. (A braced TensorList{da, db} would copy
/// each twice, an atomic reference count each time.) A one-input op may return its Tensor.
template <class... Ts>
TensorList grads(Ts&&... gradients) {
  TensorList out;
  out.reserve(sizeof...(Ts));
  (out.emplace_back(std::forward<Ts>(gradients)), ...);
  return out;
}

/// Whether a backward that takes `into` (see Node::backward) has a gradient to add input i's
/// into: if so it writes into[i] (adding to it) and returns it, else a new tensor.
inline bool adds_into(const TensorList& into, std::size_t i) {
  return i < into.size() && into[i].defined();
}

/// The three ways an op's backward can be called (see OpNode): with the inputs the node keeps as
/// a second argument, and also with `into` as a third (a backward callable with three arguments
/// is taken to add into `into`; a variadic generic lambda would be too, so no op writes one).
template <class Backward>
inline constexpr bool kBackwardAddsInto =
    std::is_invocable_v<const Backward&, const Tensor&, const TensorList&, const TensorList&>;
template <class Backward>
inline constexpr bool kBackwardTakesInputs =
    kBackwardAddsInto<Backward> ||
    std::is_invocable_v<const Backward&, const Tensor&, const TensorList&>;

/// The node of an op whose backward is `Backward` and replay is `Forward`, both stored inline.
/// Backward is called as backward(grad_output), as backward(grad_output, inputs) when it takes
/// the node's saved input values as a second argument, or as backward(grad_output, inputs, into)
/// when it can also add into the engine's gradients (see Node::backward); it returns a
/// TensorList (or a std::vector<Tensor>, or one Tensor for a one-input op), one gradient per
/// input.
template <class Backward, class Forward>
class OpNode final : public Node {
 public:
  OpNode(Backward backward, Forward forward)
      : backward_(std::move(backward)), forward_(std::move(forward)) {
    checks_other_saved_ = kChecksSaved;
    adds_into_ = kAddsInto;
  }

  using Node::backward;
  TensorList backward(const Tensor& grad_output, const TensorList& into) const override {
    if (!backward_) throw_released();
    if constexpr (kAddsInto)
      return as_list((*backward_)(grad_output, inputs, into));
    else if constexpr (kBackwardTakesInputs<Backward>)
      return as_list((*backward_)(grad_output, inputs));
    else
      return as_list((*backward_)(grad_output));
  }
  Tensor forward(const std::vector<Tensor>& values) const override {
    if (!forward_) throw_released();
    return (*forward_)(values);
  }

 private:
  static TensorList as_list(TensorList grads) { return grads; }
  static TensorList as_list(Tensor grad) { return detail::grads(std::move(grad)); }
  static TensorList as_list(std::vector<Tensor>&& grads) {
    return TensorList(std::make_move_iterator(grads.begin()), std::make_move_iterator(grads.end()));
  }
  void release_saved() noexcept override {
    backward_.reset();
    forward_.reset();
  }
  static constexpr bool kAddsInto = kBackwardAddsInto<Backward>;
  // A backward that is an object with check_saved() (a custom op's) checks what it saved.
  static constexpr bool kChecksSaved = requires(const Backward& b) { b.check_saved(); };
  void check_other_saved() const override {
    if constexpr (kChecksSaved)
      if (backward_) backward_->check_saved();
  }
  std::optional<Backward> backward_;
  std::optional<Forward> forward_;
};

/// Links `node` into the graph as the producer of `output`, from `inputs` (the non-template
/// half of record).
void link(std::shared_ptr<Node> node, Tensor& output, const char* name, TensorList inputs,
          std::source_location where, InputMask reads_inputs);

/// An op's inputs as it passes them to record, `{a, b}`: references, so that each is copied once,
/// into the node (a braced list of Tensors would copy each twice).
using InputRefs = std::initializer_list<std::reference_wrapper<const Tensor>>;

/// Records `output` as produced by op `name` from `inputs`: the node the engine will visit. A
/// backward that takes the inputs reads all of them unless `reads_inputs` says which.
template <class Backward, class Forward>
void record(Tensor& output, const char* name, TensorList inputs, Backward backward, Forward forward,
            std::source_location where, InputMask reads_inputs = kAllInputs) {
  link(make_pooled<OpNode<Backward, Forward>>(std::move(backward), std::move(forward)), output,
       name, std::move(inputs), where,
       kBackwardTakesInputs<Backward> ? reads_inputs : InputMask{0});
}
template <class Backward, class Forward>
void record(Tensor& output, const char* name, InputRefs inputs, Backward backward, Forward forward,
            std::source_location where, InputMask reads_inputs = kAllInputs) {
  record(output, name, TensorList(inputs.begin(), inputs.end()), std::move(backward),
         std::move(forward), where, reads_inputs);
}

/// Runs reverse mode from a scalar `root` (Tensor::backward calls this).
void run_backward(const Tensor& root, BackwardOptions options);

/// Every node reachable from `root`, each after all nodes that consume its output (the order
/// backward() visits them). Iterative: safe on very long chains.
std::vector<Node*> topological_order(Node* root);

}  // namespace detail
}  // namespace ag
