// The umbrella header: everything a user of the autograd core needs, in namespace ag.
//
//   data -> Tensor (tensor.h) -> ops (ops.h) -> graph (graph.h) -> backward() -> grad()
//   gradcheck (gradcheck.h) compares any function's backward with central differences.
#pragma once

#include "autograd/allocator.h"
#include "autograd/gradcheck.h"
#include "autograd/graph.h"
#include "autograd/ops.h"
#include "autograd/tensor.h"
#include "autograd/threads.h"
