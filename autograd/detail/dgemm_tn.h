// A double-precision product of our own for one shape OpenBLAS's AVX-512 kernels handle slowly
// on a Zen 4: C = Aᵀ·B with C tall and the sum short, as cifar's weight gradient Xᵀ·dH (3072×100,
// K = 200). Used by blas.cpp for the shapes dgemm_tn_pays() accepts; not public API.
#pragma once

#include <cstdint>

namespace ag::detail {

/// Whether gemm should take dgemm_tn for the whole product C[M, N] = Aᵀ·B (A stored [K, M]):
/// on AMD processors with AVX2 and FMA where OpenBLAS runs its AVX-512 kernels
/// (blas_runs_avx512_kernels), for the shapes where it measured faster than OpenBLAS
/// (dgemm_tn.cpp, docs/performance.md). Depends on the shape only, never on a part of it, so the
/// split over threads cannot change which code computes an element.
bool dgemm_tn_pays(int64_t M, int64_t N, int64_t K);

/// C = alpha · Aᵀ·B + beta · C on the calling thread, with A stored [K, M] (row stride lda), B
/// stored [K, N] (ldb) and C [M, N] (ldc). C is not read when beta is 0; A and B are read even
/// when alpha is 0 (unlike reference BLAS, a NaN there gives NaN). Each element is one chain of
/// fused multiply-adds over k in order, then alpha · sum + beta · C, so rows computed in any
/// parts give the same bits. Returns false, with C untouched, where it cannot run: no AVX2 and
/// FMA on this machine, or no memory for its packed copies of A and B (gemm then computes that
/// part with OpenBLAS, whose last bits may differ).
bool dgemm_tn(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
              const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

}  // namespace ag::detail
