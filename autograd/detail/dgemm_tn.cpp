// C = alpha · Aᵀ·B + beta · C in double precision, A stored [K, M] (see dgemm_tn.h).
//
// Each call (each thread's part of C) copies B into panels of 8 columns, k-major and
// zero-padded, and A in blocks of 96 rows of C, each into panels of 6 rows, k-major. The kernel
// holds a 6×8 tile of C in twelve AVX2 registers: per k it loads the 8 values of B's panel,
// broadcasts 6 of A's and does 12 fused multiply-adds. One A panel (6·K values) stays in L1 while
// the kernel walks all of B's panels, which stay in L2. A[k, i0 .. i0+6) is contiguous already,
// but A's rows are lda apart (24 KiB in cifar, a multiple of 4 KiB): read in place, a panel's K
// cache lines would all map to one 8-way L1 set and evict each other, and the kernel was then
// slower than OpenBLAS.
#include "autograd/detail/dgemm_tn.h"

#include <algorithm>

#include "autograd/allocator.h"
#include "autograd/detail/dispatch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AG_DGEMM_TN_X86 1
#define AG_AVX2_FMA __attribute__((target("avx2,fma")))
#endif

namespace ag::detail {

#ifdef AG_DGEMM_TN_X86
namespace {

constexpr int64_t kRows = 6;    // rows of C per tile (broadcast from A)
constexpr int64_t kCols = 8;    // columns of C per tile (two vectors of B)
constexpr int64_t kBlock = 96;  // rows of C per packed block of A
// dgemm_tn_pays: the shapes measured faster than OpenBLAS, one thread's half of C, on this
// project's Zen 4 against OpenBLAS 0.3.21's Cooperlake kernels (docs/performance.md): C of 2048
// to 4096 rows, 32 to 128 columns, sums of 64 to 400. Slower: 1000 rows (by 12%), fashion's
// 784×512 with K = 128 (by 19%). Against its Zen (Haswell) kernels on a Zen 3 it was slower on
// cifar's shape too (by 5-24%). So it is taken only on AMD processors where OpenBLAS runs its
// AVX-512 kernels: not measured on Intel's AVX-512 processors, whose two 512-bit FMA units can
// make OpenBLAS's kernels there twice as fast as this AVX2 one.
constexpr int64_t kMinM = 2048, kMinN = 32, kMaxN = 128, kMinK = 64, kMaxK = 400;

bool has_avx2_fma() {
  static const bool yes = [] {
    __builtin_cpu_init();  // in case the first product runs before libgcc's own constructor
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

// C[0:R, 0:n] = alpha · tile + beta · C, the tile being Σ_k a[k·kRows + r] · b[k·kCols + j].
template <int R>
AG_AVX2_FMA void tile(int64_t K, const double* a, const double* b, double alpha, double beta,
                      double* C, int64_t ldc, int64_t n) {
  __m256d acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    acc[r][0] = acc[r][1] = _mm256_setzero_pd();
    // C is too large for L2 in cifar: fetch the tile's lines while the sum runs.
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + n - 1), _MM_HINT_T0);
  }
  for (int64_t k = 0; k < K; ++k, a += kRows, b += kCols) {
    const __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256d x = _mm256_broadcast_sd(a + r);
      acc[r][0] = _mm256_fmadd_pd(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_pd(x, b1, acc[r][1]);
    }
  }
  // Every row of every tile, whole or cut short, rounds the same way: alpha · Σ, then one fused
  // multiply-add of beta · C. (Every index of acc is a constant once unrolled, or GCC keeps the
  // accumulators in memory.)
  const __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    alignas(32) double edge[kCols] = {};
    double* c = n == kCols ? C + r * ldc : edge;
    if (n < kCols && beta != 0.0) std::copy_n(C + r * ldc, n, edge);
    __m256d c0 = _mm256_mul_pd(va, acc[r][0]), c1 = _mm256_mul_pd(va, acc[r][1]);
    if (beta != 0.0) {
      c0 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(c), c0);
      c1 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(c + 4), c1);
    }
    _mm256_storeu_pd(c, c0);
    _mm256_storeu_pd(c + 4, c1);
    if (n < kCols) std::copy_n(edge, n, C + r * ldc);
  }
}

