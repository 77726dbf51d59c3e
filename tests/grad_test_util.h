// Helpers shared by the autograd core tests: random inputs, gradcheck as a gtest assertion that
// prints gradcheck's report on failure, element-wise comparison that names the worst element,
// catching an exception to inspect its message, and a scoped thread count.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/autograd.h"

namespace ag::test {

/// Standard normal values of the given shape, reproducible from `seed`.
/// y = f(x) element by element, computed in double and stored in x's dtype: the forward and
/// backward of small element-wise custom ops in the tests.
template <class F>
Tensor map(const Tensor& x, F f) {
  std::vector<double> v = x.to_vector();
  for (double& e : v) e = f(e);
  return ag::tensor(v, x.shape(), x.dtype());
}

inline Tensor random_normal(const Shape& shape, uint64_t seed, DType dtype = DType::Float64) {
  Generator gen(seed);
  return randn(shape, gen, 1.0, dtype);
}

/// Values with 0.1 <= |x| < 1.1 and a random sign: safely away from relu's kink at 0, so that a
/// central difference with eps << 0.1 never straddles it.
inline Tensor away_from_zero(const Shape& shape, uint64_t seed, DType dtype = DType::Float64) {
  Generator gen(seed);
  std::vector<double> values(static_cast<std::size_t>(shape_numel(shape)));
  for (double& v : values) {
    const double magnitude = 0.1 + gen.uniform();
    v = gen.uniform() < 0.5 ? -magnitude : magnitude;
  }
  return tensor(values, shape, dtype);
}

/// Random class labels in [0, classes).
inline std::vector<int32_t> random_labels(int64_t count, int64_t classes, uint64_t seed) {
  Generator gen(seed);
  std::vector<int32_t> labels(static_cast<std::size_t>(count));
  for (int32_t& label : labels)
    label = static_cast<int32_t>(gen.below(static_cast<uint64_t>(classes)));
  return labels;
}

/// Runs ag::gradcheck; on failure the assertion message is gradcheck's report (per input: the
/// worst element's index, its analytic and numeric values, and the relative error).
inline ::testing::AssertionResult gradcheck_passes(const GradcheckFn& fn,
                                                   const std::vector<Tensor>& inputs,
                                                   const GradcheckOptions& options = {}) {
  const GradcheckResult result = gradcheck(fn, inputs, options);
  if (result.passed && result.inputs.size() == inputs.size()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "gradcheck (eps " << options.eps << ", tolerance " << options.tolerance << ") failed:\n"
         << result.report();
}

/// True when |actual[i] - expected[i]| <= rtol * max(|expected[i]|, floor) for every i. The floor
/// keeps elements that are tiny next to the rest of the tensor from demanding an impossible
/// relative precision; pass 0 for a pure relative comparison. On failure, names the worst element,
/// its index and both values.
inline ::testing::AssertionResult all_close(const std::vector<double>& actual,
                                            const std::vector<double>& expected, double rtol,
                                            double floor = 0.0) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size() << " expected";
  double worst_ratio = 0.0;
  std::size_t worst = 0;
  bool ok = true;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double allowed = rtol * std::max(std::abs(expected[i]), floor);
    const double diff = std::abs(actual[i] - expected[i]);
    if (!(diff <= allowed)) ok = false;  // also catches NaN
    const double ratio = allowed > 0.0 ? diff / allowed : (diff > 0.0 ? INFINITY : 0.0);
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "worst element " << worst << ": actual " << ::testing::PrintToString(actual[worst])
         << ", expected " << ::testing::PrintToString(expected[worst]) << " (difference "
         << std::abs(actual[worst] - expected[worst]) << ", allowed rtol " << rtol << " * max(|e|, "
         << floor << "))";
}

/// The largest |x| in `values` (0 for none).
inline double max_abs(const std::vector<double>& values) {
  double m = 0.0;
  for (double v : values) m = std::max(m, std::abs(v));
  return m;
}

/// The message of the E that f() throws, or nullopt when f() returns normally. Any other
/// exception propagates, which gtest reports as a failure of the test.
template <class E, class F>
std::optional<std::string> thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

/// Succeeds when `text` contains `part`; the failure shows the whole text.
inline ::testing::AssertionResult contains(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

/// Sets the thread count for a test's scope (work split over two threads is then split even on a
/// one-core runner), and restores the one before.
struct ThreadCount {
  explicit ThreadCount(int n) : previous(ag::get_num_threads()) { ag::set_num_threads(n); }
  ~ThreadCount() { ag::set_num_threads(previous); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
  int previous;
};

}  // namespace ag::test
