// The one place that talks to CBLAS. Row-major GEMM with transposes passed as flags, large
// products split across the threads (threads.cpp). One shape in double precision goes to a
// kernel of our own instead (dgemm_tn.h) on AMD processors where OpenBLAS runs its AVX-512
// kernels.
#include <cblas.h>
#include <strings.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/detail/dgemm_tn.h"
#include "autograd/detail/dispatch.h"
#include "autograd/detail/parallel.h"
#include "autograd/threads.h"

extern "C" {
char* openblas_get_corename(void) __attribute__((weak));  // OpenBLAS only (see threads.cpp)
}

namespace ag {
namespace detail {
namespace {

// Products below this many multiply-adds run on the calling thread alone (waking a worker would
// cost more than it saves), except from kSplitRowsMacs on when C has at least as many rows as
// columns: the second layer's thin products (h·W2, hᵀ·dS) are done in 55-70% of the time on two
// threads by rows, while by columns (dS·W2ᵀ) they take twice as long as on one.
constexpr double kParallelMacs = 1 << 20;
constexpr double kSplitRowsMacs = 1 << 17;
// The largest small product (in elements of C) that adds into C through scratch space (below).
constexpr int64_t kScratchElements = 1 << 14;
// Large products with K at least this many times C's larger side are split along K, and those
// with K at most kShortK by rows whatever C's shape (below).
constexpr int64_t kSplitKFactor = 4;
constexpr int64_t kShortK = 32;

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
  // out[m0:m1, n0:n1] = alpha * op(A)[m0:m1, k0:k1] · op(B)[k0:k1, n0:n1] + b * out[m0:m1, n0:n1]
  // Aᵀ·B with C tall and the sum short (cifar's Xᵀ·dH), in double: dgemm_tn was faster than
  // OpenBLAS there. Chosen for the whole product, so every part takes the same code.
  const bool own_tn = std::is_same_v<T, double> && trans_a && !trans_b && dgemm_tn_pays(M, N, K);
  auto part = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t k0, int64_t k1, T b,
                  T* out) {
    if constexpr (std::is_same_v<T, double>)
      if (own_tn && dgemm_tn(m1 - m0, n1 - n0, k1 - k0, alpha, A + k0 * lda + m0, lda,
                             B + k0 * ldb + n0, ldb, b, out + m0 * N + n0, N))
        return;  // else it could not run, and C is untouched
    cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m1 - m0),
               static_cast<int>(n1 - n0), static_cast<int>(k1 - k0), alpha,
               A + (trans_a ? k0 * lda + m0 : m0 * lda + k0), static_cast<int>(lda),
               B + (trans_b ? n0 * ldb + k0 : k0 * ldb + n0), static_cast<int>(ldb), b,
               out + m0 * N + n0, static_cast<int>(N));
  };
  auto block = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {  // all of K, into C
    part(m0, m1, n0, n1, 0, K, beta, C);
  };
  // A large product is split across the threads, each part one single-threaded BLAS call (or
  // dgemm_tn) on views of the same arrays: by rows of C when it has at least as many rows as
  // columns (each part then packs all of B, the smaller operand), else by columns (each part packs
  // all of A). Two exceptions: a long sum is cut along K (below), and a short one (K <= kShortK) is
  // split by rows whatever C's shape when there are rows enough for two parts: both operands are
  // then cheap to pack, and each part writes whole rows, as the element-wise ops that read C next
  // split it.
  const double macs = double(M) * double(N) * double(K);
  const auto grain = [&](double part_macs, int64_t extent) {  // at least part_macs per part
    return std::max<int64_t>(16, static_cast<int64_t>(part_macs / (macs / double(extent))));
  };
  Scratch scratch;  // the second half of a sum cut along K
  if (macs < kParallelMacs && beta != T(0) && M * N <= kScratchElements) {
    // OpenBLAS's small-matrix kernels, which it picks below about this size, are much slower
    // with beta != 0 than with beta = 0 (256×10×64: 4.9 against 3.9 µs; 4×10×5: 160 against
    // 105 ns): the product goes into scratch space with beta = 0 and is added here instead.
    thread_local std::vector<T> scratch(kScratchElements);
    T* product = scratch.data();
    gemm_impl(cblas_gemm, trans_a, trans_b, M, N, K, alpha, A, B, T(0), product);
    for (int64_t i = 0; i < M * N; ++i) C[i] = beta * C[i] + product[i];
  } else if (macs < kParallelMacs && (macs < kSplitRowsMacs || M < N)) {
    block(0, M, 0, N);
  } else if (macs < kParallelMacs) {
    parallel_for(M, grain(kSplitRowsMacs / 2, M),
                 [&](int64_t m0, int64_t m1) { block(m0, m1, 0, N); });
  } else if (K >= kSplitKFactor * std::max(M, N) &&
             (scratch = try_allocate(sizeof(T) * static_cast<std::size_t>(M * N)))) {
    // C small and K long (cifar's X·W1: C 200×100, K 3072). By rows, every part would pack all
    // of B again; instead the sum over K is cut in two halves, the first into C and the second
    // into scratch space added to it after. Always two halves, also on one thread, so that one,
    // two and three threads make the same BLAS calls; four or more cut each half by rows.
    const int64_t half = K / 2, chunks = std::max(1, get_num_threads() / 2);
    T* second = static_cast<T*>(scratch.get());
    parallel_for(2 * chunks, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t c = i % chunks, m0 = M * c / chunks, m1 = M * (c + 1) / chunks;
        if (m0 == m1) continue;
        if (i < chunks)
          part(m0, m1, 0, N, 0, half, beta, C);
        else
          part(m0, m1, 0, N, half, K, T(0), second);
      }
    });
    parallel_for(M * N, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) C[i] += second[i];
    });
  } else if (M >= N || (K <= kShortK && M >= 2 * grain(kParallelMacs / 2, M)))
    parallel_for(M, grain(kParallelMacs / 2, M),
                 [&](int64_t m0, int64_t m1) { block(m0, m1, 0, N); });
  else
    parallel_for(N, grain(kParallelMacs / 2, N),
                 [&](int64_t n0, int64_t n1) { block(0, M, n0, n1); });
}

}  // namespace

bool blas_runs_avx512_kernels() {
  static const bool yes = [] {
    const char* core = openblas_get_corename ? openblas_get_corename() : nullptr;
    if (core == nullptr) return false;
    for (const char* name : {"SkylakeX", "Cooperlake", "SapphireRapids"})
      if (strcasecmp(core, name) == 0) return true;  // upper case from a one-CPU build
    return false;
  }();
  return yes;
}

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
