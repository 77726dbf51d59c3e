// No hidden global state: two threads each training a model of their own at the same time get the
// results, bit for bit, that the same two trainings give one after the other, while a third
// thread holds NoGradGuard and AnomalyGuard (both are per thread). The tsan preset runs this under
// ThreadSanitizer; OpenBLAS is not built with it, so matrix products stay on the calling thread
// (ag::set_num_threads(1)) and tests/tsan.supp silences reports from inside libopenblas only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"
#include "nn/data.h"
#include "nn/optim.h"
#include "nn/trainer.h"
#include "nn/two_layer_net.h"

namespace {

namespace fs = std::filesystem;

struct Training {
  std::vector<double> step_loss;
  std::vector<std::vector<double>> parameters;  // after training
  std::vector<std::vector<double>> reloaded;    // read back from the checkpoint it saved
};

// Trains one model from `seed`: its own data, initialisation, shuffling and checkpoint file.
Training train_one(uint64_t seed, bool adam) {
  ag::Generator gen(seed);
  nn::Dataset train = nn::make_spiral(3, 60, 0.2, gen);
  nn::Dataset val = nn::make_spiral(3, 20, 0.2, gen);
  const nn::Standardizer norm = nn::Standardizer::fit(train);
  norm.apply(train);
  norm.apply(val);
  nn::TwoLayerNet model(2, 32, 3, gen);
  std::unique_ptr<nn::Optimizer> optimizer;
  if (adam)
    optimizer = std::make_unique<nn::Adam>(model.parameters(), nn::AdamOptions{.lr = 1e-2});
  else
    optimizer =
        std::make_unique<nn::SGD>(model.parameters(), nn::SGDOptions{.lr = 0.3, .momentum = 0.9});
  nn::TrainOptions options;
  options.epochs = 60;
  options.batch_size = 16;
  options.reg = 1e-3;
  options.seed = seed;
  options.schedule = nn::LrSchedule::cosine(options.epochs);
  Training run;
  run.step_loss = nn::train(model, *optimizer, train, val, options).step_loss;
  for (const ag::Tensor& p : model.parameters()) run.parameters.push_back(p.to_vector());

  const fs::path file = fs::temp_directory_path() / ("ag_threads_" + std::to_string(::getpid()) +
                                                     "_" + std::to_string(seed) + ".safetensors");
  nn::save(model, file);
  ag::Generator other(seed + 100);
  nn::TwoLayerNet reloaded(2, 32, 3, other);
  nn::load(reloaded, file);
  fs::remove(file);
  for (const ag::Tensor& p : reloaded.parameters()) run.reloaded.push_back(p.to_vector());
  return run;
}

void expect_same(const Training& a, const Training& b, const char* which) {
  EXPECT_EQ(a.step_loss, b.step_loss) << which << ": step losses differ";
  EXPECT_EQ(a.parameters, b.parameters) << which << ": parameters differ";
  EXPECT_EQ(a.reloaded, a.parameters) << which << ": the checkpoint differs from the model";
}

TEST(Threads, TwoModelsTrainedAtOnceMatchTrainingThemOneAfterTheOther) {
  ag::set_num_threads(1);
  const Training sgd_alone = train_one(1, false);
  const Training adam_alone = train_one(2, true);
  ASSERT_NE(sgd_alone.step_loss, adam_alone.step_loss);

  Training sgd_together, adam_together;
  {
    // This thread's modes must not leak into the workers.
    ag::NoGradGuard no_grad;
    ag::AnomalyGuard anomaly;
    std::thread first([&] { sgd_together = train_one(1, false); });
    std::thread second([&] { adam_together = train_one(2, true); });
    first.join();
    second.join();
  }
  expect_same(sgd_together, sgd_alone, "SGD");
  expect_same(adam_together, adam_alone, "Adam");
}

TEST(Threads, ManyThreadsBuildAndFreeGraphsAtOnce) {
  // Each thread frees tensors that its own allocator cache hands back; tensors made in one thread
  // and released in another (the results below) go through the same per-thread caches.
  ag::set_num_threads(1);
  constexpr int kThreads = 4;
  std::vector<ag::Tensor> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t, &results] {
      ag::Generator gen(static_cast<uint64_t>(t));
      ag::Tensor w = ag::randn({8, 8}, gen).requires_grad_();
      for (int i = 0; i < 200; ++i) {
        const ag::Tensor x = ag::randn({4, 8}, gen);
        ag::l2(ag::relu(ag::matmul(x, w))).backward();
      }
      results[static_cast<std::size_t>(t)] = w.grad().clone();
    });
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    // The same computation on this thread gives the same gradient.
    ag::Generator gen(static_cast<uint64_t>(t));
    ag::Tensor w = ag::randn({8, 8}, gen).requires_grad_();
    for (int i = 0; i < 200; ++i) {
      const ag::Tensor x = ag::randn({4, 8}, gen);
      ag::l2(ag::relu(ag::matmul(x, w))).backward();
    }
    EXPECT_EQ(w.grad().to_vector(), results[static_cast<std::size_t>(t)].to_vector())
        << "thread " << t;
  }
  results.clear();  // freed on this thread
}

}  // namespace
