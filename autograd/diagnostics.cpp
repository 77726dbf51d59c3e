// check_graph: every node's backward against central differences of that node alone.
//
// For each node, in graph order:
//   1. its own backward is called once with a random output gradient, and the shapes and dtypes
//      of what it returns are compared with its inputs' (a bias gradient summed over the wrong
//      axis fails here, with both shapes named);
//   2. ag::gradcheck runs the node's replay (Node::forward) on Float64 copies of its recorded
//      inputs: the backward of the replayed op against central differences of it;
//   3. if that fails, inputs sitting at a kink (one-sided slopes that differ, as relu's at 0) are
//      moved off it by ±10 eps and gradcheck runs again: the backward must be right there too.
#include "autograd/diagnostics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "autograd/detail/dispatch.h"
#include "autograd/graph.h"
#include "autograd/ops.h"

namespace ag {
namespace {

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string out;
  for (const Shape& s : shapes) out += (out.empty() ? "" : ", ") + shape_str(s);
  return out;
}

// Step 1: the node's backward must return one gradient per input, each shaped like its input.
// Returns what is wrong, or an empty string.
std::string check_gradient_shapes(const Node& node, uint64_t seed) {
  TensorList grads;
  {
    const NoGradGuard no_grad;  // as in backward(): gradients are plain values
    Generator gen(seed);
    node.check_inputs_unchanged();  // as backward() does before running any node
    grads = node.backward(randn(node.shape.vec(), gen, 1.0, node.dtype));
  }
  if (grads.size() != node.inputs.size())
    return fmt::format("backward returned {} gradients for {} inputs", grads.size(),
                       node.inputs.size());
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    const Tensor& x = node.inputs[i];
    if (g.defined() && (g.shape() != x.shape() || g.dtype() != x.dtype()))
      return fmt::format("backward returned a {} {} gradient for input {}, which is {} {}",
                         dtype_name(g.dtype()), shape_str(g.shape()), i, dtype_name(x.dtype()),
                         shape_str(x.shape()));
  }
  return {};
}

// The default atol: the rounding noise of a central difference of f = Σ out · R (R in [0.5, 1.5])
// with a 1000x margin, about 2⁻⁵² · Σ|terms| / eps.
double noise_atol(const ForwardFn& fn, const std::vector<Tensor>& inputs, double eps) {
  const NoGradGuard no_grad;
  std::vector<Tensor> x;
  for (const Tensor& t : inputs) x.push_back(t.detach().to(DType::Float64));
  const Tensor out = fn(x);
  double terms = 0.0;
  for (double v : out.to_vector()) terms += std::abs(v);
  if (out.numel() > 1) terms *= 1.5;
  return 1e3 * std::numeric_limits<double>::epsilon() * std::max(1.0, terms) / eps;
}

// Step 3: Float64 copies of `inputs` in which every element at a kink of `fn` is moved by ±10 eps
// (the sign drawn from `seed`). An element is at a kink when the one-sided slopes of the weighted
// output, (f(x + eps) - f(x)) / eps and (f(x) - f(x - eps)) / eps, differ by more than rounding
// noise (atol) and by more than 0.1% (a smooth f bends them apart by only about eps f''): then
// the central difference averages two different derivatives and matches neither. Moving a smooth
// element that happens to pass this test is harmless: the backward must be right there too.
std::vector<Tensor> move_off_kinks(const ForwardFn& fn, const std::vector<Tensor>& inputs,
                                   const CheckGraphOptions& options, double atol, int64_t& moved) {
  const NoGradGuard no_grad;
  std::vector<Tensor> x;
  for (const Tensor& t : inputs) x.push_back(t.detach().to(DType::Float64));
  Tensor weights;
  auto objective = [&](const Tensor& out) {
    if (out.numel() == 1) return out.item();
    if (!weights.defined()) {
      Generator gen(options.seed);
      weights = rand(out.shape(), gen, 0.5, 1.5, DType::Float64);
    }
    return sum(mul(out, weights)).item();
  };

  const double f0 = objective(fn(x));
  Generator signs(options.seed + 1);
  std::vector<std::pair<double*, double>> moves;  // decided on unmoved inputs, applied after
  for (Tensor& input : x) {
    double* p = input.data<double>();
    for (int64_t i = 0; i < input.numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + options.eps;
      const double right = (objective(fn(x)) - f0) / options.eps;
      p[i] = saved - options.eps;
      const double left = (f0 - objective(fn(x))) / options.eps;
      p[i] = saved;
      if (std::abs(right - left) > atol && relative_error(left, right) > 1e-3)
        moves.emplace_back(&p[i], signs.uniform() < 0.5 ? -10.0 * options.eps : 10.0 * options.eps);
    }
  }
  for (auto [element, step] : moves) *element += step;
  moved = static_cast<int64_t>(moves.size());
  return x;
}

