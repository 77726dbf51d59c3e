// gradcheck: analytic gradients from one backward() against central differences.
#include "autograd/gradcheck.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "autograd/detail/dispatch.h"
#include "autograd/graph.h"
#include "autograd/ops.h"

namespace ag {

double relative_error(double a, double b) {
  return std::abs(a - b) / std::max(1e-8, std::abs(a) + std::abs(b));
}

double GradcheckResult::max_rel_error() const {
  double worst = 0.0;
  for (const InputCheck& c : inputs) worst = std::max(worst, c.max_rel_error);
  return worst;
}

std::string GradcheckResult::report() const {
  std::string out;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const InputCheck& c = inputs[i];
    out += fmt::format("input {} {}: max relative error {:.3g}{}", i, shape_str(c.shape),
                       c.max_rel_error, c.max_rel_error < tolerance ? "" : " (FAILED)");
    if (c.worst_index >= 0)
      out += fmt::format(" at element {} (analytic {:.17g}, numeric {:.17g})", c.worst_index,
                         c.analytic, c.numeric);
    out += '\n';
  }
  return out;
}

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  std::vector<Tensor> x;
  for (const Tensor& t : inputs) {
    if (!t.defined()) throw std::invalid_argument("gradcheck: an input tensor is undefined");
    Tensor leaf = t.detach().to(DType::Float64);  // a fresh copy: the caller's tensor is untouched
    leaf.requires_grad_();
    x.push_back(leaf);
  }

  // A scalar objective: the output itself, or sum(out * R) for a fixed random R.
  Tensor weights;
  auto objective = [&](const Tensor& out) {
    if (out.dtype() != DType::Float64)
      detail::fail(
          "gradcheck: the function returned {} for Float64 inputs; build every tensor "
          "inside it with the inputs' dtype",
          dtype_name(out.dtype()));
    if (out.numel() == 1 && out.dim() == 0) return out;
    if (!weights.defined()) {
      Generator gen(options.seed);
      weights = rand(out.shape(), gen, 0.5, 1.5, DType::Float64);
    }
    return sum(mul(out, weights));
  };

  objective(fn(x)).backward();

  GradcheckResult result;
  result.tolerance = options.tolerance;
  NoGradGuard no_grad;
  for (Tensor& input : x) {
    InputCheck check;
    check.shape = input.shape();
    const Tensor analytic = input.grad();
    double* p = input.data<double>();
    for (int64_t i = 0; i < input.numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + options.eps;
      const double plus = objective(fn(x)).item();
      p[i] = saved - options.eps;
      const double minus = objective(fn(x)).item();
      p[i] = saved;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      const double a = analytic.defined() ? analytic.data<double>()[i] : 0.0;
      const double err = std::abs(a - numeric) <= options.atol ? 0.0 : relative_error(a, numeric);
      // A NaN error (a NaN gradient) is the worst of all: it must win and then stay.
      if (check.worst_index < 0 || err > check.max_rel_error ||
          (std::isnan(err) && !std::isnan(check.max_rel_error))) {
        check.max_rel_error = err;
        check.worst_index = i;
        check.analytic = a;
        check.numeric = numeric;
      }
    }
    if (!(check.max_rel_error < options.tolerance)) result.passed = false;  // NaN fails
    result.inputs.push_back(check);
  }
  return result;
}

}  // namespace ag
