// The two-layer classifier of the CS231n exercise, built only by composing ops:
//
//   scores = relu(X · W1 + b1) · W2 + b2
//   loss   = softmax_cross_entropy(scores, y) + reg · (l2(W1) + l2(W2))
//
// Its gradients come from backward(); nothing here is derived by hand.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nn/module.h"

namespace nn {

class TwoLayerNet : public Module {
 public:
  /// W1: [input, hidden], b1: [hidden], W2: [hidden, classes], b2: [classes]. Weights are
  /// Gaussian: He scaling by default (sqrt(2 / fan_in)); a fixed init.stddev reproduces CS231n's
  /// `std` option (e.g. 1e-4). Biases start at zero.
  TwoLayerNet(int64_t input, int64_t hidden, int64_t classes, ag::Generator& gen, Init init = {});

  /// X: [N, input] -> [N, classes]
  ag::Tensor scores(const ag::Tensor& X) const;
  /// X: [N, input], labels: N classes -> scalar data loss + reg * (l2(W1) + l2(W2)).
  ag::Tensor loss(const ag::Tensor& X, std::span<const int32_t> labels, double reg) const;
  /// X: [N, input] -> N predicted classes (argmax of the scores), computed without a graph.
  std::vector<int32_t> predict(const ag::Tensor& X) const;

  int64_t input_size() const { return W1.size(0); }
  int64_t hidden_size() const { return W1.size(1); }
  int64_t num_classes() const { return W2.size(1); }

  // Registered as "W1", "b1", "W2", "b2", the exercise's names.
  ag::Tensor W1, b1, W2, b2;
};

}  // namespace nn
