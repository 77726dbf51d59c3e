// matmul: the matrix product of a batch of rows with a weight matrix.
//
//   forward:  Y = A · B                   A: [N, D], B: [D, H] -> Y: [N, H]
//             Y[n, h] = Σ_d A[n, d] B[d, h]
//   backward: dL/dA = dL/dY · Bᵀ          [N, H] · [H, D] -> [N, D]
//             dL/dB = Aᵀ · dL/dY          [D, N] · [N, H] -> [D, H]
//
// All three products go to CBLAS GEMM; the transposes are flags, never materialised. The backward
// adds into the engine's gradients (Node::backward's `into`): a weight's gradient from l2 and
// from the product is summed by the GEMM (beta = 1), not in a buffer of its own added after.
#include "autograd/detail/dispatch.h"
#include "autograd/ops.h"

namespace ag {

// a: [N, D], b: [D, H] -> [N, H]
Tensor matmul(const Tensor& a, const Tensor& b, Where where) {
  detail::check_defined("matmul", {&a, &b});
  if (a.dim() != 2 || b.dim() != 2)
    detail::fail("matmul: expects two matrices, got shapes {} and {}", shape_str(a.shape()),
                 shape_str(b.shape()));
  if (a.size(1) != b.size(0))
    detail::fail("matmul: shapes {} and {} do not match (inner dimensions {} != {})",
                 shape_str(a.shape()), shape_str(b.shape()), a.size(1), b.size(0));
  detail::check_same_dtype("matmul", a, b);
  const int64_t N = a.size(0), D = a.size(1), H = b.size(1);

  Tensor y = Tensor::empty({N, H}, a.dtype());
  detail::dispatch(a.dtype(), [&]<class T>() {
    detail::gemm(false, false, N, H, D, T(1), a.data<T>(), b.data<T>(), T(0), y.data<T>());
  });

  if (detail::needs_grad({&a, &b})) {
    const bool grad_a = a.requires_grad(), grad_b = b.requires_grad();
    detail::record(
        y, "matmul", {a, b},
        [grad_a, grad_b, N, D, H](const Tensor& g, const TensorList& in, const TensorList& into) {
          const Tensor &a = in[0], &b = in[1];  // the values the forward multiplied
          // Each gradient is added by the GEMM itself (beta = 1) into the one the engine holds
          // for that input already, when it offers one (see Node::backward), else written anew.
          // (Both buffers are made before either product runs: nothing is written if one throws.)
          const bool add_a = detail::adds_into(into, 0), add_b = detail::adds_into(into, 1);
          Tensor da, db;
          if (grad_a) da = add_a ? into[0] : Tensor::empty({N, D}, g.dtype());
          if (grad_b) db = add_b ? into[1] : Tensor::empty({D, H}, g.dtype());
          detail::dispatch(g.dtype(), [&]<class T>() {
            if (grad_a)  // dL/dA = dL/dY · Bᵀ
              detail::gemm(false, true, N, D, H, T(1), g.data<T>(), b.data<T>(), T(add_a),
                           da.data<T>());
            if (grad_b)  // dL/dB = Aᵀ · dL/dY
              detail::gemm(true, false, D, H, N, T(1), a.data<T>(), g.data<T>(), T(add_b),
                           db.data<T>());
          });
          return detail::grads(std::move(da), std::move(db));
        },
        [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, where,
        detail::reads(grad_a ? 1 : -1, grad_b ? 0 : -1));  // dA needs B, dB needs A
  }
  return y;
}

}  // namespace ag
