// bench_step: what a training step of the two-layer classifier costs, and where it goes.
//
//   step/<config>/<dtype>      zero_grad + TwoLayerNet::loss (with L2) + backward()
//   step+sgd/<config>/<dtype>  the same followed by a Nesterov SGD step (what the trainer does)
//   step+adam/<config>/<dtype> the same followed by an Adam step (the example's default)
//   update/<sgd|adam>/<config>/<dtype>  the optimizer's step alone, on the gradients of one step
//   op/<op>/<fwd|bwd>/<config>/<dtype>  one op's forward, or its backward closure alone, at
//                              that config's shapes
//   alloc/<config>/<dtype>     fails unless a warm step takes no tensor storage from the system
//                              and calls operator new not once
//
// Counters: GFLOP/s is 4·N·D·H per step (X·W1 forward and Xᵀ·dH backward, the two products that
// dominate) over wall time; storage_allocs/step counts blocks the caching allocator had to get
// from the system (ag::allocator_stats) after warm-up, news/step every operator new.
//
//   ./build/perf/bench/bench_step --benchmark_filter='^step/' [--threads=2]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/autograd.h"
#include "nn/optim.h"
#include "nn/two_layer_net.h"
#include "tests/operator_new_counter.h"

using ag::test::operator_new_calls;  // every operator new in the process

namespace {

struct Config {
  const char* name;
  int64_t N, D, H, C;  // batch, input features, hidden units, classes
};

// The sizes the peers were measured on: CS231n's toy model, CIFAR-10 and Fashion-MNIST batches,
// and one large enough to be bound by the matrix products alone.
constexpr Config kConfigs[] = {{"toy", 5, 4, 10, 3},
                               {"cifar", 200, 3072, 100, 10},
                               {"fashion", 128, 784, 512, 10},
                               {"big", 1024, 784, 2048, 10}};
constexpr double kReg = 1e-5;
// Steps before measuring: they fill the allocator's caches and let the lists that hold large free
// blocks reach their length (they grow during the first four steps, optimizer updates included).
constexpr int kWarmupSteps = 6;

double step_flops(const Config& c) {
  return 4.0 * double(c.N) * double(c.D) * double(c.H);
}

// A model and one batch of random data.
struct Problem {
  Problem(const Config& c, ag::DType dtype)
      : gen(0),
        model(c.D, c.H, c.C, gen, {.dtype = dtype}),
        X(ag::randn({c.N, c.D}, gen, 1.0, dtype)),
        labels(static_cast<std::size_t>(c.N)) {
    for (int32_t& y : labels) y = static_cast<int32_t>(gen.below(uint64_t(c.C)));
  }

  void step() {
    model.zero_grad();
    const ag::Tensor loss = model.loss(X, labels, kReg);
    loss.backward();
    benchmark::DoNotOptimize(loss.impl().get());
  }

