// Anomaly detection: the thread-local switch, the guard, and the two finiteness checks the engine
// calls from detail::record (forward) and detail::run_backward (backward).
#include "autograd/anomaly.h"

#include <fmt/format.h>

#include <cmath>
#include <utility>

#include "autograd/detail/anomaly.h"
#include "autograd/detail/dispatch.h"

namespace ag {

namespace detail {

constinit thread_local bool anomaly_enabled = false;

namespace {

// Row-major index of the first NaN or Inf in t, or -1.
int64_t first_non_finite(const Tensor& t) {
  return dispatch(t.dtype(), [&]<class T>() -> int64_t {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(p[i])) return i;
    return -1;
  });
}

const char* kind(double v) {
  return std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
}

}  // namespace

void check_forward_finite(const Tensor& output, const char* op, std::source_location where) {
  const int64_t i = first_non_finite(output);
  if (i < 0) return;
  const double v = output.to_vector()[static_cast<std::size_t>(i)];
  throw AnomalyError(
      fmt::format("anomaly: forward of '{}' (created at {}:{}) produced {} at element {} of its "
                  "{} {} output",
                  op, where.file_name(), where.line(), kind(v), i, dtype_name(output.dtype()),
                  shape_str(output.shape())),
      op, AnomalyError::Pass::Forward, where, -1, i);
}

void check_backward_finite(const Node& node, std::size_t input, const Tensor& grad) {
  const int64_t i = first_non_finite(grad);
  if (i < 0) return;
  const double v = grad.to_vector()[static_cast<std::size_t>(i)];
  throw AnomalyError(
      fmt::format("anomaly: backward of '{}' (created at {}:{}) returned {} at element {} of the "
                  "gradient for input {} ({} {})",
                  node.name, node.where.file_name(), node.where.line(), kind(v), i, input,
                  dtype_name(grad.dtype()), shape_str(grad.shape())),
      node.name, AnomalyError::Pass::Backward, node.where, static_cast<int64_t>(input), i);
}

}  // namespace detail

bool is_anomaly_enabled() {
  return detail::anomaly_enabled;
}

AnomalyGuard::AnomalyGuard(bool enabled) : previous_(detail::anomaly_enabled) {
  detail::anomaly_enabled = enabled;
}
AnomalyGuard::~AnomalyGuard() {
  detail::anomaly_enabled = previous_;
}

AnomalyError::AnomalyError(const std::string& message, std::string op, Pass pass,
                           std::source_location where, int64_t input, int64_t element)
    : std::runtime_error(message),
      op_(std::move(op)),
      pass_(pass),
      where_(where),
      input_(input),
      element_(element) {}

}  // namespace ag
