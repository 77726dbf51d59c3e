// The performance machinery keeps results and memory behaviour fixed: parallel_for covers every
// index once, products and reductions split over threads give the results one thread gives,
// and a warm training step takes no tensor storage from the system (docs/performance.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "autograd/autograd.h"
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
  ag::Generator gen(3);
  const Tensor a = ag::randn({300, 257}, gen);  // large enough to be split over threads
  const Tensor b = ag::randn({257, 129}, gen);
  auto run = [&](int threads) {
    const ThreadCount count(threads);
    const Tensor a1 = a.clone().requires_grad_(), b1 = b.clone().requires_grad_();
    const Tensor y = ag::matmul(a1, b1);
    ag::sum(y * y).backward();
    return std::vector<std::vector<double>>{y.to_vector(), a1.grad().to_vector(),
                                            b1.grad().to_vector()};
  };
  const auto one = run(1), two = run(2);
  for (std::size_t k = 0; k < one.size(); ++k)
    for (std::size_t i = 0; i < one[k].size(); ++i)
      ASSERT_NEAR(two[k][i], one[k][i], 1e-4 * (1.0 + std::abs(one[k][i])))
          << "tensor " << k << ", element " << i;
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
