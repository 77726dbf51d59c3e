// softmax_cross_entropy: softmax and the negative log-likelihood fused into one op, so it stays
// finite for any logits (the row maximum is subtracted before exp) and its backward is one line.
//
//   forward:  p[n, c] = exp(s[n, c] - m_n) / Σ_k exp(s[n, k] - m_n),  m_n = max_k s[n, k]
//             L = (1/N) Σ_n -log p[n, y_n]
//               = (1/N) Σ_n (m_n + log Σ_k exp(s[n, k] - m_n) - s[n, y_n])
//   backward: dL/ds[n, c] = (p[n, c] - [c == y_n]) / N · dL/dL_out
#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/detail/dispatch.h"
#include "autograd/ops.h"

namespace ag {

// scores: [N, C], labels: N classes in [0, C) -> scalar
Tensor softmax_cross_entropy(const Tensor& scores, std::span<const int32_t> labels, Where where) {
  detail::check_defined("softmax_cross_entropy", {&scores});
  if (scores.dim() != 2)
    detail::fail("softmax_cross_entropy: scores must be [N, C], got shape {}",
                 shape_str(scores.shape()));
  const int64_t N = scores.size(0), C = scores.size(1);
  if (N == 0)
    detail::fail("softmax_cross_entropy: empty batch (scores of shape {})",
                 shape_str(scores.shape()));
  if (C == 0)
    detail::fail("softmax_cross_entropy: no classes (scores of shape {})",
                 shape_str(scores.shape()));
  if (static_cast<int64_t>(labels.size()) != N)
    detail::fail("softmax_cross_entropy: {} labels for scores of shape {} (expects one per row)",
                 labels.size(), shape_str(scores.shape()));
  for (std::size_t n = 0; n < labels.size(); ++n)
    if (labels[n] < 0 || labels[n] >= C)
      detail::fail(
          "softmax_cross_entropy: label {} at row {} is outside [0, {}) for scores of shape {}",
          labels[n], n, C, shape_str(scores.shape()));

  Tensor loss = Tensor::empty({}, scores.dtype());
  Tensor probs = Tensor::empty({N, C}, scores.dtype());  // saved for backward
  detail::dispatch(scores.dtype(), [&]<class T>() {
    const T* s = scores.data<T>();
    T* p = probs.data<T>();
    double total = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = s + n * C;
      T* prow = p + n * C;
      const T m = *std::max_element(row, row + C);
      T z = 0;
      for (int64_t c = 0; c < C; ++c) z += prow[c] = std::exp(row[c] - m);
      for (int64_t c = 0; c < C; ++c) prow[c] /= z;
      // m - s[y] first: adding log z to a huge m before subtracting s[y] would lose log z.
      total += double(std::log(z)) + (double(m) - double(row[labels[n]]));
    }
    loss.data<T>()[0] = static_cast<T>(total / double(N));
  });

  if (detail::needs_grad({&scores})) {
    // The labels, kept for backward and replay: the array from the storage cache and its
    // reference count from the small-object pool, so that no step mallocs for them (a batch's
    // labels outgrow the pool's 512-byte objects from 120 rows on).
    const std::size_t bytes = labels.size() * sizeof(int32_t);
    std::shared_ptr<int32_t[]> y(static_cast<int32_t*>(detail::allocate(bytes)),
                                 detail::Deallocate{bytes},
                                 detail::SmallObjectAllocator<int32_t>{});
    std::copy(labels.begin(), labels.end(), y.get());
    detail::record(
        loss, "softmax_cross_entropy", {scores},
        [probs = std::move(probs), y, N, C](const Tensor& g) {  // dL/ds = (p - onehot(y)) / N
          Tensor ds = Tensor::empty({N, C}, probs.dtype());
          detail::dispatch(probs.dtype(), [&]<class T>() {
            const T* p = probs.data<T>();
            T* d = ds.data<T>();
            const T k = g.data<T>()[0] / static_cast<T>(N);
            for (int64_t n = 0; n < N; ++n) {
              for (int64_t c = 0; c < C; ++c) d[n * C + c] = p[n * C + c] * k;
              d[n * C + y[n]] -= k;
            }
          });
          return ds;
        },
        [y, N](const std::vector<Tensor>& in) {
          return softmax_cross_entropy(in[0], std::span<const int32_t>(y.get(), std::size_t(N)));
        },
        where);
  }
  return loss;
}

}  // namespace ag
