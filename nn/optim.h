// Optimisers and learning-rate schedules, as LibTorch spells them: opt.zero_grad(); ...
// loss.backward(); opt.step(). An optimiser only reads grad() and updates values in place.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/autograd.h"

namespace nn {

class Optimizer {
 public:
  Optimizer(std::vector<ag::Tensor> parameters, double lr);
  virtual ~Optimizer() = default;
  /// Zeroes the gradients of every parameter.
  void zero_grad();
  /// One update from the current gradients; parameters without a gradient are skipped.
  virtual void step() = 0;
  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<ag::Tensor>& parameters() const { return parameters_; }

 protected:
  std::vector<ag::Tensor> parameters_;
  double lr_;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
};

/// Stochastic gradient descent with optional (Nesterov) momentum, PyTorch's formulation:
///   v = momentum · v + g;   p -= lr · (nesterov ? g + momentum · v : v)
class SGD : public Optimizer {
 public:
  SGD(std::vector<ag::Tensor> parameters, SGDOptions options);
  void step() override;

 private:
  SGDOptions options_;
  std::vector<ag::Tensor> velocity_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

/// Adam (Kingma & Ba), with bias correction:
///   m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²
///   p -= lr · (m / (1 - β1ᵗ)) / (sqrt(v / (1 - β2ᵗ)) + eps)
class Adam : public Optimizer {
 public:
  Adam(std::vector<ag::Tensor> parameters, AdamOptions options);
  void step() override;

 private:
  AdamOptions options_;
  std::vector<ag::Tensor> m_, v_;
  int64_t t_ = 0;
};

/// The learning rate as a function of the epoch (counted from 0).
struct LrSchedule {
  enum class Kind { Constant, Exponential, Step, Cosine };
  Kind kind = Kind::Constant;
  double gamma = 1.0;        // Exponential, Step: the factor
  int64_t step_size = 1;     // Step: epochs between decays
  int64_t total_epochs = 1;  // Cosine: epochs to go from base_lr down to min_lr
  double min_lr = 0.0;       // Cosine

  /// base_lr · gammaᵉᵖᵒᶜʰ: CS231n's per-epoch learning_rate_decay.
  static LrSchedule exponential(double gamma);
  /// base_lr · gamma^⌊epoch / step_size⌋.
  static LrSchedule step(int64_t step_size, double gamma);
  /// min_lr + (base_lr - min_lr) · (1 + cos(π · epoch / total_epochs)) / 2.
  static LrSchedule cosine(int64_t total_epochs, double min_lr = 0.0);

  double at(double base_lr, int64_t epoch) const;
};

}  // namespace nn
