// TwoLayerNet: two Linear layers' worth of parameters under the exercise's names, composed
// into scores and loss with ops.
#include "nn/two_layer_net.h"

#include <cmath>

namespace nn {

TwoLayerNet::TwoLayerNet(int64_t input, int64_t hidden, int64_t classes, ag::Generator& gen,
                         Init init) {
  // The first layer feeds a ReLU: He scaling, sqrt(2 / input). The output layer feeds the
  // softmax: sqrt(1 / hidden). A fixed init.stddev (CS231n's `std`) is used for both.
  const Linear fc1(input, hidden, gen, init);
  Init out_init = init;
  if (out_init.stddev <= 0.0) out_init.stddev = std::sqrt(1.0 / double(hidden > 0 ? hidden : 1));
  const Linear fc2(hidden, classes, gen, out_init);
  W1 = register_parameter("W1", fc1.weight);
  b1 = register_parameter("b1", fc1.bias);
  W2 = register_parameter("W2", fc2.weight);
  b2 = register_parameter("b2", fc2.bias);
}

// X: [N, input] -> [N, classes]
ag::Tensor TwoLayerNet::scores(const ag::Tensor& X) const {
  const ag::Tensor hidden = ag::relu(ag::add_bias(ag::matmul(X, W1), b1));
  return ag::add_bias(ag::matmul(hidden, W2), b2);
}

// X: [N, input], labels: N -> scalar
ag::Tensor TwoLayerNet::loss(const ag::Tensor& X, std::span<const int32_t> labels,
                             double reg) const {
  const ag::Tensor data_loss = ag::softmax_cross_entropy(scores(X), labels);
  if (reg == 0.0) return data_loss;
  return data_loss + reg * (ag::l2(W1) + ag::l2(W2));
}

// X: [N, input] -> N classes
std::vector<int32_t> TwoLayerNet::predict(const ag::Tensor& X) const {
  const ag::NoGradGuard no_grad;
  return ag::argmax_rows(scores(X));
}

}  // namespace nn
