// Element-wise arithmetic and reductions: the small ops that glue models together
// (a + b, a - b, a * b, t * 2.0, sum, mean) and dtype conversion.
//
//   add:   y = a + b        dL/da = g,        dL/db = g
//   sub:   y = a - b        dL/da = g,        dL/db = -g
//   mul:   y = a ⊙ b        dL/da = g ⊙ b,    dL/db = g ⊙ a
//   scale: y = k x          dL/dx = k g
//   sum:   y = Σ_i x_i      dL/dx_i = g
//   mean:  y = Σ_i x_i / n  dL/dx_i = g / n
//   cast:  y = T(x)         dL/dx = T_x(g)
#include "autograd/detail/dispatch.h"
#include "autograd/ops.h"

namespace ag {
namespace {

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  detail::check_defined(op, {&a, &b});
  if (a.shape() != b.shape())
    detail::fail("{}: shapes {} and {} do not match (element-wise ops need equal shapes)", op,
                 shape_str(a.shape()), shape_str(b.shape()));
  detail::check_same_dtype(op, a, b);
}

// out[i] = f(a[i], b[i])
template <class F>
Tensor zip(const Tensor& a, const Tensor& b, F f) {
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  detail::dispatch(a.dtype(), [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    const int64_t n = a.numel();
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
  });
  return out;
}

// out[i] = x[i] * factor
Tensor scaled(const Tensor& x, double factor) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  detail::dispatch(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T k = static_cast<T>(factor);
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) po[i] = px[i] * k;
  });
  return out;
}

}  // namespace

// a, b: same shape -> same shape
Tensor add(const Tensor& a, const Tensor& b, Where where) {
  check_same_shape("add", a, b);
  Tensor y = zip(a, b, [](auto u, auto v) { return u + v; });
  if (detail::needs_grad({&a, &b}))
    detail::record(
        y, "add", {a, b}, [](const Tensor& g) { return detail::grads(g, g); },
        [](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, where);
  return y;
}

// a, b: same shape -> same shape
Tensor sub(const Tensor& a, const Tensor& b, Where where) {
  check_same_shape("sub", a, b);
  Tensor y = zip(a, b, [](auto u, auto v) { return u - v; });
  if (detail::needs_grad({&a, &b}))
    detail::record(
        y, "sub", {a, b}, [](const Tensor& g) { return detail::grads(g, scaled(g, -1.0)); },
        [](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }, where);
  return y;
}

// a, b: same shape -> same shape
Tensor mul(const Tensor& a, const Tensor& b, Where where) {
  check_same_shape("mul", a, b);
  Tensor y = zip(a, b, [](auto u, auto v) { return u * v; });
  if (detail::needs_grad({&a, &b})) {
    const bool grad_a = a.requires_grad(), grad_b = b.requires_grad();
    detail::record(
        y, "mul", {a, b},
        [grad_a, grad_b](const Tensor& g, const TensorList& in) {
          const Tensor &a = in[0], &b = in[1];
          auto times = [](auto u, auto v) { return u * v; };
          return detail::grads(grad_a ? zip(g, b, times) : Tensor(),
                               grad_b ? zip(g, a, times) : Tensor());
        },
        [](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }, where,
        detail::reads(grad_a ? 1 : -1, grad_b ? 0 : -1));  // da needs b, db needs a
  }
  return y;
}

// x: any shape -> same shape
Tensor scale(const Tensor& x, double factor, Where where) {
  detail::check_defined("scale", {&x});
  Tensor y = scaled(x, factor);
  if (detail::needs_grad({&x}))
    detail::record(
        y, "scale", {x}, [factor](const Tensor& g) { return scaled(g, factor); },
        [factor](const std::vector<Tensor>& in) { return scale(in[0], factor); }, where);
  return y;
}

// x: any shape -> scalar
Tensor sum(const Tensor& x, Where where) {
  detail::check_defined("sum", {&x});
  Tensor y = Tensor::empty({}, x.dtype());
  detail::dispatch(x.dtype(), [&]<class T>() {
    const T* px = x.data<T>();
    double total = 0.0;
    for (int64_t i = 0; i < x.numel(); ++i) total += px[i];
    y.data<T>()[0] = static_cast<T>(total);
  });
  if (detail::needs_grad({&x}))
    detail::record(
        y, "sum", {x},
        [shape = x.shape()](const Tensor& g) { return full(shape, g.item(), g.dtype()); },
        [](const std::vector<Tensor>& in) { return sum(in[0]); }, where);
  return y;
}

// x: any shape -> scalar
Tensor mean(const Tensor& x, Where where) {
  detail::check_defined("mean", {&x});
  if (x.numel() == 0) detail::fail("mean: empty tensor of shape {}", shape_str(x.shape()));
  return scale(sum(x, where), 1.0 / static_cast<double>(x.numel()), where);
}

// x: any shape -> same shape, dtype `dtype`
Tensor cast(const Tensor& x, DType dtype, Where where) {
  detail::check_defined("cast", {&x});
  Tensor y = Tensor::empty(x.shape(), dtype);
  detail::copy_values(y, x);
  if (detail::needs_grad({&x}))
    detail::record(
        y, "cast", {x}, [from = x.dtype()](const Tensor& g) { return g.to(from); },
        [dtype](const std::vector<Tensor>& in) { return cast(in[0], dtype); }, where);
  return y;
}

// scores: [N, C] -> N row argmaxes
std::vector<int32_t> argmax_rows(const Tensor& scores) {
  detail::check_defined("argmax_rows", {&scores});
  if (scores.dim() != 2 || scores.size(1) == 0)
    detail::fail("argmax_rows: scores must be [N, C] with C >= 1, got shape {}",
                 shape_str(scores.shape()));
  const int64_t N = scores.size(0), C = scores.size(1);
  std::vector<int32_t> out(static_cast<std::size_t>(N));
  detail::dispatch(scores.dtype(), [&]<class T>() {
    const T* s = scores.data<T>();
    for (int64_t n = 0; n < N; ++n) {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (s[n * C + c] > s[n * C + best]) best = c;
      out[static_cast<std::size_t>(n)] = static_cast<int32_t>(best);
    }
  });
  return out;
}

}  // namespace ag
