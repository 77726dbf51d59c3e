// Anomaly detection: under an AnomalyGuard, the first NaN or Inf an op produces stops the program
// with an exception that names the op, the pass, and where the op was created.
//
//   {
//     ag::AnomalyGuard anomaly;
//     loss(params).backward();  // throws ag::AnomalyError at the first non-finite value
//   }
#pragma once

#include <cstdint>
#include <source_location>
#include <stdexcept>
#include <string>

namespace ag {

/// Whether AnomalyGuard is on for this thread.
bool is_anomaly_enabled();

/// RAII: while alive, every op output recorded in the graph (and every custom_op output, recorded
/// or not) is checked in the forward pass, and every gradient a backward returns is checked in
/// the backward pass; the first NaN or Inf throws AnomalyError. Thread-local and nestable (the
/// previous mode comes back when the guard dies). Costs one scan of each checked tensor while on,
/// a branch when off. Built-in ops that record no node (grad mode off, no input requiring grad)
/// are not checked.
class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool enabled = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool previous_;
};

/// Thrown under AnomalyGuard at the first NaN or Inf. what() reads, for example:
///   anomaly: forward of 'log' (created at model.cpp:42) produced NaN at element 3 of its
///   float64 [2, 3] output
class AnomalyError : public std::runtime_error {
 public:
  enum class Pass { Forward, Backward };

  AnomalyError(const std::string& message, std::string op, Pass pass, std::source_location where,
               int64_t input, int64_t element);

  /// The op's name, as in the graph ("matmul", or a custom op's name).
  const std::string& op() const { return op_; }
  /// Forward: the op's output was non-finite. Backward: a gradient its backward returned was.
  Pass pass() const { return pass_; }
  /// Where the op was called.
  const std::source_location& where() const { return where_; }
  /// Backward: the input whose gradient was non-finite. Forward: -1.
  int64_t input() const { return input_; }
  /// Row-major index of the first non-finite element.
  int64_t element() const { return element_; }

 private:
  std::string op_;
  Pass pass_;
  std::source_location where_;
  int64_t input_;
  int64_t element_;
};

}  // namespace ag