// tile<R> for a panel of R rows of C: kRows, or fewer in the last panel.
using Tile = void (*)(int64_t, const double*, const double*, double, double, double*, int64_t,
                      int64_t);
constexpr Tile kTiles[kRows] = {tile<1>, tile<2>, tile<3>, tile<4>, tile<5>, tile<6>};

AG_AVX2_FMA void product(int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                         int64_t lda, const double* B, int64_t ldb, double beta, double* C,
                         int64_t ldc, double* a_pack, double* b_pack) {
  const int64_t b_panels = (N + kCols - 1) / kCols;
  for (int64_t p = 0; p < b_panels; ++p) {  // B's panel p: b_pack[(p·K + k)·kCols + j]
    const int64_t j0 = p * kCols, n = std::min(kCols, N - j0);
    for (int64_t k = 0; k < K; ++k) {
      double* to = b_pack + (p * K + k) * kCols;
      std::fill(std::copy_n(B + k * ldb + j0, n, to), to + kCols, 0.0);
    }
  }
  for (int64_t i_block = 0; i_block < M; i_block += kBlock) {
    const int64_t rows = std::min(kBlock, M - i_block), a_panels = (rows + kRows - 1) / kRows;
    for (int64_t k = 0; k < K; ++k) {  // A's panel p: a_pack[(p·K + k)·kRows + r]
      const double* from = A + k * lda + i_block;
      for (int64_t p = 0; p < a_panels; ++p) {
        double* to = a_pack + (p * K + k) * kRows;
        if ((p + 1) * kRows <= rows) {
          _mm256_storeu_pd(to, _mm256_loadu_pd(from + p * kRows));
          _mm_storeu_pd(to + 4, _mm_loadu_pd(from + p * kRows + 4));
        } else {
          std::copy_n(from + p * kRows, rows - p * kRows, to);
        }
      }
    }
    for (int64_t p = 0; p < a_panels; ++p) {
      const int64_t i0 = i_block + p * kRows;
      const double* a = a_pack + p * K * kRows;
      for (int64_t q = 0; q < b_panels; ++q) {
        const int64_t j0 = q * kCols, n = std::min(kCols, N - j0);
        const double* b = b_pack + q * K * kCols;
        double* c = C + i0 * ldc + j0;
        kTiles[std::min(kRows, M - i0) - 1](K, a, b, alpha, beta, c, ldc, n);
      }
    }
  }
}

}  // namespace

bool dgemm_tn_pays(int64_t M, int64_t N, int64_t K) {
  // Where it was measured faster than OpenBLAS (above); has_avx2_fma() runs __builtin_cpu_init.
  static const bool measured_faster =
      has_avx2_fma() && __builtin_cpu_is("amd") && blas_runs_avx512_kernels();
  return M >= kMinM && N >= kMinN && N <= kMaxN && K >= kMinK && K <= kMaxK && measured_faster;
}

bool dgemm_tn(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
              const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (!has_avx2_fma()) return false;
  if (M <= 0 || N <= 0) return true;
  const int64_t b_values = K * ((N + kCols - 1) / kCols) * kCols, a_values = K * kBlock;
  const auto bytes = static_cast<std::size_t>(a_values + b_values) * sizeof(double);
  Scratch pack;  // none for K = 0: then C = beta · C
  if (bytes > 0 && !(pack = try_allocate(bytes))) return false;
  double* packed = static_cast<double*>(pack.get());
  product(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packed, packed + a_values);
  return true;
}

#else  // not x86-64 with GCC or Clang: OpenBLAS does every product

bool dgemm_tn_pays(int64_t, int64_t, int64_t) {
  return false;
}
bool dgemm_tn(int64_t, int64_t, int64_t, double, const double*, int64_t, const double*, int64_t,
              double, double*, int64_t) {
  return false;
}

#endif

}  // namespace ag::detail
