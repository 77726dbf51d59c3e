// Memory that stays flat: 100,000 training steps of a small two-layer net keep the resident set
// within a few MB of what it was after warm-up (and, in the debug preset, LeakSanitizer finds
// nothing at exit), and a graph of 1,000,000 ops runs backward and is destroyed without
// overflowing the stack.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "autograd/autograd.h"
#include "nn/data.h"
#include "nn/optim.h"
#include "nn/trainer.h"
#include "nn/two_layer_net.h"

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// This process's resident set in bytes (/proc/self/statm: size, resident, ... in pages).
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

TEST(Memory, HundredThousandTrainingStepsKeepTheResidentSetFlat) {
  ag::set_num_threads(1);
  ag::Generator gen(0);
  const nn::Dataset train = nn::make_spiral(3, 100, 0.2, gen);  // 300 rows
  nn::TwoLayerNet model(2, 16, 3, gen);
  nn::SGD optimizer(model.parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  nn::TrainOptions options;
  options.batch_size = 3;  // 100 steps an epoch
  // 100,000 steps; a sanitizer build (some 25x slower here) runs 20,000, enough for
  // LeakSanitizer to see a leak per step at exit.
  options.epochs = kSanitized ? 200 : 1000;
  options.reg = 1e-3;
  options.keep_best = false;
  options.schedule = nn::LrSchedule::exponential(0.999);

  int64_t warm = 0, peak = 0;
  options.on_epoch = [&](const nn::EpochStats& e) {
    if (e.epoch == 100) warm = resident_bytes();  // after 10,000 steps
    if (e.epoch >= 100) peak = std::max(peak, resident_bytes());
  };
  const auto start = std::chrono::steady_clock::now();
  const nn::History history = nn::train(model, optimizer, train, nn::Dataset{}, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ASSERT_EQ(history.step_loss.size(), static_cast<std::size_t>(options.epochs) * 100);
  EXPECT_TRUE(std::isfinite(history.step_loss.back()));
  EXPECT_LT(history.step_loss.back(), history.step_loss.front());
  const double growth_mb = static_cast<double>(peak - warm) / (1 << 20);
  std::printf(
      "%zu steps in %.1f s; resident set %.1f MB after warm-up, %.1f MB at most "
      "(+%.2f MB)\n",
      history.step_loss.size(), seconds, static_cast<double>(warm) / (1 << 20),
      static_cast<double>(peak) / (1 << 20), growth_mb);
  // The history itself holds 100,000 doubles (0.8 MB, up to 1 MB with the vector's slack).
  if (kSanitized)
    std::printf(
        "(sanitizer build: its allocator quarantines freed memory, so the resident set "
        "is not checked; LeakSanitizer checks for leaks at exit)\n");
  else
    EXPECT_LT(growth_mb, 3.0) << "the resident set grew after warm-up";
}

TEST(Memory, MillionOpGraphRunsBackwardAndIsFreedWithoutRecursion) {
  // Sanitizer builds are some 10x slower and use more memory per op: a quarter of the chain
  // still proves that nothing recurses per op (a recursive destructor overflows at ~10^4..10^5).
  const int ops = kSanitized ? 250000 : 1000000;
  ag::Tensor x = ag::full({1}, 1.0, ag::DType::Float64).requires_grad_();
  std::weak_ptr<ag::Node> first;
  const auto start = std::chrono::steady_clock::now();
  {
    ag::Tensor h = ag::scale(x, 1.0 + 1e-7);
    first = h.grad_fn();
    for (int i = 1; i < ops; ++i) h = ag::scale(h, 1.0 + 1e-7);
    const ag::Tensor loss = ag::sum(h);
    loss.backward();
    const double expected = std::pow(1.0 + 1e-7, ops);
    EXPECT_NEAR(x.grad().item(), expected, 1e-9 * expected);
    EXPECT_FALSE(first.expired());
  }  // the million nodes are freed here
  EXPECT_TRUE(first.expired());
  EXPECT_EQ(x.impl().use_count(), 1);
  std::printf("%d ops: built, backward and freed in %.2f s\n", ops,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace
