// Module bookkeeping and the Linear layer.
#include "nn/module.h"

#include <cmath>
#include <stdexcept>

namespace nn {

std::vector<ag::Tensor> Module::parameters() const {
  std::vector<ag::Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

NamedTensors Module::named_parameters() const {
  NamedTensors out = parameters_;
  for (const auto& [prefix, child] : children_)
    for (auto& [name, tensor] : child->named_parameters())
      out.emplace_back(prefix + "." + name, tensor);
  return out;
}

void Module::zero_grad() {  // every training step: walk the parameters without copying names
  for (auto& [name, tensor] : parameters_) tensor.zero_grad();
  for (auto& [name, child] : children_) child->zero_grad();
}

ag::Tensor& Module::register_parameter(std::string name, ag::Tensor value) {
  for (const auto& [existing, tensor] : parameters_)
    if (existing == name)
      throw std::invalid_argument("register_parameter: '" + name + "' is already registered");
  value.requires_grad_();
  parameters_.emplace_back(std::move(name), std::move(value));
  return parameters_.back().second;
}

Linear::Linear(int64_t in_features, int64_t out_features, ag::Generator& gen, Init init) {
  if (in_features < 1 || out_features < 1)
    throw std::invalid_argument(
        "Linear: features must be positive, got in = " + std::to_string(in_features) +
        ", out = " + std::to_string(out_features));
  const double stddev = init.stddev > 0.0 ? init.stddev : std::sqrt(2.0 / double(in_features));
  weight =
      register_parameter("weight", ag::randn({in_features, out_features}, gen, stddev, init.dtype));
  bias = register_parameter("bias", ag::zeros({out_features}, init.dtype));
}

// x: [N, in] -> [N, out]
ag::Tensor Linear::forward(const ag::Tensor& x) const {
  return ag::add_bias(ag::matmul(x, weight), bias);
}

}  // namespace nn
