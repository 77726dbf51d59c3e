// relu: the rectifier, element-wise.
//
//   forward:  y = max(x, 0)               any shape
//   backward: dL/dx = dL/dy · [x > 0]      (0 at x = 0, as PyTorch)
#include "autograd/detail/dispatch.h"
#include "autograd/detail/parallel.h"
#include "autograd/ops.h"

namespace ag {

// x: any shape -> same shape
Tensor relu(const Tensor& x, Where where) {
  detail::check_defined("relu", {&x});
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  detail::dispatch(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    detail::parallel_for(x.numel(), detail::kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) py[i] = px[i] > T(0) ? px[i] : T(0);
    });
  });

  if (detail::needs_grad({&x})) {
    detail::record(
        y, "relu", {x},
        [](const Tensor& g, const TensorList& in) {  // the mask [x > 0], from the input kept
          Tensor dx = Tensor::empty(g.shape(), g.dtype());
          detail::dispatch(g.dtype(), [&]<class T>() {
            const T* px = in[0].data<T>();
            const T* pg = g.data<T>();
            T* pdx = dx.data<T>();
            detail::parallel_for(g.numel(), detail::kElementwiseGrain, [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i) {  // both loads unconditional: a select, no branch
                const T g_i = pg[i];
                pdx[i] = px[i] > T(0) ? g_i : T(0);
              }
            });
          });
          return dx;
        },
        [](const std::vector<Tensor>& in) { return relu(in[0]); }, where);
  }
  return y;
}

}  // namespace ag
