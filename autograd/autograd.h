// The umbrella header: everything a user of the autograd core needs, in namespace ag.
//
//   data -> Tensor (tensor.h) -> ops (ops.h) -> graph (graph.h) -> backward() -> grad()
//   gradcheck (gradcheck.h) compares any function's backward with central differences.
//   custom_op (function.h) defines your own op with its own backward; check_graph
//   (diagnostics.h) gradchecks every node of a graph and names the first wrong backward;
//   AnomalyGuard (anomaly.h) stops at the first NaN/Inf; to_dot (dot.h) draws the graph.
#pragma once

#include "autograd/allocator.h"
#include "autograd/anomaly.h"
#include "autograd/diagnostics.h"
#include "autograd/dot.h"
#include "autograd/function.h"
#include "autograd/gradcheck.h"
#include "autograd/graph.h"
#include "autograd/ops.h"
#include "autograd/tensor.h"
#include "autograd/threads.h"
