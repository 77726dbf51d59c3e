// The one place that talks to CBLAS. Row-major GEMM with transposes passed as flags.
#include <cblas.h>

#include <limits>

#include "autograd/detail/dispatch.h"
#include "autograd/threads.h"

namespace ag {
namespace detail {
namespace {

template <class T, class Gemm>
void gemm_impl(Gemm cblas_gemm, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               T alpha, const T* A, const T* B, T beta, T* C) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();  // CBLAS takes int dimensions
  if (M > kMax || N > kMax || K > kMax)
    fail("matmul: dimensions {} x {} x {} exceed the BLAS limit of {}", M, K, N, kMax);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = beta * C (BLAS rejects a leading dimension of 0)
    for (int64_t i = 0; i < M * N; ++i) C[i] = beta == T(0) ? T(0) : beta * C[i];
    return;
  }
  const int64_t lda = trans_a ? M : K;  // A is stored [M, K], or [K, M] when transposed
  const int64_t ldb = trans_b ? K : N;  // B is stored [K, N], or [N, K] when transposed
  cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
             trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(M), static_cast<int>(N),
             static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
             C, static_cast<int>(N));
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          const float* B, float beta, float* C) {
  gemm_impl(cblas_sgemm, trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, const double* B, double beta, double* C) {
  gemm_impl(cblas_dgemm, trans_a, trans_b, M, N, K, alpha, A, B, beta, C);
}

}  // namespace detail
}  // namespace ag
