// Graph export: the graph behind a tensor as Graphviz DOT, to see what backward() will walk.
//
//   std::ofstream("loss.dot") << ag::to_dot(loss, {.names = net.named_parameters()});
//   // then: dot -Tsvg loss.dot -o loss.svg
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

struct DotOptions {
  /// Names for tensors (e.g. a module's named_parameters()): a leaf or constant input whose
  /// storage is one of these is labelled with its name.
  std::vector<std::pair<std::string, Tensor>> names = {};
  /// Show where each op was created (file name and line).
  bool where = true;
  /// Show the L2 norm of each value the graph holds: every leaf, every op output that is an input
  /// of another node (or the root), every constant input. Values of a released graph are gone.
  bool value_norms = false;
  /// Show the L2 norm of each leaf's accumulated grad() (op outputs keep no gradient).
  bool grad_norms = false;
};

/// The graph behind `root` in Graphviz DOT: one box per op (name, output shape, dtype, and
/// where it was created), one ellipse per leaf that requires grad (shape, dtype, "requires grad")
/// and one dashed ellipse per constant input (a tensor that requires no grad, e.g. the data),
/// and one edge from each input to the op consuming it, so an op with k inputs has k incoming
/// edges (a tensor used twice by one op gets two). The root is drawn with a double border.
/// Nodes appear in graph order (inputs before consumers). Works on released graphs too (without
/// the values they dropped).
std::string to_dot(const Tensor& root, const DotOptions& options = {});

}  // namespace ag
