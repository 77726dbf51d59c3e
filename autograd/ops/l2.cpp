// l2: the sum of squares, the weight-decay penalty.
//
//   forward:  L = Σ_i w_i²                 any shape -> scalar
//   backward: dL/dw = 2 w · dL/dL_out
#include "autograd/detail/dispatch.h"
#include "autograd/detail/parallel.h"
#include "autograd/ops.h"

namespace ag {

// w: any shape -> scalar
Tensor l2(const Tensor& w, Where where) {
  detail::check_defined("l2", {&w});
  Tensor out = Tensor::empty({}, w.dtype());
  detail::dispatch(w.dtype(), [&]<class T>() {
    const T* pw = w.data<T>();
    const int64_t n = w.numel();
    double total = 0.0;  // accumulate in double: float32 sums of many squares drift
#pragma omp simd reduction(+ : total)
    for (int64_t i = 0; i < n; ++i) total += double(pw[i]) * double(pw[i]);
    out.data<T>()[0] = static_cast<T>(total);
  });

  if (detail::needs_grad({&w})) {
    detail::record(
        out, "l2", {w},
        [w = w.detach()](const Tensor& g) {
          Tensor dw = Tensor::empty(w.shape(), w.dtype());
          detail::dispatch(w.dtype(), [&]<class T>() {
            const T two_g = T(2) * g.data<T>()[0];
            const T* pw = w.data<T>();
            T* pdw = dw.data<T>();
            detail::parallel_for(w.numel(), detail::kElementwiseGrain, [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i) pdw[i] = two_g * pw[i];
            });
          });
          return std::vector<Tensor>{dw};
        },
        [](const std::vector<Tensor>& in) { return l2(in[0]); }, where);
  }
  return out;
}

}  // namespace ag
