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

/// The left (or only) operand of an operator, with the place where the expression was written.
/// An operator cannot take a defaulted std::source_location of its own, but the default argument
/// of this converting constructor is evaluated where the conversion happens: at the `a + b` in
/// the caller's code. So nodes made by operators name the caller's line, not this header.
struct Operand {
  Operand(const Tensor& t, Where w = Where::current()) : tensor(t), where(w) {}  // NOLINT: implicit
  const Tensor& tensor;
  Where where;
};

inline Tensor operator+(Operand a, const Tensor& b) {
  return add(a.tensor, b, a.where);
}
inline Tensor operator-(Operand a, const Tensor& b) {
  return sub(a.tensor, b, a.where);
}
inline Tensor operator*(Operand a, const Tensor& b) {
  return mul(a.tensor, b, a.where);
}
inline Tensor operator*(Operand t, double factor) {
  return scale(t.tensor, factor, t.where);
}
inline Tensor operator*(double factor, Operand t) {
  return scale(t.tensor, factor, t.where);
}
inline Tensor operator-(Operand t) {
  return scale(t.tensor, -1.0, t.where);
}

}  // namespace ag
