// The classic mistakes of a hand-derived two-layer backward, each planted in a custom op that
// replaces a built-in op, next to a correct custom version of the same op; and the two-layer loss
// with any of its ops swapped, recording where each op was called. Shared by the diagnosis tests
// (test_diagnostics.cpp) and the hand derivation (test_hand_derivation.cpp).
//
//   loss = softmax_cross_entropy(add_bias(matmul(relu(add_bias(matmul(X, W1), b1)), W2), b2), y)
//          + reg · (l2(W1) + l2(W2))
//
// Every custom op below computes its forward with the built-in op (custom_op runs it with grad
// mode off, so it records nothing) and only its backward by hand: the forward is right, and
// whatever is wrong is in the backward, as in the bug this library was written to find.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "autograd/autograd.h"

namespace ag::test {

/// a: [N, C] -> the row-wise softmax, in double.
inline std::vector<double> softmax_rows(const Tensor& scores) {
  const int64_t N = scores.size(0), C = scores.size(1);
  std::vector<double> p = scores.to_vector();
  for (int64_t n = 0; n < N; ++n) {
    double* row = p.data() + n * C;
    double m = row[0], z = 0.0;
    for (int64_t c = 1; c < C; ++c) m = std::max(m, row[c]);
    for (int64_t c = 0; c < C; ++c) z += row[c] = std::exp(row[c] - m);
    for (int64_t c = 0; c < C; ++c) row[c] /= z;
  }
  return p;
}

// ---- relu: dL/dx = dL/dy · [x > 0] ----

inline Tensor relu_backward(const Tensor& x, const Tensor& g, bool mask) {
  std::vector<double> dx = g.to_vector();
  const std::vector<double> xs = x.to_vector();
  for (std::size_t i = 0; i < dx.size(); ++i)
    if (mask && !(xs[i] > 0.0)) dx[i] = 0.0;
  return tensor(dx, g.shape(), g.dtype());
}

/// relu with a correct hand-written backward.
inline Tensor custom_relu(const Tensor& x, Where where = Where::current()) {
  return custom_op(
      "custom_relu", {x}, [](const std::vector<Tensor>& in) { return relu(in[0]); },
      [](const OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{relu_backward(ctx.inputs[0], g, true)};
      },
      where);
}

/// Mistake: the backward lets the gradient through where x < 0 (no mask): dL/dx = dL/dy.
inline Tensor relu_without_mask(const Tensor& x, Where where = Where::current()) {
  return custom_op(
      "relu_without_mask", {x}, [](const std::vector<Tensor>& in) { return relu(in[0]); },
      [](const OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{relu_backward(ctx.inputs[0], g, false)};
      },
      where);
}

// ---- l2: L = Σ w², dL/dw = 2 w · dL/dL ----

inline Tensor l2_backward(const Tensor& w, const Tensor& g, double factor) {
  std::vector<double> dw = w.to_vector();
  for (double& v : dw) v *= factor * g.item();
  return tensor(dw, w.shape(), w.dtype());
}

/// l2 with a correct hand-written backward.
inline Tensor custom_l2(const Tensor& w, Where where = Where::current()) {
  return custom_op(
      "custom_l2", {w}, [](const std::vector<Tensor>& in) { return l2(in[0]); },
      [](const OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{l2_backward(ctx.inputs[0], g, 2.0)};
      },
      where);
}

/// Mistake: the factor 2 of d(w²)/dw is forgotten: dL/dw = w · dL/dL.
inline Tensor l2_without_factor_2(const Tensor& w, Where where = Where::current()) {
  return custom_op(
      "l2_without_factor_2", {w}, [](const std::vector<Tensor>& in) { return l2(in[0]); },
      [](const OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{l2_backward(ctx.inputs[0], g, 1.0)};
      },
      where);
}

// ---- softmax cross-entropy: dL/ds = (softmax(s) - onehot(y)) / N · dL/dL ----

inline Tensor softmax_cross_entropy_backward(const Tensor& scores, std::span<const int32_t> y,
                                             const Tensor& g, bool divide_by_n) {
  const int64_t N = scores.size(0), C = scores.size(1);
  std::vector<double> ds = softmax_rows(scores);
  for (int64_t n = 0; n < N; ++n) ds[static_cast<std::size_t>(n * C + y[n])] -= 1.0;
  const double k = g.item() / (divide_by_n ? double(N) : 1.0);
  for (double& v : ds) v *= k;
  return tensor(ds, scores.shape(), scores.dtype());
}

/// softmax_cross_entropy with a correct hand-written backward.
inline Tensor custom_softmax_cross_entropy(const Tensor& scores, std::span<const int32_t> labels,
                                           Where where = Where::current()) {
  std::vector<int32_t> y(labels.begin(), labels.end());  // held fixed: captured by value
  return custom_op(
      "custom_softmax_cross_entropy", {scores},
      [y](const std::vector<Tensor>& in) { return softmax_cross_entropy(in[0], y); },
      [y](const OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{softmax_cross_entropy_backward(ctx.inputs[0], y, g, true)};
      },
      where);
}

/// Mistake: the 1/N of the batch mean is forgotten: dL/ds = (softmax(s) - onehot(y)) · dL/dL.
inline Tensor softmax_cross_entropy_without_1_over_n(const Tensor& scores,
                                                     std::span<const int32_t> labels,
                                                     Where where = Where::current()) {
  std::vector<int32_t> y(labels.begin(), labels.end());
  return custom_op(
      "softmax_cross_entropy_without_1_over_n", {scores},
      [y](const std::vector<Tensor>& in) { return softmax_cross_entropy(in[0], y); },
      [y](const OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{softmax_cross_entropy_backward(ctx.inputs[0], y, g, false)};
      },
      where);
}

// ---- add_bias: dL/dx = dL/dy, dL/db = Σ_n dL/dy[n, :] (the column sums) ----

enum class BiasGrad { ColumnSums, RowSums, ColumnMeans };

inline Tensor add_bias_backward_b(const Tensor& g, BiasGrad kind) {
  const int64_t N = g.size(0), H = g.size(1);
  const std::vector<double> gs = g.to_vector();
  if (kind == BiasGrad::RowSums) {  // Σ_h: summed over the wrong axis, shape [N]
    std::vector<double> db(static_cast<std::size_t>(N), 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) db[n] += gs[n * H + h];
    return tensor(db, {N}, g.dtype());
  }
  std::vector<double> db(static_cast<std::size_t>(H), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) db[h] += gs[n * H + h];
  if (kind == BiasGrad::ColumnMeans)  // averaged over the batch instead of summed
    for (double& v : db) v /= double(N);
  return tensor(db, {H}, g.dtype());
}

inline Tensor add_bias_with(const char* name, BiasGrad kind, const Tensor& x, const Tensor& b,
                            Where where) {
  return custom_op(
      name, {x, b}, [](const std::vector<Tensor>& in) { return add_bias(in[0], in[1]); },
      [kind](const OpContext&, const Tensor& g) {
        return std::vector<Tensor>{g, add_bias_backward_b(g, kind)};
      },
      where);
}

/// add_bias with a correct hand-written backward.
inline Tensor custom_add_bias(const Tensor& x, const Tensor& b, Where where = Where::current()) {
  return add_bias_with("custom_add_bias", BiasGrad::ColumnSums, x, b, where);
}

/// Mistake: the bias gradient summed over the wrong axis (row sums, one per sample: shape [N]).
inline Tensor add_bias_grad_row_sums(const Tensor& x, const Tensor& b,
                                     Where where = Where::current()) {
  return add_bias_with("add_bias_grad_row_sums", BiasGrad::RowSums, x, b, where);
}

/// Mistake: the bias gradient averaged over the batch instead of summed (right shape, 1/N off).
inline Tensor add_bias_grad_batch_mean(const Tensor& x, const Tensor& b,
                                       Where where = Where::current()) {
  return add_bias_with("add_bias_grad_batch_mean", BiasGrad::ColumnMeans, x, b, where);
}

// ---- the two-layer loss with swappable ops ----

/// The ops the two-layer loss is built from; the defaults are the built-ins.
struct TwoLayerOps {
  std::function<Tensor(const Tensor&, const Tensor&, Where)> add_bias =
      [](const Tensor& x, const Tensor& b, Where w) { return ag::add_bias(x, b, w); };
  std::function<Tensor(const Tensor&, Where)> relu = [](const Tensor& x, Where w) {
    return ag::relu(x, w);
  };
  std::function<Tensor(const Tensor&, std::span<const int32_t>, Where)> softmax_cross_entropy =
      [](const Tensor& s, std::span<const int32_t> y, Where w) {
        return ag::softmax_cross_entropy(s, y, w);
      };
  std::function<Tensor(const Tensor&, Where)> l2 = [](const Tensor& w, Where at) {
    return ag::l2(w, at);
  };
};

/// The correct custom ops in place of every built-in.
inline TwoLayerOps correct_custom_ops() {
  TwoLayerOps ops;
  ops.add_bias = [](const Tensor& x, const Tensor& b, Where w) { return custom_add_bias(x, b, w); };
  ops.relu = [](const Tensor& x, Where w) { return custom_relu(x, w); };
  ops.softmax_cross_entropy = [](const Tensor& s, std::span<const int32_t> y, Where w) {
    return custom_softmax_cross_entropy(s, y, w);
  };
  ops.l2 = [](const Tensor& w, Where at) { return custom_l2(w, at); };
  return ops;
}

/// X: [N, D] data, y: N labels, parameters W1: [D, H], b1: [H], W2: [H, C], b2: [C].
struct TwoLayerData {
  Tensor X, W1, b1, W2, b2;
  std::vector<int32_t> y;
  double reg = 0.1;
  std::vector<Tensor> parameters() const { return {W1, b1, W2, b2}; }
};

/// N = 4 samples, D = 3 features, H = 5 hidden units, C = 3 classes (N != H, so that a bias
/// gradient summed over the wrong axis has the wrong shape). Fixed seed; the parameters require
/// grad.
inline TwoLayerData two_layer_data(DType dtype = DType::Float64) {
  Generator gen(7);
  TwoLayerData d;
  d.X = randn({4, 3}, gen, 1.0, dtype);
  d.W1 = randn({3, 5}, gen, 0.8, dtype).requires_grad_();
  d.b1 = randn({5}, gen, 0.1, dtype).requires_grad_();
  d.W2 = randn({5, 3}, gen, 0.8, dtype).requires_grad_();
  d.b2 = randn({3}, gen, 0.1, dtype).requires_grad_();
  d.y = {0, 2, 1, 2};
  return d;
}

/// The loss, and where each of its ops was called.
struct TwoLayerLoss {
  Tensor loss;
  Where matmul1, add_bias1, relu, matmul2, add_bias2, softmax_cross_entropy, l2_w1, l2_w2;
};

inline TwoLayerLoss two_layer_loss(const TwoLayerData& d, const TwoLayerOps& ops = {}) {
  TwoLayerLoss out;
  out.matmul1 = Where::current();
  const Tensor z1 = matmul(d.X, d.W1, out.matmul1);
  out.add_bias1 = Where::current();
  const Tensor a1 = ops.add_bias(z1, d.b1, out.add_bias1);
  out.relu = Where::current();
  const Tensor h = ops.relu(a1, out.relu);
  out.matmul2 = Where::current();
  const Tensor z2 = matmul(h, d.W2, out.matmul2);
  out.add_bias2 = Where::current();
  const Tensor scores = ops.add_bias(z2, d.b2, out.add_bias2);
  out.softmax_cross_entropy = Where::current();
  const Tensor data_loss = ops.softmax_cross_entropy(scores, d.y, out.softmax_cross_entropy);
  out.l2_w1 = Where::current();
  const Tensor r1 = ops.l2(d.W1, out.l2_w1);
  out.l2_w2 = Where::current();
  const Tensor r2 = ops.l2(d.W2, out.l2_w2);
  out.loss = data_loss + d.reg * (r1 + r2);
  return out;
}

}  // namespace ag::test