  ag::Generator gen;
  nn::TwoLayerNet model;
  ag::Tensor X;
  std::vector<int32_t> labels;
};

void set_counters(benchmark::State& state, const Config& c, const ag::AllocatorStats& before,
                  uint64_t news_before) {
  // Both read before the first counter is set: setting one allocates.
  const uint64_t news_after = operator_new_calls.load();
  const uint64_t system_allocations = ag::allocator_stats().system_allocations;
  const double steps = double(state.iterations());
  state.counters["GFLOP/s"] =
      benchmark::Counter(step_flops(c) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["storage_allocs/step"] =
      double(system_allocations - before.system_allocations) / steps;
  state.counters["news/step"] = double(news_after - news_before) / steps;
}

enum class Update { None, SGD, Adam };

void BM_Step(benchmark::State& state, Config c, ag::DType dtype, Update update) {
  Problem p(c, dtype);
  nn::SGD sgd(p.model.parameters(), {.lr = 1e-3, .momentum = 0.9, .nesterov = true});
  nn::Adam adam(p.model.parameters(), {.lr = 1e-4});
  auto train_step = [&] {
    p.step();
    if (update == Update::SGD) sgd.step();
    if (update == Update::Adam) adam.step();
  };
  for (int i = 0; i < kWarmupSteps; ++i) train_step();
  const ag::AllocatorStats before = ag::allocator_stats();
  const uint64_t news_before = operator_new_calls.load();
  for (auto _ : state) train_step();
  set_counters(state, c, before, news_before);
}

// The optimizer's step alone: one training step leaves the gradients, then only step() is timed
// (the parameters move a little each time; the gradients stay).
void BM_Update(benchmark::State& state, Config c, ag::DType dtype, Update update) {
  Problem p(c, dtype);
  p.step();
  auto run = [&](nn::Optimizer& optimizer) {  // only the one measured holds its state arrays
    for (auto _ : state) optimizer.step();
  };
  if (update == Update::SGD) {
    nn::SGD sgd(p.model.parameters(), {.lr = 1e-6, .momentum = 0.9, .nesterov = true});
    run(sgd);
  } else {
    nn::Adam adam(p.model.parameters(), {.lr = 1e-6});
    run(adam);
  }
  state.counters["parameters"] = double(c.D * c.H + c.H + c.H * c.C + c.C);
}

// Fails the run when a warm step takes storage from the system or calls operator new: after the
// first steps every tensor and graph node a step needs must come back out of the caches.
void BM_AllocCheck(benchmark::State& state, Config c, ag::DType dtype) {
  Problem p(c, dtype);
  for (int i = 0; i < kWarmupSteps; ++i) p.step();
  const ag::AllocatorStats before = ag::allocator_stats();
  const uint64_t news_before = operator_new_calls.load();
  for (auto _ : state) p.step();
  const ag::AllocatorStats after = ag::allocator_stats();
  const uint64_t news_after = operator_new_calls.load();
  set_counters(state, c, before, news_before);
  state.counters["cache_hits/step"] =
      double(after.cache_hits - before.cache_hits) / double(state.iterations());
  if (after.system_allocations != before.system_allocations)
    state.SkipWithError("a warm training step allocated tensor storage from the system");
  else if (news_after != news_before)
    state.SkipWithError("a warm training step called operator new");
}

// One op at the config's shapes: its forward, or (bwd) its recorded backward closure alone,
// called on a gradient of ones. Every input requires grad except the data X, as in training.
enum class Op { MatmulXW1, AddBias1, Relu, MatmulHW2, SoftmaxCE, L2W1 };
struct OpCase {
  const char* name;
  Op op;
};
constexpr OpCase kOps[] = {{"matmul_x_w1", Op::MatmulXW1},
                           {"add_bias_b1", Op::AddBias1},
                           {"relu", Op::Relu},
                           {"matmul_h_w2", Op::MatmulHW2},
                           {"softmax_cross_entropy", Op::SoftmaxCE},
                           {"l2_w1", Op::L2W1}};

void BM_Op(benchmark::State& state, Config c, ag::DType dtype, Op op, bool backward) {
  Problem p(c, dtype);
  nn::TwoLayerNet& m = p.model;
  const ag::Tensor hidden_in = ag::matmul(p.X, m.W1).detach().requires_grad_();
  const ag::Tensor hidden = ag::relu(hidden_in).detach().requires_grad_();
  const ag::Tensor scores = ag::matmul(hidden, m.W2).detach().requires_grad_();
  auto run = [&]() -> ag::Tensor {
    switch (op) {
      case Op::MatmulXW1:
        return ag::matmul(p.X, m.W1);
      case Op::AddBias1:
        return ag::add_bias(hidden_in, m.b1);
      case Op::Relu:
        return ag::relu(hidden_in);
      case Op::MatmulHW2:
        return ag::matmul(hidden, m.W2);
      case Op::SoftmaxCE:
        return ag::softmax_cross_entropy(scores, p.labels);
      case Op::L2W1:
        return ag::l2(m.W1);
    }
    return {};
  };
  const ag::Tensor out = run();
  const ag::Tensor g = ag::ones(out.shape(), out.dtype());
  for (auto _ : state) {
    if (backward) {
      const ag::TensorList grads = out.grad_fn()->backward(g);
      benchmark::DoNotOptimize(grads.data());
    } else {
      const ag::Tensor y = run();
      benchmark::DoNotOptimize(y.impl().get());
    }
  }
}

std::string dtype_suffix(ag::DType dtype) {
  return dtype == ag::DType::Float64 ? "float64" : "float32";
}

void register_all() {
  for (const ag::DType dtype : {ag::DType::Float32, ag::DType::Float64})
    for (const Config& c : kConfigs) {
      const std::string suffix = std::string(c.name) + "/" + dtype_suffix(dtype);
      for (const auto& [prefix, update] :
           {std::pair{"step/", Update::None}, std::pair{"step+sgd/", Update::SGD},
            std::pair{"step+adam/", Update::Adam}})
        benchmark::RegisterBenchmark((prefix + suffix).c_str(), BM_Step, c, dtype, update)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      for (const auto& [prefix, update] :
           {std::pair{"update/sgd/", Update::SGD}, std::pair{"update/adam/", Update::Adam}})
        benchmark::RegisterBenchmark((prefix + suffix).c_str(), BM_Update, c, dtype, update)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("alloc/" + suffix).c_str(), BM_AllocCheck, c, dtype)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  for (const ag::DType dtype : {ag::DType::Float32, ag::DType::Float64})
    for (const Config& c : kConfigs)
      for (const OpCase& o : kOps)
        for (const bool backward : {false, true})
          benchmark::RegisterBenchmark(
              ("op/" + std::string(o.name) + (backward ? "/bwd/" : "/fwd/") + c.name + "/" +
               dtype_suffix(dtype))
                  .c_str(),
              BM_Op, c, dtype, o.op, backward)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;  // --threads=N: the thread count for matrix products (ag::set_num_threads)
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--threads="))
      threads = std::atoi(argv[i] + 10);
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  ag::set_num_threads(threads);
  benchmark::AddCustomContext("ag_threads", std::to_string(threads));

  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
