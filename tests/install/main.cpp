// Builds against the installed headers and libraries and checks one gradient.
#include <cmath>
#include <cstdio>

#include "autograd/autograd.h"
#include "nn/two_layer_net.h"

int main() {
  ag::Tensor w = ag::tensor({1.0, -2.0, 3.0}, {3}, ag::DType::Float64).requires_grad_();
  ag::l2(w).backward();
  const std::vector<double> g = w.grad().to_vector();  // d/dw sum(w^2) = 2w
  if (g != std::vector<double>{2.0, -4.0, 6.0}) return 1;
  ag::Generator gen(0);
  const nn::TwoLayerNet net(4, 8, 3, gen);
  const std::vector<int32_t> y = {0, 1, 2};
  const double loss = net.loss(ag::randn({3, 4}, gen), y, 0.1).item();
  std::printf("installed package works: loss %.4f\n", loss);
  return std::isfinite(loss) ? 0 : 1;
}
