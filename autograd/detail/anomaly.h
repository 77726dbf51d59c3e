// The hooks anomaly detection puts into the engine (graph.cpp) and custom_op. Not public API.
#pragma once

#include <cstddef>
#include <source_location>

#include "autograd/graph.h"
#include "autograd/tensor.h"

namespace ag::detail {

/// True while an AnomalyGuard is alive on this thread. constinit: reading it is a plain TLS load,
/// with no initialisation wrapper, so the hooks cost one branch when anomaly mode is off.
extern constinit thread_local bool anomaly_enabled;

/// Throws AnomalyError (pass Forward) when `output` of op `op` holds a NaN or Inf.
void check_forward_finite(const Tensor& output, const char* op, std::source_location where);

/// Throws AnomalyError (pass Backward) when `grad`, the gradient node's backward returned for
/// input `input`, holds a NaN or Inf.
void check_backward_finite(const Node& node, std::size_t input, const Tensor& grad);

}  // namespace ag::detail
