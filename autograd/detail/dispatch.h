// Internal helpers shared by the op files: dtype dispatch, the CBLAS GEMM wrapper and
// error formatting. Not installed as public API.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

#include "autograd/tensor.h"

namespace ag::detail {

/// Calls f.template operator()<T>() with T = float or double to match `dtype`:
///   dispatch(x.dtype(), [&]<class T>() { const T* px = x.data<T>(); ... });
template <class F>
decltype(auto) dispatch(DType dtype, F&& f) {
  if (dtype == DType::Float64) return f.template operator()<double>();
  return f.template operator()<float>();
}

/// Throws std::invalid_argument with a message formatted by fmt.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw std::invalid_argument(fmt::format(format, std::forward<Args>(args)...));
}

/// Throws unless every tensor is defined and they all share one dtype.
void check_defined(const char* op, std::initializer_list<const Tensor*> inputs);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);

/// C[M, N] = alpha * op(A) · op(B) + beta * C, row-major, where op(X) is X or Xᵀ.
/// A is [M, K] (or [K, M] when trans_a), B is [K, N] (or [N, K] when trans_b).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          const float* B, float beta, float* C);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, const double* B, double beta, double* C);

/// Whether the BLAS is OpenBLAS running its AVX-512 kernels (SkylakeX, Cooperlake,
/// SapphireRapids), as on this project's first machine, a Zen 4; false on its Haswell and Zen
/// kernels (as on a Zen 3) and for any other BLAS. On cifar's weight gradient in double, dgemm_tn
/// was measured faster than the first kind on the Zen 4 and slower than the second on a Zen 3
/// (docs/performance.md).
bool blas_runs_avx512_kernels();

}  // namespace ag::detail
