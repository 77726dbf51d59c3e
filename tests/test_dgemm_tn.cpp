// Our double-precision kernel for Aᵀ·B (autograd/detail/dgemm_tn.h), which matmul's backward
// takes for tall, short-sum weight gradients such as cifar's Xᵀ·dH: right on edge shapes and
// strides, C's neighbours untouched, the same bits whatever rows a thread is given; and ag::matmul
// takes it where it pays (an AMD processor on which OpenBLAS runs its AVX-512 kernels), with the
// same gradient on one and two threads. On a machine without AVX2 and FMA the kernel's own tests
// are skipped; where it does not pay, matmul's runs on OpenBLAS.
#include "autograd/detail/dgemm_tn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::detail::dgemm_tn;

// Whether the kernel runs on this machine (its answer is for the tests to check).
bool kernel_runs() {
  double a = 2, b = 3, c = 0;
  return dgemm_tn(1, 1, 1, 1.0, &a, 1, &b, 1, 0.0, &c, 1);
}

std::vector<double> random_values(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(n);
  for (double& x : v) x = normal(gen);
  return v;
}

TEST(DgemmTn, MatchesALongDoubleSumOnEdgeShapesAndStrides) {
  if (!kernel_runs()) GTEST_SKIP() << "no AVX2 and FMA here: matmul uses OpenBLAS only";
  const double kSentinel = 12345.0, nan = std::numeric_limits<double>::quiet_NaN();
  // Rows around the tile (6) and block (96) sizes, columns around the panel width (8).
  for (const int64_t M : {1, 5, 6, 7, 96, 97, 103})
    for (const int64_t N : {1, 7, 8, 9, 17})
      for (const int64_t K : {0, 1, 3, 33})
        for (const double beta : {0.0, 1.0, 0.25}) {
          const double alpha = M % 2 ? 1.0 : -0.5;
          const int64_t lda = M + 3, ldb = N + 2, ldc = N + 5;  // rows longer than used
          const auto A = random_values(static_cast<std::size_t>(std::max<int64_t>(K, 1) * lda), 1);
          const auto B = random_values(static_cast<std::size_t>(std::max<int64_t>(K, 1) * ldb), 2);
          // One row more than C: a write past its last row shows as a changed sentinel.
          std::vector<double> C(static_cast<std::size_t>((M + 1) * ldc), kSentinel);
          const auto C0 = random_values(C.size(), 3);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0 ? nan : C0[i * ldc + j];
          ASSERT_TRUE(dgemm_tn(M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc));
          for (int64_t i = 0; i <= M; ++i) {
            for (int64_t j = 0; j < ldc; ++j) {
              const double got = C[i * ldc + j];
              if (i == M || j >= N) {
                ASSERT_EQ(got, kSentinel)
                    << "wrote outside C (" << M << "x" << N << ") at row " << i << ", column " << j;
                continue;
              }
              long double sum = 0, size = 0;
              for (int64_t k = 0; k < K; ++k) {
                sum += static_cast<long double>(A[k * lda + i]) * B[k * ldb + j];
                size += std::abs(static_cast<long double>(A[k * lda + i]) * B[k * ldb + j]);
              }
              long double want = alpha * sum;
              if (beta != 0.0) want += beta * static_cast<long double>(C0[i * ldc + j]);
              const double tolerance = 1e-14 * static_cast<double>(size + 1);
              ASSERT_NEAR(got, static_cast<double>(want), tolerance)
                  << "C[" << i << ", " << j << "] of " << M << "x" << N << ", K " << K << ", beta "
                  << beta;
            }
          }
        }
}

