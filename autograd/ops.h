// The ops: each is a free function that computes its forward and, when an input requires grad,
// records its own backward in the graph. One file per op under autograd/ops/.
//
// Every op takes a trailing std::source_location that defaults to the caller's position, so
// diagnostics (check_graph, AnomalyGuard, to_dot) can say where each node was created.
// Errors: std::invalid_argument naming the op and the shapes involved.
#pragma once

#include <cstdint>
#include <source_location>
#include <span>

#include "autograd/graph.h"
#include "autograd/tensor.h"

namespace ag {

using Where = std::source_location;

/// a: [N, D], b: [D, H] -> [N, H]. The matrix product, through CBLAS.
Tensor matmul(const Tensor& a, const Tensor& b, Where where = Where::current());

/// x: [N, H], b: [H] -> [N, H]. Adds b to every row of x.
Tensor add_bias(const Tensor& x, const Tensor& b, Where where = Where::current());

/// x: any shape -> same shape. max(x, 0); the gradient at 0 is 0, as in PyTorch.
Tensor relu(const Tensor& x, Where where = Where::current());

/// scores: [N, C], labels: N classes in [0, C) -> scalar. Mean over the batch of
/// -log softmax(scores)[label]; one fused, numerically stable op.
Tensor softmax_cross_entropy(const Tensor& scores, std::span<const int32_t> labels,
                             Where where = Where::current());

/// w: any shape -> scalar. The sum of squares.
Tensor l2(const Tensor& w, Where where = Where::current());

/// a, b: same shape -> same shape. Element-wise sum.
Tensor add(const Tensor& a, const Tensor& b, Where where = Where::current());
/// a, b: same shape -> same shape. Element-wise difference.
Tensor sub(const Tensor& a, const Tensor& b, Where where = Where::current());
/// a, b: same shape -> same shape. Element-wise product.
Tensor mul(const Tensor& a, const Tensor& b, Where where = Where::current());
/// x: any shape -> same shape. x * factor.
Tensor scale(const Tensor& x, double factor, Where where = Where::current());
/// x: any shape -> scalar. The sum of all elements.
Tensor sum(const Tensor& x, Where where = Where::current());
/// x: any shape -> scalar. The mean of all elements.
Tensor mean(const Tensor& x, Where where = Where::current());

/// x: any shape -> same shape, dtype `dtype`. Differentiable dtype conversion.
Tensor cast(const Tensor& x, DType dtype, Where where = Where::current());

/// scores: [N, C] -> N class indices, the argmax of each row (first on ties). Not differentiable.
std::vector<int32_t> argmax_rows(const Tensor& scores);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator*(const Tensor& t, double factor) {
  return scale(t, factor);
}
inline Tensor operator*(double factor, const Tensor& t) {
  return scale(t, factor);
}
inline Tensor operator-(const Tensor& t) {
  return scale(t, -1.0);
}

}  // namespace ag
