// A warm training step, optimizer's update included, calls operator new not once, whatever its
// batch size: what a step makes comes from the library's per-thread caches (autograd/allocator.h,
// docs/performance.md's Memory). This test binary replaces every global operator new to count
// the calls (tests/operator_new_counter.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "autograd/autograd.h"
#include "nn/optim.h"
#include "nn/two_layer_net.h"
#include "tests/grad_test_util.h"
#include "tests/operator_new_counter.h"

namespace {

using ag::test::operator_new_calls;

TEST(Allocations, AWarmTrainingStepCallsOperatorNewNever) {
  for (const int threads : {1, 2}) {
    const ag::test::ThreadCount count(threads);
    ag::Generator gen(7);
    nn::TwoLayerNet model(300, 64, 10, gen);
    // 256 labels (1 KiB, kept for softmax cross-entropy's backward) are more than the small-object
    // pool takes, and the first product is large enough to be split over two threads.
    const ag::Tensor X = ag::randn({256, 300}, gen);
    std::vector<int32_t> y(256);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>(i % 10);
    nn::SGD sgd(model.parameters(), {.lr = 1e-3, .momentum = 0.9});
    nn::Adam adam(model.parameters(), {.lr = 1e-4});
    auto step = [&] {
      model.zero_grad();
      model.loss(X, y, 1e-3).backward();
      sgd.step();
      adam.step();
    };
    // Warm-up: the caches fill, and the lists that hold large free blocks reach their length
    // (four steps here).
    for (int i = 0; i < 6; ++i) step();
    const uint64_t before = operator_new_calls.load();
    for (int i = 0; i < 5; ++i) step();
    EXPECT_EQ(operator_new_calls.load() - before, 0u)
        << "operator new calls in five warm steps, " << threads << " thread(s)";
  }
}

}  // namespace
