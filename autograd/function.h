// Custom ops: your own forward and backward, recorded in the graph exactly like the built-in ops,
// so backward(), gradcheck, check_graph, AnomalyGuard and to_dot all see them.
//
//   // x: any shape -> same shape. y = x³
//   ag::Tensor cube(const ag::Tensor& x, ag::Where where = ag::Where::current()) {
//     return ag::custom_op(
//         "cube", {x},
//         [](const std::vector<ag::Tensor>& in) { return ag::mul(ag::mul(in[0], in[0]), in[0]); },
//         [](const ag::OpContext& ctx, const ag::Tensor& g) {  // dL/dx = 3 x² · dL/dy
//           const ag::Tensor& x = ctx.inputs[0];
//           return std::vector<ag::Tensor>{ag::scale(ag::mul(ag::mul(x, x), g), 3.0)};
//         },
//         where);
//   }
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "autograd/tensor.h"

namespace ag {

/// What a custom op's backward may read: the values the op was called with and the value it
/// returned. Both are detached (values only, no graph), so keeping them cannot form a cycle.
struct OpContext {
  /// The op's inputs, in the order they were passed to custom_op.
  std::vector<Tensor> inputs;
  /// The op's output.
  Tensor output;
  /// needs_input_grad[i]: whether input i's gradient is used. A backward may skip the work for
  /// the others and return an undefined Tensor in their place.
  std::vector<bool> needs_input_grad;
};

/// A custom op's forward: input values -> output value. It runs with grad mode off, so it may
/// loop over raw data or compose other ops; either way the op is one node in the graph. Anything
/// else the op depends on (labels, a slope, a scale factor) is captured by the lambda and is held
/// fixed, i.e. not differentiated.
using CustomForward = std::function<Tensor(const std::vector<Tensor>& inputs)>;

/// A custom op's backward: the gradient of the loss with respect to the output (same shape and
/// dtype as ctx.output) -> one gradient per input, in input order, each with that input's shape
/// and dtype. Return gradients, never add them anywhere: the engine accumulates them. Runs with
/// grad mode off.
using CustomBackward =
    std::function<std::vector<Tensor>(const OpContext& ctx, const Tensor& grad_output)>;

/// Runs `forward` on `inputs` and, when grad mode is on and an input requires grad, records the
/// result as one node named `name` whose backward is `backward`, created at `where` (pass the
/// trailing `Where where = Where::current()` of your op function through, as the built-ins do).
///
/// The node's replay, which check_graph uses to test this op alone, is this same call on new
/// input values: forward and replay cannot disagree. Both lambdas must therefore work for any
/// input values and for Float64 inputs (check_graph and gradcheck run in Float64): build every
/// tensor inside them with the inputs' dtype.
///
/// Under AnomalyGuard the output is checked for NaN and Inf even when no node is recorded.
/// Throws std::invalid_argument for an empty name, an undefined input, or a forward that returns
/// an undefined tensor.
Tensor custom_op(std::string_view name, std::vector<Tensor> inputs, CustomForward forward,
                 CustomBackward backward, Where where = Where::current());

}  // namespace ag
