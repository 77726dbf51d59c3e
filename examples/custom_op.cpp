// custom_op: two ops written by hand, tanh and leaky_relu, each with its own backward, checked
// with ag::gradcheck; then a small model built with them, checked node by node with
// ag::check_graph, and again with a wrong backward planted, which check_graph must name; then
// ag::AnomalyGuard naming the op that produced a NaN. Exits non-zero if a check does not come
// out as it should. With a file name, also writes the model's graph there as Graphviz DOT.
//
//   ./build/release/examples/custom_op [graph.dot]
#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include "autograd/autograd.h"

namespace my {

// y[i] = f(x[i]), computed in double and stored in x's dtype.
template <class F>
ag::Tensor map(const ag::Tensor& x, F f) {
  std::vector<double> values = x.to_vector();
  for (double& v : values) v = f(v);
  return ag::tensor(values, x.shape(), x.dtype());
}

// x: any shape -> same shape. y = tanh(x)
ag::Tensor tanh(const ag::Tensor& x, ag::Where where = ag::Where::current()) {
  return ag::custom_op(
      "tanh", {x},
      [](const std::vector<ag::Tensor>& in) {
        return map(in[0], [](double v) { return std::tanh(v); });
      },
      [](const ag::OpContext& ctx, const ag::Tensor& g) {  // dL/dx = dL/dy · (1 - y²)
        const ag::Tensor slope = map(ctx.output, [](double y) { return 1.0 - y * y; });
        return std::vector<ag::Tensor>{ag::mul(g, slope)};
      },
      where);
}

// x: any shape -> same shape. y = x where x > 0, negative_slope · x elsewhere
ag::Tensor leaky_relu(const ag::Tensor& x, double negative_slope,
                      ag::Where where = ag::Where::current()) {
  return ag::custom_op(
      "leaky_relu", {x},
      [negative_slope](const std::vector<ag::Tensor>& in) {
        return map(in[0], [=](double v) { return v > 0 ? v : negative_slope * v; });
      },
      [negative_slope](const ag::OpContext& ctx, const ag::Tensor& g) {
        // dL/dx = dL/dy · (1 where x > 0, negative_slope elsewhere)
        const ag::Tensor slope =
            map(ctx.inputs[0], [=](double v) { return v > 0 ? 1.0 : negative_slope; });
        return std::vector<ag::Tensor>{ag::mul(g, slope)};
      },
      where);
}

// The same forward with a backward copied from relu: it forgets the negative slope. A planted
// bug, for check_graph to find.
ag::Tensor leaky_relu_copied_backward(const ag::Tensor& x, double negative_slope,
                                      ag::Where where = ag::Where::current()) {
  return ag::custom_op(
      "leaky_relu_copied_backward", {x},
      [negative_slope](const std::vector<ag::Tensor>& in) {
        return map(in[0], [=](double v) { return v > 0 ? v : negative_slope * v; });
      },
      [](const ag::OpContext& ctx, const ag::Tensor& g) {  // wrong: 0, not negative_slope
        const ag::Tensor slope = map(ctx.inputs[0], [](double v) { return v > 0 ? 1.0 : 0.0; });
        return std::vector<ag::Tensor>{ag::mul(g, slope)};
      },
      where);
}

// x: any shape -> same shape. y = log(x), NaN for x < 0
ag::Tensor log(const ag::Tensor& x, ag::Where where = ag::Where::current()) {
  return ag::custom_op(
      "log", {x},
      [](const std::vector<ag::Tensor>& in) {
        return map(in[0], [](double v) { return std::log(v); });
      },
      [](const ag::OpContext& ctx, const ag::Tensor& g) {  // dL/dx = dL/dy / x
        return std::vector<ag::Tensor>{
            ag::mul(g, map(ctx.inputs[0], [](double v) { return 1 / v; }))};
      },
      where);
}

}  // namespace my

int main(int argc, char** argv) {
  bool ok = true;

  // 1. Each op on its own: its backward against central differences, in Float64.
  ag::Generator gen(0);
  const ag::Tensor x = ag::randn({3, 4}, gen, 1.0, ag::DType::Float64);
  const ag::GradcheckResult tanh_check =
      ag::gradcheck([](const std::vector<ag::Tensor>& in) { return my::tanh(in[0]); }, {x});
  const ag::GradcheckResult leaky_check = ag::gradcheck(
      [](const std::vector<ag::Tensor>& in) { return my::leaky_relu(in[0], 0.1); }, {x});
  std::printf("gradcheck tanh:       %s", tanh_check.report().c_str());
  std::printf("gradcheck leaky_relu: %s", leaky_check.report().c_str());
  ok = ok && tanh_check.passed && leaky_check.passed;

  // 2. In a model: check_graph gradchecks every node of the graph on its own.
  const ag::Tensor X = ag::randn({4, 3}, gen);
  const std::vector<int32_t> y = {0, 1, 1, 0};
  ag::Tensor W1 = ag::randn({3, 5}, gen, 0.5).requires_grad_();
  ag::Tensor W2 = ag::randn({5, 2}, gen, 0.5).requires_grad_();
  const ag::Tensor hidden = my::leaky_relu(ag::matmul(X, W1), 0.1);
  const ag::Tensor scores = ag::matmul(my::tanh(hidden), W2);
  const ag::Tensor loss = ag::softmax_cross_entropy(scores, y);
  const ag::GraphCheck graph = ag::check_graph(loss);
  std::printf("\n%s", graph.report().c_str());
  ok = ok && graph.ok();
  if (argc > 1)
    std::ofstream(argv[1]) << ag::to_dot(loss, {.names = {{"X", X}, {"W1", W1}, {"W2", W2}}});
  loss.backward();

  // 3. The same model with the planted bug: check_graph names the node and the line.
  const ag::Tensor bad_hidden = my::leaky_relu_copied_backward(ag::matmul(X, W1), 0.1);
  const ag::Tensor bad_loss = ag::softmax_cross_entropy(ag::matmul(my::tanh(bad_hidden), W2), y);
  const ag::GraphCheck bad = ag::check_graph(bad_loss);
  std::printf("\n%s", bad.report().c_str());
  ok = ok && bad.first_bad() != nullptr && bad.first_bad()->op == "leaky_relu_copied_backward";

  // 4. Anomaly mode: the first NaN or Inf stops the program and names the op that made it.
  try {
    const ag::AnomalyGuard anomaly;
    const ag::Tensor t = ag::tensor({1.0, 0.5, -2.0}, {3}).requires_grad_();
    ag::sum(my::log(t)).backward();
    std::printf("\nno anomaly detected: that is a bug\n");
    ok = false;
  } catch (const ag::AnomalyError& e) {
    std::printf("\n%s\n", e.what());
  }
  return ok ? 0 : 1;
}
