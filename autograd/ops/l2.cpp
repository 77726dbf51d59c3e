// l2: the sum of squares, the weight-decay penalty.
//
//   forward:  L = Σ_i w_i²                 any shape -> scalar
//   backward: dL/dw = 2 w · dL/dL_out      (added into w's gradient when the engine has one)
#include "autograd/detail/dispatch.h"
#include "autograd/detail/parallel.h"
#include "autograd/detail/target_clones.h"
#include "autograd/ops.h"

namespace ag {
namespace {

// Σ p[i]² over [begin, end), accumulated in double: float32 sums of many squares drift. Sixteen
// running sums, one per lane of a few vector registers, so that each addition need not wait for
// the one before it (a single sum is bound by the adder's latency, not its throughput). Called
// through sum_of_squares, below, for each dtype, which is built for AVX2 as well
// (detail/target_clones.h).
template <class T>
AG_INLINE_INTO_CLONES double sum_squares(const T* p, int64_t begin, int64_t end) {
  constexpr int64_t kLanes = 16;
  double lane[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) lane[j] += double(p[i + j]) * double(p[i + j]);
  double s = 0.0;
  for (; i < end; ++i) s += double(p[i]) * double(p[i]);
  for (const double l : lane) s += l;
  return s;
}
AG_ALSO_FOR_AVX2 double sum_of_squares(const float* p, int64_t begin, int64_t end) {
  return sum_squares(p, begin, end);
}
AG_ALSO_FOR_AVX2 double sum_of_squares(const double* p, int64_t begin, int64_t end) {
  return sum_squares(p, begin, end);
}

}  // namespace

// w: any shape -> scalar
Tensor l2(const Tensor& w, Where where) {
  detail::check_defined("l2", {&w});
  Tensor out = Tensor::empty({}, w.dtype());
  detail::dispatch(w.dtype(), [&]<class T>() {
    const T* pw = w.data<T>();
    const double total = detail::parallel_sum(
        w.numel(), detail::kElementwiseGrain,
        [pw](int64_t begin, int64_t end) { return sum_of_squares(pw, begin, end); });
    out.data<T>()[0] = static_cast<T>(total);
  });

  if (detail::needs_grad({&w})) {
    detail::record(
        out, "l2", {w},
        [](const Tensor& g, const TensorList& in, const TensorList& into) {
          const Tensor& w = in[0];
          const bool add = detail::adds_into(into, 0);  // into the gradient held for w already
          Tensor dw = add ? into[0] : Tensor::empty(w.shape(), w.dtype());
          detail::dispatch(w.dtype(), [&]<class T>() {
            const T two_g = T(2) * g.data<T>()[0];
            const T* pw = w.data<T>();
            T* pdw = dw.data<T>();
            detail::parallel_for(w.numel(), detail::kElementwiseGrain, [&](int64_t b, int64_t e) {
              if (add)
                for (int64_t i = b; i < e; ++i) pdw[i] += two_g * pw[i];
              else
                for (int64_t i = b; i < e; ++i) pdw[i] = two_g * pw[i];
            });
          });
          return dw;
        },
        [](const std::vector<Tensor>& in) { return l2(in[0]); }, where);
  }
  return out;
}

}  // namespace ag
