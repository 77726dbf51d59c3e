// SGD, Adam and the learning-rate schedules.
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>
#include <type_traits>

// The one detail header nn uses: the clone macro both libraries' hot loops share.
#include "autograd/detail/target_clones.h"

namespace nn {
namespace {

// Calls f(p, g, state...) with typed pointers for one parameter and its gradient.
// The parameter is updated in place: its version moves on, so a graph that still needs its old
// value refuses to run backward (Tensor::version).
template <class F>
void for_each_element(ag::Tensor& p, const ag::Tensor& g, F f) {
  if (p.dtype() == ag::DType::Float64)
    f(p.data<double>(), g.data<double>(), p.numel());
  else
    f(p.data<float>(), g.data<float>(), p.numel());
  p.bump_version();
}

// Elements per part when an update is split over the threads (ag::parallel_for).
constexpr int64_t kGrain = int64_t{1} << 15;

// Adam's constants for one step, in the parameter's dtype.
template <class T>
struct AdamStep {
  T b1, b2, eps;
  T step_size;    // lr / (1 - beta1^t)
  T inv_sqrt_c2;  // 1 / sqrt(1 - beta2^t)
};

// Adam's update of elements [begin, end): m, v are the running moments of the gradient g.
template <class T>
AG_INLINE_INTO_CLONES void adam_range(T* p, const T* g, T* m, T* v, int64_t begin, int64_t end,
                                      AdamStep<T> c) {
  for (int64_t i = begin; i < end; ++i) {
    m[i] = c.b1 * m[i] + (T(1) - c.b1) * g[i];
    v[i] = c.b2 * v[i] + (T(1) - c.b2) * g[i] * g[i];
    p[i] -= c.step_size * m[i] / (std::sqrt(v[i]) * c.inv_sqrt_c2 + c.eps);
  }
}
// Built for AVX2 as well (autograd/detail/target_clones.h): a square root and a division per
// element make the update compute-bound, about twice as fast with vectors twice as wide.
AG_ALSO_FOR_AVX2 void adam_update(float* p, const float* g, float* m, float* v, int64_t begin,
                                  int64_t end, AdamStep<float> c) {
  adam_range(p, g, m, v, begin, end, c);
}
AG_ALSO_FOR_AVX2 void adam_update(double* p, const double* g, double* m, double* v, int64_t begin,
                                  int64_t end, AdamStep<double> c) {
  adam_range(p, g, m, v, begin, end, c);
}

void check_lr(double lr) {
  if (!(lr >= 0.0) || !std::isfinite(lr))
    throw std::invalid_argument("optimizer: learning rate must be finite and >= 0, got " +
                                std::to_string(lr));
}

}  // namespace

Optimizer::Optimizer(std::vector<ag::Tensor> parameters, double lr)
    : parameters_(std::move(parameters)), lr_(lr) {
  check_lr(lr);
  for (const ag::Tensor& p : parameters_)
    if (!p.defined() || !p.is_leaf() || !p.requires_grad())
      throw std::invalid_argument("optimizer: every parameter must be a leaf that requires grad");
}

void Optimizer::zero_grad() {
  for (ag::Tensor& p : parameters_) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  check_lr(lr);
  lr_ = lr;
}

SGD::SGD(std::vector<ag::Tensor> parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  if (options.momentum < 0.0) throw std::invalid_argument("SGD: momentum must be >= 0");
  if (options.nesterov && options.momentum <= 0.0)
    throw std::invalid_argument("SGD: Nesterov momentum needs momentum > 0");
  for (const ag::Tensor& p : parameters_) velocity_.push_back(ag::zeros(p.shape(), p.dtype()));
}

void SGD::step() {
  const ag::NoGradGuard no_grad;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const ag::Tensor g = parameters_[i].grad();
    if (!g.defined()) continue;
    if (options_.momentum == 0.0) {
      parameters_[i].add_(g, -lr_);
      continue;
    }
    ag::Tensor& v = velocity_[i];
    for_each_element(parameters_[i], g, [&](auto* p, const auto* grad, int64_t n) {
      using T = std::remove_pointer_t<decltype(p)>;
      T* vel = v.data<T>();
      const T mu = T(options_.momentum), lr = T(lr_);
      const bool nesterov = options_.nesterov;
      ag::parallel_for(n, kGrain, [=](int64_t begin, int64_t end) {  // by value: vectorisable
        for (int64_t k = begin; k < end; ++k) {
          vel[k] = mu * vel[k] + grad[k];
          p[k] -= lr * (nesterov ? grad[k] + mu * vel[k] : vel[k]);
        }
      });
    });
  }
}

Adam::Adam(std::vector<ag::Tensor> parameters, AdamOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  if (!(options.beta1 >= 0.0 && options.beta1 < 1.0 && options.beta2 >= 0.0 && options.beta2 < 1.0))
    throw std::invalid_argument("Adam: betas must be in [0, 1)");
  for (const ag::Tensor& p : parameters_) {
    m_.push_back(ag::zeros(p.shape(), p.dtype()));
    v_.push_back(ag::zeros(p.shape(), p.dtype()));
  }
}

void Adam::step() {
  const ag::NoGradGuard no_grad;
  ++t_;
  const double correction1 = 1.0 - std::pow(options_.beta1, double(t_));
  const double correction2 = 1.0 - std::pow(options_.beta2, double(t_));
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const ag::Tensor g = parameters_[i].grad();
    if (!g.defined()) continue;
    for_each_element(parameters_[i], g, [&](auto* p, const auto* grad, int64_t n) {
      using T = std::remove_pointer_t<decltype(p)>;
      T* m = m_[i].data<T>();
      T* v = v_[i].data<T>();
      const AdamStep<T> c{.b1 = T(options_.beta1),
                          .b2 = T(options_.beta2),
                          .eps = T(options_.eps),
                          .step_size = T(lr_ / correction1),
                          .inv_sqrt_c2 = T(1.0 / std::sqrt(correction2))};
      ag::parallel_for(n, kGrain, [=](int64_t begin, int64_t end) {
        adam_update(p, grad, m, v, begin, end, c);
      });
    });
  }
}

LrSchedule LrSchedule::exponential(double gamma) {
  return {.kind = Kind::Exponential, .gamma = gamma};
}

LrSchedule LrSchedule::step(int64_t step_size, double gamma) {
  if (step_size < 1) throw std::invalid_argument("LrSchedule::step: step_size must be >= 1");
  return {.kind = Kind::Step, .gamma = gamma, .step_size = step_size};
}

LrSchedule LrSchedule::cosine(int64_t total_epochs, double min_lr) {
  if (total_epochs < 1)
    throw std::invalid_argument("LrSchedule::cosine: total_epochs must be >= 1");
  return {.kind = Kind::Cosine, .total_epochs = total_epochs, .min_lr = min_lr};
}

double LrSchedule::at(double base_lr, int64_t epoch) const {
  switch (kind) {
    case Kind::Constant:
      return base_lr;
    case Kind::Exponential:
      return base_lr * std::pow(gamma, double(epoch));
    case Kind::Step:
      return base_lr * std::pow(gamma, double(epoch / step_size));
    case Kind::Cosine: {
      const double progress = std::min(1.0, double(epoch) / double(total_epochs));
      return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
  }
  return base_lr;
}

}  // namespace nn
