// Per-node gradient diagnosis: check_graph gradchecks every op of a graph on its own, so that a
// wrong backward anywhere in a model (a built-in op or your own custom_op) is named, with the
// line that created it, instead of showing up only as a wrong gradient of some parameter.
//
//   const ag::Tensor loss = model_loss(params);
//   const ag::GraphCheck check = ag::check_graph(loss);  // before loss.backward()
//   if (!check.ok()) std::cerr << check.report();          // points at the first bad node
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/tensor.h"

namespace ag {

struct CheckGraphOptions {
  /// Step of the central differences. Small, so that only an input within eps of a kink (relu at
  /// 0) makes a difference straddle it; such inputs are found and moved off the kink before the
  /// node is judged (see NodeCheck::kinks).
  double eps = 1e-6;
  /// A node fails when the relative error (ag::relative_error) of any element of any of its
  /// inputs' gradients reaches this, unless that element is within atol. Correct backwards
  /// typically stay near 1e-9 at the default eps; the classic mistakes are off by 0.1 or more.
  double tolerance = 1e-6;
  /// Seed of the fixed random weighting that reduces a non-scalar output to a scalar f.
  uint64_t seed = 0;
  /// An element also passes when |analytic - numeric| <= atol (see GradcheckOptions::atol).
  /// Unset: a node is judged by relative error alone first and, only if that fails, again with
  /// atol = the rounding noise of the central difference with a 1000x margin,
  /// 1000 · 2⁻⁵² · max(1, Σ|f's terms|) / eps (about 2e-7 for a loss near 1 at eps 1e-6), so
  /// that an element whose gradient is tiny next to f (a softmax probability near 0) is not
  /// blamed for noise. 0: relative error alone.
  std::optional<double> atol = std::nullopt;
};

/// The verdict on one node: its backward against central differences of its own forward.
struct NodeCheck {
  enum class Status {
    Passed,  // every input's gradient agrees within the tolerance
    Failed,  // the backward disagrees, or returned a gradient of the wrong shape or dtype
    Error,   // the node could not be checked (e.g. its replay threw); see message
  };

  /// Position in graph order: every node comes after the nodes that produced its inputs.
  std::size_t index = 0;
  /// The op's name, e.g. "matmul".
  std::string op;
  std::vector<Shape> input_shapes;
  Shape output_shape;
  /// The dtype the op ran in (the check itself always runs in Float64).
  DType dtype = DType::Float32;
  /// Where the op was called.
  std::source_location where;
  Status status = Status::Passed;
  /// Per input: the max relative error, the worst element and both of its values. Empty when the
  /// backward returned gradients of the wrong shape, and for Status::Error.
  GradcheckResult gradcheck;
  /// How many input elements sat at a kink of the op (their one-sided slopes differ, e.g. relu
  /// at exactly 0) and were moved off it by ±10 eps before the final check. A central difference
  /// across a kink measures neither side's derivative, so it cannot judge the backward there.
  int64_t kinks = 0;
  /// The atol of the final verdict: 0 when relative errors alone passed, else the rounding-noise
  /// estimate (or CheckGraphOptions::atol).
  double atol = 0.0;
  /// For Failed and Error: what went wrong, in words.
  std::string message;

  bool passed() const { return status == Status::Passed; }
  /// The largest relative error over the node's inputs (NaN if any is NaN; 0 when there is no
  /// gradcheck result).
  double max_rel_error() const;
  /// "file:line" of where.
  std::string location() const;
};

/// The verdicts on every node of a graph, in graph order (inputs before consumers).
struct GraphCheck {
  std::vector<NodeCheck> nodes;
  double eps = 0.0;
  double tolerance = 0.0;

  /// The first node, in graph order, whose backward disagrees (Status::Failed); null if none.
  /// Being first, its inputs were produced by nodes that passed: start debugging here.
  const NodeCheck* first_bad() const;
  /// True when every node passed.
  bool ok() const;
  /// A table of every node (index, op, input and output shapes, max relative error, verdict,
  /// file:line), the per-input details of each node that did not pass, and the first bad node.
  std::string report() const;
};

/// Gradchecks every node reachable from `root` on its own: each op's backward against central
/// differences of that op alone, replayed (Node::forward) in Float64 on the node's recorded input
/// values, with everything else the op was called with (labels, factors) held fixed. Nodes are
/// independent: a wrong backward fails its own node only, never the nodes around it.
///
/// The graph must be intact: call it before backward(), or after backward({.retain_graph =
/// true}). Costs two replays of a node per element of its inputs: meant for small inputs.
/// Throws std::invalid_argument when root has no graph, std::logic_error when grad mode is off,
/// std::runtime_error when the graph was released by backward().
GraphCheck check_graph(const Tensor& root, const CheckGraphOptions& options = {});

}  // namespace ag
