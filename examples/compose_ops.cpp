// compose_ops: a two-layer loss built from ops, its gradients from backward(), and a gradcheck.
//
//   ./build/release/examples/compose_ops
#include <cstdio>
#include <vector>

#include "autograd/autograd.h"

int main() {
  ag::Generator gen(0);
  const ag::Tensor X = ag::randn({4, 3}, gen);  // 4 samples, 3 features
  const std::vector<int32_t> y = {0, 1, 1, 0};  // 2 classes
  ag::Tensor W1 = ag::randn({3, 5}, gen, 0.5).requires_grad_();
  ag::Tensor b1 = ag::zeros({5}).requires_grad_();
  ag::Tensor W2 = ag::randn({5, 2}, gen, 0.5).requires_grad_();
  ag::Tensor b2 = ag::zeros({2}).requires_grad_();

  // affine -> ReLU -> affine -> softmax cross-entropy, plus L2 on the weights
  const ag::Tensor hidden = ag::relu(ag::add_bias(ag::matmul(X, W1), b1));
  const ag::Tensor scores = ag::add_bias(ag::matmul(hidden, W2), b2);
  const ag::Tensor loss = ag::softmax_cross_entropy(scores, y) + 0.05 * (ag::l2(W1) + ag::l2(W2));
  loss.backward();

  std::printf("loss = %.6f\n", loss.item());
  const std::vector<double> db2 = b2.grad().to_vector();
  std::printf("dloss/db2 = [%.6f, %.6f]\n", db2[0], db2[1]);

  // The same loss as a function of the parameters, checked against central differences.
  const auto two_layer = [&](const std::vector<ag::Tensor>& p) {
    const ag::Tensor Xd = X.to(ag::DType::Float64);
    const ag::Tensor h = ag::relu(ag::add_bias(ag::matmul(Xd, p[0]), p[1]));
    return ag::softmax_cross_entropy(ag::add_bias(ag::matmul(h, p[2]), p[3]), y) +
           0.05 * (ag::l2(p[0]) + ag::l2(p[2]));
  };
  const ag::GradcheckResult check = ag::gradcheck(two_layer, {W1, b1, W2, b2});
  std::printf("gradcheck:\n%s", check.report().c_str());
  return check.passed ? 0 : 1;
}