TEST(DgemmTn, RowsComputedInAnyPartsGiveTheSameBits) {
  // gemm splits C by rows over the threads; each element must not depend on where its row
  // falls in a part (tile or block edges), or results would depend on the thread count.
  if (!kernel_runs()) GTEST_SKIP() << "no AVX2 and FMA here: matmul uses OpenBLAS only";
  const int64_t M = 250, N = 100, K = 200;
  const auto A = random_values(static_cast<std::size_t>(K * M), 4);
  const auto B = random_values(static_cast<std::size_t>(K * N), 5);
  const auto C0 = random_values(static_cast<std::size_t>(M * N), 6);
  const double alpha = -0.7, beta = 0.3;  // neither 1: each rounds
  std::vector<double> whole = C0;
  ASSERT_TRUE(dgemm_tn(M, N, K, alpha, A.data(), M, B.data(), N, beta, whole.data(), N));
  for (const int64_t split : {1, 7, 96, 125, 131}) {
    std::vector<double> parts = C0;
    ASSERT_TRUE(dgemm_tn(split, N, K, alpha, A.data(), M, B.data(), N, beta, parts.data(), N));
    ASSERT_TRUE(dgemm_tn(M - split, N, K, alpha, A.data() + split, M, B.data(), N, beta,
                         parts.data() + split * N, N));
    for (std::size_t i = 0; i < whole.size(); ++i)
      ASSERT_EQ(std::memcmp(&parts[i], &whole[i], sizeof(double)), 0)
          << "C[" << i / N << ", " << i % N << "] with rows split at " << split << ": " << parts[i]
          << " against " << whole[i] << " in one call";
  }
}

TEST(DgemmTn, MatmulsWeightGradientTakesItAndIsRightOnOneAndTwoThreads) {
  // y = a·b with a [n, d], b [d, h]: dL/db = aᵀ·dL/dy is the kernel's shape (d = 2048 rows, a
  // short sum over the batch n), first written, then added into on a second backward, so that
  // dL/db = 2·aᵀ·g.
  const int64_t n = 200, d = 2048, h = 64;
  ag::Generator gen(7);
  const ag::Tensor a = ag::randn({n, d}, gen, 1.0, ag::DType::Float64);
  const ag::Tensor g = ag::randn({n, h}, gen, 1.0, ag::DType::Float64);
  const ag::Tensor b0 = ag::randn({d, h}, gen, 1.0, ag::DType::Float64);
  auto gradient = [&](int threads) {
    const ag::test::ThreadCount count(threads);
    const ag::Tensor b = b0.clone().requires_grad_();
    for (int pass = 0; pass < 2; ++pass) ag::sum(ag::matmul(a, b) * g).backward();
    return b.grad().to_vector();
  };
  const auto one = gradient(1), two = gradient(2);
  const auto av = a.to_vector(), gv = g.to_vector();
  // Where the kernel pays (dgemm_tn_pays: it runs, on an AMD processor where OpenBLAS runs its
  // AVX-512 kernels), matmul must have taken it: its gradient is then, bit for bit, twice the
  // kernel's own product (the second pass adds x to x, which is exact). Elsewhere matmul uses
  // OpenBLAS.
  const bool kernel = ag::detail::dgemm_tn_pays(d, h, n);
  ASSERT_EQ(kernel, ag::detail::dgemm_tn_pays(3072, 100, 200))
      << "the test's shape must take the kernel wherever cifar's Xᵀ·dH does";
  std::vector<double> direct(static_cast<std::size_t>(d * h));
  if (kernel) {
    ASSERT_TRUE(dgemm_tn(d, h, n, 1.0, av.data(), d, gv.data(), h, 0.0, direct.data(), h));
  }
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < h; ++j) {
      long double want = 0, size = 0;
      for (int64_t k = 0; k < n; ++k) {
        want += static_cast<long double>(av[k * d + i]) * gv[k * h + j];
        size += std::abs(static_cast<long double>(av[k * d + i]) * gv[k * h + j]);
      }
      const auto at = static_cast<std::size_t>(i * h + j);
      const double tolerance = 1e-14 * static_cast<double>(size + 1);
      ASSERT_NEAR(one[at], static_cast<double>(2 * want), tolerance)
          << "dL/db[" << i << ", " << j << "]";
      if (kernel) {
        ASSERT_EQ(one[at], 2 * direct[at]) << "dL/db[" << i << ", " << j << "] not by the kernel";
        ASSERT_EQ(two[at], one[at]) << "dL/db[" << i << ", " << j << "], two threads";
      } else {  // OpenBLAS split by rows may round differently
        ASSERT_NEAR(two[at], one[at], tolerance) << "dL/db[" << i << ", " << j << "], two threads";
      }
    }
}

}  // namespace
