// Gradient checking as a library feature: compare every input's analytic gradient (from
// backward()) with central differences, in Float64. Run it on your own ops and models.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace ag {

struct GradcheckOptions {
  /// Step of the central difference (f(x + eps) - f(x - eps)) / (2 eps).
  double eps = 1e-6;
  /// passed is true when every input's max relative error is below this.
  double tolerance = 1e-7;
  /// Seed of the fixed random weighting R used to reduce a non-scalar output to sum(out * R).
  uint64_t seed = 0;
  /// An element also passes when |analytic - numeric| <= atol, whatever its relative error. A
  /// central difference carries an absolute rounding error of about 1e-16 |f| / eps, which is a
  /// large relative error for an element whose gradient is tiny next to the others (a softmax
  /// probability near 0). 0: judge by relative error alone.
  double atol = 0.0;
};

/// The result for one input.
struct InputCheck {
  Shape shape;
  /// max over elements of |a - n| / max(1e-8, |a| + |n|), a analytic and n numeric.
  double max_rel_error = 0.0;
  /// Row-major index of the worst element (-1 for an empty input) and its two values.
  int64_t worst_index = -1;
  double analytic = 0.0;
  double numeric = 0.0;
};

struct GradcheckResult {
  std::vector<InputCheck> inputs;  // one per input, in order
  bool passed = true;
  double tolerance = 0.0;
  /// The largest max_rel_error over all inputs.
  double max_rel_error() const;
  /// One line per input: shape, error, worst element and both values.
  std::string report() const;
};

/// The function under test: inputs -> output (any shape; a non-scalar output is reduced with a
/// fixed random weighting so that a permuted gradient cannot pass).
using GradcheckFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;

/// Converts `inputs` to Float64 leaves that require grad, runs fn and backward() once for the
/// analytic gradients, then perturbs every element of every input by ±eps for the numeric ones.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

/// The relative error gradcheck uses: |a - b| / max(1e-8, |a| + |b|).
double relative_error(double a, double b);

}  // namespace ag
