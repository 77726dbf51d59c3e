// Modules: named collections of parameters, as in LibTorch's torch::nn::Module, and Linear, the
// affine layer composed of matmul + add_bias. Nothing here computes a gradient by hand.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"

namespace nn {

using NamedTensors = std::vector<std::pair<std::string, ag::Tensor>>;

class Module {
 public:
  virtual ~Module() = default;

  /// Every parameter, this module's first, then each child's, in registration order.
  std::vector<ag::Tensor> parameters() const;
  /// The same, with names: a child's parameters are prefixed with "<child name>.".
  NamedTensors named_parameters() const;
  /// Zeroes every parameter's accumulated gradient.
  void zero_grad();

 protected:
  /// Adds `value` as a parameter (a leaf that requires grad) and returns the stored handle.
  ag::Tensor& register_parameter(std::string name, ag::Tensor value);
  /// Adds a child module whose parameters become part of this one's.
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> child) {
    children_.emplace_back(std::move(name), child);
    return child;
  }

 private:
  NamedTensors parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

/// How to draw initial weights.
struct Init {
  /// Standard deviation of the Gaussian weights; 0 selects He initialisation, sqrt(2 / in),
  /// the right scale for a layer followed by ReLU. CS231n's toy model uses a fixed std = 1e-4.
  double stddev = 0.0;
  ag::DType dtype = ag::DType::Float32;
};

/// y = x · W + b, with W: [in, out] and b: [out] (parameters "weight" and "bias").
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, ag::Generator& gen, Init init = {});
  /// x: [N, in] -> [N, out]
  ag::Tensor forward(const ag::Tensor& x) const;

  ag::Tensor weight;  // [in, out]
  ag::Tensor bias;    // [out]
};

}  // namespace nn
