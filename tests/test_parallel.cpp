// The performance machinery keeps results and memory behaviour fixed: parallel_for covers every
// index once, products and reductions split over threads give the results one thread gives,
// and a warm training step takes no tensor storage from the system (docs/performance.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/detail/dispatch.h"
#include "nn/two_layer_net.h"
#include "tests/grad_test_util.h"

namespace {

using ag::Tensor;

using ag::test::ThreadCount;

TEST(Parallel, ParallelForCoversEveryIndexExactlyOnce) {
  // Two threads, and more threads than the machine has cores (then nobody spins: every wait is a
  // sleep), many times over so that the workers are caught both spinning and asleep.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const int threads : {2, cores + 2}) {
    const ThreadCount count(threads);
    for (int run = 0; run < 50; ++run) {
      std::vector<int> hits(100'003, 0);
      ag::parallel_for(static_cast<int64_t>(hits.size()), 1000, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) ++hits[static_cast<std::size_t>(i)];
      });
      for (std::size_t i = 0; i < hits.size(); ++i)
        ASSERT_EQ(hits[i], 1) << "index " << i << ", " << threads << " threads, run " << run;
      if (run % 10 == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // let them sleep
    }
  }
}

TEST(Parallel, MatmulAndItsGradientsMatchOneThread) {
  // Large enough to be split over threads: 300x257 by 257x129 by rows (and dL/db by columns);
  // 100x10 by 10x2000 by rows although C is wider than tall (a short sum, K = 10), its dL/da
  // along K and its dL/db by columns.
  for (const auto& [a_shape, b_shape] : {std::pair<ag::Shape, ag::Shape>{{300, 257}, {257, 129}},
                                         std::pair<ag::Shape, ag::Shape>{{100, 10}, {10, 2000}}}) {
    ag::Generator gen(3);
    const Tensor a = ag::randn(a_shape, gen), b = ag::randn(b_shape, gen);
    auto run = [&](int threads) {
      const ThreadCount count(threads);
      const Tensor a1 = a.clone().requires_grad_(), b1 = b.clone().requires_grad_();
      const Tensor y = ag::matmul(a1, b1);
      ag::sum(y * y).backward();
      return std::vector<std::vector<double>>{y.to_vector(), a1.grad().to_vector(),
                                              b1.grad().to_vector()};
    };
    // The parts may round differently from one whole call (OpenBLAS's Zen kernels do), so the
    // two agree to rounding at the tensor's scale: an element that cancels to 0.2 from terms in
    // the hundreds can differ in its fourth digit. A part missing or computed twice is off by
    // the size of the terms.
    const auto one = run(1), two = run(2);
    for (std::size_t k = 0; k < one.size(); ++k)
      EXPECT_TRUE(ag::test::all_close(two[k], one[k], 1e-5, ag::test::max_abs(one[k])))
          << "tensor " << k << ", a " << ag::shape_str(a_shape);
  }
}

// A product whose sum is long next to its result (K at least four times C's larger side, and
// large enough to be split) is cut along K into two fixed halves. Each of the three products
// matmul makes can take that path: the forward (K = d), dL/dA (K = h) and dL/dB (K = n), writing
// a new gradient and, on the second pass, adding into the held one. All must be right on any
// thread count. One, two and three threads make the same BLAS calls for it, so give the same bits
// where its inputs are the same too: y of the first case (the second case's other two products
// are split by columns, whose bits depend on the BLAS's kernels; the next test checks all four
// transposes of the path itself). Four threads cut each half by rows, and OpenBLAS's result for
// an element can then differ in its last bits, as with the split by rows or columns.
TEST(Parallel, LongSumProductsAreRightOnAnyThreadCount) {
  struct Case {
    int64_t n, d, h;        // a: [n, d], b: [d, h]
    std::size_t same_bits;  // how many of y, dL/da, dL/db must be the same bits (see above)
  };
  for (const Case c : {Case{40, 2000, 30, 1}, Case{24, 30, 2000, 0}, Case{2000, 30, 24, 0}}) {
    for (const ag::DType dtype : {ag::DType::Float32, ag::DType::Float64}) {
      const std::string what = std::to_string(c.n) + "x" + std::to_string(c.d) + " by " +
                               std::to_string(c.d) + "x" + std::to_string(c.h) + ", " +
                               ag::dtype_name(dtype);
      ag::Generator gen(7);
      const Tensor a = ag::randn({c.n, c.d}, gen, 1.0, dtype);
      const Tensor b = ag::randn({c.d, c.h}, gen, 1.0, dtype);
      auto run = [&](int threads) {
        const ThreadCount count(threads);
        const Tensor a1 = a.clone().requires_grad_(), b1 = b.clone().requires_grad_();
        std::vector<double> y;
        for (int pass = 0; pass < 2; ++pass) {  // the second pass adds into the held gradients
          const Tensor out = ag::matmul(a1, b1);
          ag::sum(out * out).backward();
          y = out.to_vector();
        }
        return std::vector<std::vector<double>>{y, a1.grad().to_vector(), b1.grad().to_vector()};
      };
      // In double: y = a·b, and after two passes of sum(y²) dL/da = 4 y·bᵀ, dL/db = 4 aᵀ·y.
      const std::vector<double> av = a.to_vector(), bv = b.to_vector();
      const auto at = [](int64_t row, int64_t col, int64_t cols) {
        return static_cast<std::size_t>(row * cols + col);
      };
      std::vector<double> y(at(c.n, 0, c.h)), da(at(c.n, 0, c.d)), db(at(c.d, 0, c.h));
      for (int64_t i = 0; i < c.n; ++i)
        for (int64_t k = 0; k < c.d; ++k)
          for (int64_t j = 0; j < c.h; ++j)
            y[at(i, j, c.h)] += av[at(i, k, c.d)] * bv[at(k, j, c.h)];
      for (int64_t i = 0; i < c.n; ++i)
        for (int64_t k = 0; k < c.d; ++k)
          for (int64_t j = 0; j < c.h; ++j) {
            da[at(i, k, c.d)] += 4 * y[at(i, j, c.h)] * bv[at(k, j, c.h)];
            db[at(k, j, c.h)] += 4 * av[at(i, k, c.d)] * y[at(i, j, c.h)];
          }
      const std::vector<std::vector<double>> expected{y, da, db};
      const double rtol = dtype == ag::DType::Float32 ? 1e-4 : 1e-11;
      std::vector<std::vector<double>> one;
      for (const int threads : {1, 2, 3, 4}) {
        const auto got = run(threads);
        for (std::size_t t = 0; t < got.size(); ++t)
          EXPECT_TRUE(
              ag::test::all_close(got[t], expected[t], rtol, ag::test::max_abs(expected[t])))
              << (t == 0   ? "y"
                  : t == 1 ? "dL/da"
                           : "dL/db")
              << " of " << what << ", " << threads << " threads";
        if (threads == 1) one = got;
        if (threads == 2 || threads == 3) {
          for (std::size_t t = 0; t < c.same_bits; ++t)
            EXPECT_EQ(got[t], one[t])
                << "tensor " << t << " of " << what << ", " << threads << " threads";
        }
      }
    }
  }
}

