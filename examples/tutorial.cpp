// tutorial: the two-layer classifier's loss built from ops one step at a time, checked node by
// node with ag::check_graph and as a whole with ag::gradcheck, differentiated with backward(),
// and trained for a few steps of gradient descent. docs/tutorial.md walks through it.
//
//   ./build/release/examples/tutorial
#include <cstdio>
#include <vector>

#include "autograd/autograd.h"

int main() {
  // Step 1: data and parameters. X holds N = 6 samples of D = 3 features, y their classes (C = 3).
  // The parameters are leaves that require grad: backward() fills their grad().
  ag::Generator gen(42);
  const ag::Tensor X = ag::randn({6, 3}, gen);
  const std::vector<int32_t> y = {0, 1, 2, 2, 1, 0};
  ag::Tensor W1 = ag::randn({3, 8}, gen, 0.5).requires_grad_();  // D x H, H = 8 hidden units
  ag::Tensor b1 = ag::zeros({8}).requires_grad_();
  ag::Tensor W2 = ag::randn({8, 3}, gen, 0.5).requires_grad_();  // H x C
  ag::Tensor b2 = ag::zeros({3}).requires_grad_();
  const double reg = 0.01;

  // Step 2: the forward pass, one op at a time. Each op records one node in the graph.
  const ag::Tensor z1 = ag::matmul(X, W1);                            // [6, 3] · [3, 8] -> [6, 8]
  const ag::Tensor a1 = ag::add_bias(z1, b1);                         // + b1 on every row
  const ag::Tensor h = ag::relu(a1);                                  // max(a1, 0)
  const ag::Tensor scores = ag::add_bias(ag::matmul(h, W2), b2);      // [6, 8] · [8, 3] + b2
  const ag::Tensor data_loss = ag::softmax_cross_entropy(scores, y);  // scalar
  const ag::Tensor loss = data_loss + reg * (ag::l2(W1) + ag::l2(W2));
  std::printf("loss = %.6f (data %.6f)\n", loss.item(), data_loss.item());

  // Step 3: check every op of this graph on its own: its backward against central differences.
  const ag::GraphCheck check = ag::check_graph(loss);
  std::printf("%s", check.report().c_str());

  // Step 4: backward() walks the graph from the loss and fills each parameter's grad().
  loss.backward();
  std::printf("dL/dW1 is %s, dL/db2 = [%.6f, %.6f, %.6f]\n",
              ag::shape_str(W1.grad().shape()).c_str(), b2.grad().to_vector()[0],
              b2.grad().to_vector()[1], b2.grad().to_vector()[2]);

  // Step 5: check the whole loss as a function of the parameters (gradcheck runs in Float64).
  const auto two_layer = [&](const std::vector<ag::Tensor>& p) {
    const ag::Tensor X64 = X.to(ag::DType::Float64);
    const ag::Tensor hidden = ag::relu(ag::add_bias(ag::matmul(X64, p[0]), p[1]));
    return ag::softmax_cross_entropy(ag::add_bias(ag::matmul(hidden, p[2]), p[3]), y) +
           reg * (ag::l2(p[0]) + ag::l2(p[2]));
  };
  const ag::GradcheckResult whole = ag::gradcheck(two_layer, {W1, b1, W2, b2});
  std::printf("gradcheck of the whole loss:\n%s", whole.report().c_str());

  // Step 6: a few steps of gradient descent, p -= lr · dL/dp, outside the graph.
  for (int step = 1; step <= 50; ++step) {
    for (ag::Tensor* p : {&W1, &b1, &W2, &b2}) p->zero_grad();
    const ag::Tensor hidden = ag::relu(ag::add_bias(ag::matmul(X, W1), b1));
    const ag::Tensor step_loss =
        ag::softmax_cross_entropy(ag::add_bias(ag::matmul(hidden, W2), b2), y) +
        reg * (ag::l2(W1) + ag::l2(W2));
    step_loss.backward();
    const ag::NoGradGuard no_grad;
    for (ag::Tensor* p : {&W1, &b1, &W2, &b2}) p->add_(p->grad(), -0.5);
    if (step % 10 == 0) std::printf("step %2d: loss %.6f\n", step, step_loss.item());
  }
  return check.ok() && whole.passed ? 0 : 1;
}