NodeCheck check_node(const Node& node, std::size_t index, const CheckGraphOptions& options) {
  NodeCheck check;
  check.index = index;
  check.op = node.name;
  for (const Tensor& t : node.inputs) check.input_shapes.push_back(t.shape());
  check.output_shape = node.shape.vec();
  check.dtype = node.dtype;
  check.where = node.where;
  check.gradcheck.tolerance = options.tolerance;

  GradcheckOptions gradcheck_options{options.eps, options.tolerance, options.seed};
  const ForwardFn replay = [&node](const std::vector<Tensor>& in) { return node.forward(in); };
  const std::vector<Tensor> inputs = node.inputs.vec();
  try {
    check.message = check_gradient_shapes(node, options.seed);
    if (!check.message.empty()) {
      check.status = NodeCheck::Status::Failed;
      return check;
    }
    // Relative error alone first; then, unless atol was given, with rounding noise allowed for.
    gradcheck_options.atol = check.atol = options.atol.value_or(0.0);
    check.gradcheck = gradcheck(replay, inputs, gradcheck_options);
    if (!check.gradcheck.passed && !options.atol) {
      gradcheck_options.atol = check.atol = noise_atol(replay, inputs, options.eps);
      check.gradcheck = gradcheck(replay, inputs, gradcheck_options);
    }
    if (!check.gradcheck.passed) {
      const std::vector<Tensor> moved =
          move_off_kinks(replay, inputs, options, check.atol, check.kinks);
      if (check.kinks > 0) check.gradcheck = gradcheck(replay, moved, gradcheck_options);
    }
  } catch (const std::exception& e) {
    check.status = NodeCheck::Status::Error;
    check.message = fmt::format("could not check: {}", e.what());
    return check;
  }
  if (!(check.max_rel_error() < options.tolerance)) check.gradcheck.passed = false;  // NaN too
  if (!check.gradcheck.passed) {
    check.status = NodeCheck::Status::Failed;
    check.message = fmt::format(
        "backward disagrees with central differences (max relative error {:.3g}, tolerance "
        "{:.3g}, atol {:.2g})",
        check.max_rel_error(), options.tolerance, check.atol);
  }
  return check;
}

}  // namespace

double NodeCheck::max_rel_error() const {
  double worst = 0.0;
  for (const InputCheck& c : gradcheck.inputs)  // a NaN wins, and stays: x > NaN is false
    if (std::isnan(c.max_rel_error) || c.max_rel_error > worst) worst = c.max_rel_error;
  return worst;
}

std::string NodeCheck::location() const {
  return fmt::format("{}:{}", where.file_name(), where.line());
}

const NodeCheck* GraphCheck::first_bad() const {
  for (const NodeCheck& n : nodes)
    if (n.status == NodeCheck::Status::Failed) return &n;
  return nullptr;
}

bool GraphCheck::ok() const {
  return std::all_of(nodes.begin(), nodes.end(), [](const NodeCheck& n) { return n.passed(); });
}