// The path itself, for each pair of transposes and both dtypes, writing (beta = 0) and adding
// (beta = 1): one, two and three threads make the same two BLAS calls and give the same bits.
TEST(Parallel, LongSumSplitGivesTheSameBitsOnOneTwoAndThreeThreads) {
  const int64_t M = 24, N = 30, K = 2000;  // 1.44 M multiply-adds, K >= 4 * max(M, N)
  auto check = [&]<class T>(bool trans_a, bool trans_b, T beta) {
    std::mt19937 gen(11);
    std::normal_distribution<double> normal;
    std::vector<T> A(static_cast<std::size_t>(M * K)), B(static_cast<std::size_t>(K * N)),
        C0(static_cast<std::size_t>(M * N));
    for (std::vector<T>* v : {&A, &B, &C0})
      for (T& x : *v) x = static_cast<T>(normal(gen));
    auto product = [&](int threads) {
      const ThreadCount count(threads);
      std::vector<T> C = C0;
      ag::detail::gemm(trans_a, trans_b, M, N, K, T(1), A.data(), B.data(), beta, C.data());
      return C;
    };
    const std::vector<T> one = product(1);
    // Right, against a sum in long double: A is [M, K] or [K, M], B [K, N] or [N, K].
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        const auto at = static_cast<std::size_t>(i * N + j);
        long double want = static_cast<long double>(beta) * C0[at];
        long double size = 1 + std::abs(want);
        for (int64_t k = 0; k < K; ++k) {
          const long double term = static_cast<long double>(A[trans_a ? k * M + i : i * K + k]) *
                                   B[trans_b ? j * K + k : k * N + j];
          want += term;
          size += std::abs(term);
        }
        ASSERT_NEAR(one[at], static_cast<double>(want),
                    4 * std::numeric_limits<T>::epsilon() * static_cast<double>(size))
            << "C[" << i << ", " << j << "], trans_a " << trans_a << ", trans_b " << trans_b;
      }
    for (const int threads : {2, 3}) {
      const std::vector<T> got = product(threads);
      for (std::size_t i = 0; i < one.size(); ++i)
        ASSERT_EQ(std::memcmp(&got[i], &one[i], sizeof(T)), 0)
            << "C[" << i / N << ", " << i % N << "] on " << threads << " threads: " << got[i]
            << " against " << one[i] << " on one (trans_a " << trans_a << ", trans_b " << trans_b
            << ", beta " << beta << ")";
    }
  };
  for (const bool trans_a : {false, true})
    for (const bool trans_b : {false, true})
      for (const double beta : {0.0, 1.0}) {
        check.operator()<float>(trans_a, trans_b, static_cast<float>(beta));
        check.operator()<double>(trans_a, trans_b, beta);
      }
}

TEST(Parallel, L2IsBitForBitTheSameWithOneAndTwoThreads) {
  ag::Generator gen(4);
  const Tensor w = ag::randn({1000, 513}, gen);
  double one = 0.0, two = 0.0;
  {
    const ThreadCount count(1);
    one = ag::l2(w).item();
  }
  {
    const ThreadCount count(2);
    two = ag::l2(w).item();
  }
  EXPECT_EQ(one, two);
}

TEST(Allocator, WarmTrainingStepTakesNoStorageFromTheSystem) {
  ag::Generator gen(5);
  nn::TwoLayerNet model(64, 32, 5, gen);
  const Tensor X = ag::randn({16, 64}, gen);
  const std::vector<int32_t> y = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0};
  auto step = [&] {
    model.zero_grad();
    model.loss(X, y, 1e-3).backward();
  };
  step();
  step();
  const uint64_t before = ag::allocator_stats().system_allocations;
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(ag::allocator_stats().system_allocations, before);
}

}  // namespace
