// add_bias: adds a bias vector to every row.
//
//   forward:  Y[n, h] = X[n, h] + b[h]    X: [N, H], b: [H] -> Y: [N, H]
//   backward: dL/dX = dL/dY               [N, H]
//             dL/db = Σ_n dL/dY[n, :]      the column sums, [H]
#include <algorithm>

#include "autograd/detail/dispatch.h"
#include "autograd/detail/parallel.h"
#include "autograd/ops.h"

namespace ag {

// x: [N, H], b: [H] -> [N, H]
Tensor add_bias(const Tensor& x, const Tensor& b, Where where) {
  detail::check_defined("add_bias", {&x, &b});
  if (x.dim() != 2 || b.dim() != 1 || x.size(1) != b.size(0))
    detail::fail("add_bias: shapes {} and {} do not match (expects x: [N, H] and b: [H])",
                 shape_str(x.shape()), shape_str(b.shape()));
  detail::check_same_dtype("add_bias", x, b);
  const int64_t N = x.size(0), H = x.size(1);

  Tensor y = Tensor::empty({N, H}, x.dtype());
  detail::dispatch(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    const T* pb = b.data<T>();
    T* py = y.data<T>();
    const int64_t rows_per_part = detail::kElementwiseGrain / std::max<int64_t>(H, 1) + 1;
    detail::parallel_for(N, rows_per_part, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t h = 0; h < H; ++h) py[n * H + h] = px[n * H + h] + pb[h];
    });
  });

  if (detail::needs_grad({&x, &b})) {
    detail::record(
        y, "add_bias", {x, b},
        [N, H, grad_b = b.requires_grad()](const Tensor& g) {
          Tensor db;  // dL/db = column sums of dL/dY
          if (grad_b) {
            db = Tensor::empty({H}, g.dtype());
            detail::dispatch(g.dtype(), [&]<class T>() {
              const T* pg = g.data<T>();
              T* pdb = db.data<T>();
              const int64_t columns_per_part =
                  detail::kElementwiseGrain / std::max<int64_t>(N, 1) + 1;
              detail::parallel_for(H, columns_per_part, [&](int64_t h0, int64_t h1) {
                std::fill(pdb + h0, pdb + h1, T(0));
                for (int64_t n = 0; n < N; ++n)
                  for (int64_t h = h0; h < h1; ++h) pdb[h] += pg[n * H + h];
              });
            });
          }
          return detail::grads(g, std::move(db));  // dL/dX = dL/dY
        },
        [](const std::vector<Tensor>& in) { return add_bias(in[0], in[1]); }, where);
  }
  return y;
}

}  // namespace ag