std::string GraphCheck::report() const {
  std::size_t op_width = 2, shapes_width = 15;
  for (const NodeCheck& n : nodes) {
    op_width = std::max(op_width, n.op.size());
    shapes_width = std::max(
        shapes_width, shapes_str(n.input_shapes).size() + 4 + shape_str(n.output_shape).size());
  }
  std::string out =
      fmt::format("check_graph: {} nodes in graph order (inputs first), eps {:g}, tolerance {:g}\n",
                  nodes.size(), eps, tolerance);
  out += fmt::format("{:>3}  {:<{}}  {:<{}}  {:>9}  {:<6}  {}\n", "#", "op", op_width,
                     "inputs -> output", shapes_width, "rel error", "status", "created at");
  for (const NodeCheck& n : nodes) {
    const char* status = n.status == NodeCheck::Status::Passed   ? "ok"
                         : n.status == NodeCheck::Status::Failed ? "FAILED"
                                                                 : "ERROR";
    const std::string error =
        n.gradcheck.inputs.empty() ? "-" : fmt::format("{:.2g}", n.max_rel_error());
    out += fmt::format("{:>3}  {:<{}}  {:<{}}  {:>9}  {:<6}  {}\n", n.index, n.op, op_width,
                       shapes_str(n.input_shapes) + " -> " + shape_str(n.output_shape),
                       shapes_width, error, status, n.location());
    const std::string indent(7, ' ');
    if (n.passed() && n.atol > 0.0)
      out += fmt::format(
          "{}agrees once elements within rounding noise count as equal (|analytic - numeric| <= "
          "{:.2g}): their gradients are tiny next to the output\n",
          indent, n.atol);
    if (n.passed() && n.kinks == 0) continue;
    if (n.kinks > 0)
      out += fmt::format("{}{} input element(s) at a kink, moved off it by ±{:g} first\n", indent,
                         n.kinks, 10.0 * eps);
    if (!n.message.empty()) out += indent + n.message + '\n';
    if (n.status == NodeCheck::Status::Failed) {
      const std::string details = n.gradcheck.report();
      for (std::size_t start = 0; start < details.size();) {
        const std::size_t end = details.find('\n', start);
        out += indent + details.substr(start, end - start + 1);
        start = end == std::string::npos ? details.size() : end + 1;
      }
    }
  }
  if (const NodeCheck* bad = first_bad())
    out += fmt::format("first bad node: #{} '{}', created at {}\n", bad->index, bad->op,
                       bad->location());
  else if (ok())
    out += fmt::format("all {} nodes agree with central differences\n", nodes.size());
  else
    out += "no node disagrees, but some could not be checked (ERROR above)\n";
  return out;
}

GraphCheck check_graph(const Tensor& root, const CheckGraphOptions& options) {
  if (!root.defined()) throw std::invalid_argument("check_graph: the tensor is undefined");
  if (!root.grad_fn())
    detail::fail(
        "check_graph: the tensor has no graph (it is a leaf: no input required grad, or it was "
        "computed under NoGradGuard)");
  if (!is_grad_enabled())
    throw std::logic_error(
        "check_graph: grad mode is off (a NoGradGuard is alive); gradchecking a node needs it on");

  std::vector<Node*> order = detail::topological_order(root.grad_fn().get());
  std::reverse(order.begin(), order.end());  // consumers first -> inputs first
  for (const Node* node : order)
    if (node->released())
      throw std::runtime_error(fmt::format(
          "check_graph: the graph through '{}' (created at {}:{}) was released by backward(); "
          "call check_graph before backward(), or after backward({{.retain_graph = true}})",
          node->name, node->where.file_name(), node->where.line()));

  GraphCheck result;
  result.eps = options.eps;
  result.tolerance = options.tolerance;
  for (std::size_t i = 0; i < order.size(); ++i)
    result.nodes.push_back(check_node(*order[i], i, options));
  return result;
}

}  // namespace ag
