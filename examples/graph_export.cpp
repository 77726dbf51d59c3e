// graph_export: the two-layer loss as a Graphviz DOT graph: one box per op (name, output shape,
// dtype, where it was created), the parameters with their value and gradient norms, the data.
// Writes to the file given, or to stdout:
//
//   ./build/release/examples/graph_export | dot -Tsvg -o docs/images/two_layer_graph.svg
#include <fstream>
#include <iostream>
#include <vector>

#include "autograd/autograd.h"

int main(int argc, char** argv) {
  ag::Generator gen(0);
  const ag::Tensor X = ag::randn({4, 3}, gen);  // 4 samples, 3 features
  const std::vector<int32_t> y = {0, 1, 1, 0};  // 2 classes
  ag::Tensor W1 = ag::randn({3, 5}, gen, 0.5).requires_grad_();
  ag::Tensor b1 = ag::zeros({5}).requires_grad_();
  ag::Tensor W2 = ag::randn({5, 2}, gen, 0.5).requires_grad_();
  ag::Tensor b2 = ag::zeros({2}).requires_grad_();

  const ag::Tensor hidden = ag::relu(ag::add_bias(ag::matmul(X, W1), b1));
  const ag::Tensor scores = ag::add_bias(ag::matmul(hidden, W2), b2);
  const ag::Tensor loss = ag::softmax_cross_entropy(scores, y) + 0.05 * (ag::l2(W1) + ag::l2(W2));
  loss.backward({.retain_graph = true});  // keep the values for their norms

  const std::string dot =
      ag::to_dot(loss, {.names = {{"X", X}, {"W1", W1}, {"b1", b1}, {"W2", W2}, {"b2", b2}},
                        .value_norms = true,
                        .grad_norms = true});
  if (argc > 1)
    std::ofstream(argv[1]) << dot;
  else
    std::cout << dot;
  return 0;
}
