// nn: TwoLayerNet's gradients, the optimisers against hand-computed updates, the schedules,
// the training driver (spiral, determinism, best-model keep) and checkpoint predictions.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"
#include "nn/data.h"
#include "nn/optim.h"
#include "nn/trainer.h"
#include "nn/two_layer_net.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;

nn::TwoLayerNet small_net(DType dtype = DType::Float64, uint64_t seed = 3) {
  ag::Generator gen(seed);
  return nn::TwoLayerNet(4, 6, 3, gen, {.stddev = 0.0, .dtype = dtype});
}

TEST(TwoLayerNet, ParametersAreNamedAsInTheExercise) {
  const nn::TwoLayerNet net = small_net();
  const nn::NamedTensors named = net.named_parameters();
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(named[0].first, "W1");
  EXPECT_EQ(named[1].first, "b1");
  EXPECT_EQ(named[2].first, "W2");
  EXPECT_EQ(named[3].first, "b2");
  EXPECT_EQ(named[0].second.shape(), (ag::Shape{4, 6}));
  EXPECT_EQ(named[3].second.shape(), (ag::Shape{3}));
  for (const auto& [name, p] : named) EXPECT_TRUE(p.requires_grad()) << name;
}

TEST(TwoLayerNet, HeInitialisationScalesTheFirstLayer) {
  ag::Generator gen(0);
  const nn::TwoLayerNet net(800, 400, 10, gen);
  const std::vector<double> w = net.W1.to_vector();
  double sq = 0.0;
  for (double v : w) sq += v * v;
  EXPECT_NEAR(std::sqrt(sq / double(w.size())), std::sqrt(2.0 / 800.0), 0.002);
  for (double b : net.b1.to_vector()) EXPECT_EQ(b, 0.0);
}

TEST(TwoLayerNet, FixedStdReproducesTheCs231nOption) {
  ag::Generator gen(0);
  const nn::TwoLayerNet net(500, 300, 10, gen, {.stddev = 1e-4});
  double sq = 0.0;
  for (double v : net.W2.to_vector()) sq += v * v;
  EXPECT_NEAR(std::sqrt(sq / 3000.0), 1e-4, 1e-5);
}

TEST(TwoLayerNet, LossGradientsPassGradcheckInFloat64) {
  const nn::TwoLayerNet net = small_net();
  ag::Generator gen(7);
  const ag::Tensor X = ag::randn({5, 4}, gen, 1.0, DType::Float64);
  const std::vector<int32_t> y = {0, 2, 1, 1, 0};
  // gradcheck hands in fresh copies; copy them into the net's parameters and compose its loss.
  const auto loss_of = [&](const std::vector<ag::Tensor>& p) {
    nn::TwoLayerNet probe = small_net();
    probe.W1 = p[0], probe.b1 = p[1], probe.W2 = p[2], probe.b2 = p[3];
    return probe.loss(X, y, 0.05);
  };
  const ag::GradcheckResult r =
      ag::gradcheck(loss_of, {net.W1, net.b1, net.W2, net.b2}, {.eps = 1e-6, .tolerance = 1e-7});
  EXPECT_TRUE(r.passed) << r.report();
}

TEST(TwoLayerNet, PredictIsTheArgmaxOfScores) {
  const nn::TwoLayerNet net = small_net();
  ag::Generator gen(1);
  const ag::Tensor X = ag::randn({7, 4}, gen, 1.0, DType::Float64);
  const std::vector<double> s = net.scores(X).to_vector();
  const std::vector<int32_t> predicted = net.predict(X);
  for (std::size_t n = 0; n < 7; ++n) {
    const auto row = s.begin() + std::ptrdiff_t(n * 3);
    EXPECT_EQ(predicted[n], std::max_element(row, row + 3) - row);
  }
}

// A 2-parameter problem: loss = sum(w * c) for a fixed c, so the gradient is c every step.
struct TwoParams {
  ag::Tensor w = ag::tensor({1.0, -2.0}, {2}, DType::Float64).requires_grad_();
  ag::Tensor c = ag::tensor({0.5, -3.0}, {2}, DType::Float64);
  void backward() const { ag::sum(w * c).backward(); }
};

TEST(SGD, PlainStepIsLrTimesGradient) {
  TwoParams p;
  nn::SGD opt({p.w}, {.lr = 0.1});
  opt.zero_grad();
  p.backward();
  opt.step();
  EXPECT_DOUBLE_EQ(p.w.to_vector()[0], 1.0 - 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(p.w.to_vector()[1], -2.0 + 0.1 * 3.0);
}

// backward() must refuse with a std::logic_error whose message holds every part.
void expect_refused(const ag::Tensor& loss, std::initializer_list<std::string_view> parts) {
  try {
    loss.backward();
    ADD_FAILURE() << "backward() ran";
  } catch (const std::logic_error& e) {
    for (const std::string_view part : parts)
      EXPECT_NE(std::string_view(e.what()).find(part), std::string_view::npos) << e.what();
  }
}

TEST(SGD, AStepBetweenForwardAndBackwardIsRefused) {
  // The classic slip: a step between the forward and backward() would make l2's backward use the
  // new weights with the old forward; the step moves the parameters' version on instead.
  TwoParams p;
  nn::SGD opt({p.w}, {.lr = 0.1, .momentum = 0.9});
  p.backward();
  opt.step();  // a first full step: the parameter now has a gradient
  opt.zero_grad();
  const ag::Tensor loss = ag::l2(p.w);  // dL/dw = 2w: l2's backward reads w
  opt.step();
  expect_refused(loss, {"'l2'", "modified in place"});
}

TEST(CopyRows, CountsAsAnInPlaceChangeOfTheBatch) {
  // A graph built on one batch must not run backward on the next one copied into the same tensor.
  const ag::Tensor data = ag::tensor({1, 2, 3, 4, 5, 6}, {3, 2});
  ag::Tensor batch;
  const std::vector<int64_t> first{0, 1}, second{2, 2};
  nn::copy_rows(data, first, batch);
  ag::Tensor W = ag::ones({2, 2}).requires_grad_();
  const ag::Tensor loss = ag::sum(ag::matmul(batch, W));
  nn::copy_rows(data, second, batch);
  expect_refused(loss, {"'matmul'", "input 0"});
}

// Enough rows for the copy to be split over two threads: each row lands where it belongs.
TEST(CopyRows, CopiesEveryRequestedRowInOrder) {
  const ag::test::ThreadCount two(2);
  constexpr int64_t N = 50000, D = 3, B = 30000;
  std::vector<double> values(N * D);
  std::iota(values.begin(), values.end(), 0.0);
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const ag::Tensor data = ag::tensor(values, {N, D}, dtype);
    std::vector<int64_t> rows(B);
    for (int64_t b = 0; b < B; ++b) rows[std::size_t(b)] = (b * 7919) % N;
    ag::Tensor batch;
    nn::copy_rows(data, rows, batch);
    ASSERT_EQ(batch.shape(), (ag::Shape{B, D}));
    const std::vector<double> got = batch.to_vector();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t d = 0; d < D; ++d)
        ASSERT_EQ(got[std::size_t(b * D + d)], double(rows[std::size_t(b)] * D + d))
            << "row " << b << ", feature " << d << ", " << ag::dtype_name(dtype);
  }
}

TEST(CopyRows, RefusesARowOutsideTheInputAndAnOutputSharingItsStorage) {
  const ag::Tensor data = ag::tensor({1, 2, 3, 4, 5, 6}, {3, 2});
  ag::Tensor batch;
  const std::vector<int64_t> past_the_end{0, 3}, negative{-1};
  const auto past = ag::test::thrown_message<std::out_of_range>(
      [&] { nn::copy_rows(data, past_the_end, batch); });
  ASSERT_TRUE(past.has_value());
  EXPECT_TRUE(ag::test::contains(*past, "row 3 (at position 1) is outside the 3 rows"));
  EXPECT_THROW(nn::copy_rows(data, negative, batch), std::out_of_range);

  ag::Tensor same = data;  // copying rows of a tensor into itself would read what it overwrote
  const std::vector<int64_t> all{2, 1, 0};
  const auto shared =
      ag::test::thrown_message<std::invalid_argument>([&] { nn::copy_rows(data, all, same); });
  ASSERT_TRUE(shared.has_value());
  EXPECT_TRUE(ag::test::contains(*shared, "shares its storage"));
  EXPECT_EQ(data.to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST(Standardizer, ApplyCountsAsAnInPlaceChange) {
  nn::Dataset data;
  data.x = ag::tensor({1, 2, 3, 5}, {2, 2});
  data.y = {0, 1};
  data.num_classes = 2;
  const nn::Standardizer s = nn::Standardizer::fit(data);
  const uint64_t before = data.x.version();
  s.apply(data);
  EXPECT_EQ(data.x.version(), before + 1);
}

TEST(SGD, MomentumMatchesHandComputedUpdates) {
  TwoParams p;
  nn::SGD opt({p.w}, {.lr = 0.1, .momentum = 0.9});
  double w = 1.0, v = 0.0;
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    p.backward();
    opt.step();
    v = 0.9 * v + 0.5;
    w -= 0.1 * v;
    EXPECT_NEAR(p.w.to_vector()[0], w, 1e-15) << "step " << step;
  }
}

TEST(SGD, NesterovMatchesHandComputedUpdates) {
  TwoParams p;
  nn::SGD opt({p.w}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  double w = -2.0, v = 0.0;
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    p.backward();
    opt.step();
    v = 0.9 * v - 3.0;
    w -= 0.1 * (-3.0 + 0.9 * v);
    EXPECT_NEAR(p.w.to_vector()[1], w, 1e-15) << "step " << step;
  }
}

TEST(Adam, MatchesHandComputedUpdates) {
  TwoParams p;
  nn::Adam opt({p.w}, {.lr = 0.01});
  double w = 1.0, m = 0.0, v = 0.0;
  const double g = 0.5;
  for (int t = 1; t <= 3; ++t) {
    opt.zero_grad();
    p.backward();
    opt.step();
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    w -= 0.01 * (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.999, t))) + 1e-8);
    EXPECT_NEAR(p.w.to_vector()[0], w, 1e-12) << "step " << t;
  }
}

// Long enough for the vectorised loop (of the clone this machine runs) and the split over two
// threads, with an odd tail; every element against the update computed here in double.
TEST(Adam, EveryElementOfALargeParameterMatchesTheFormulaInBothDtypes) {
  const ag::test::ThreadCount two(2);
  constexpr int64_t n = 70001;
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    std::vector<double> w0(n), c(n);
    for (int64_t i = 0; i < n; ++i) {
      w0[std::size_t(i)] = std::sin(0.37 * double(i));
      c[std::size_t(i)] = std::cos(0.11 * double(i)) * (i % 7 == 0 ? 1e-4 : 1.0);
    }
    ag::Tensor w = ag::tensor(w0, {n}, dtype).requires_grad_();
    const ag::Tensor coef = ag::tensor(c, {n}, dtype);
    nn::Adam opt({w}, {.lr = 0.01});
    std::vector<double> expect = w0, m(n), v(n);
    for (int t = 1; t <= 2; ++t) {
      opt.zero_grad();
      ag::sum(w * coef).backward();  // dL/dw = coef
      opt.step();
      for (std::size_t i = 0; i < std::size_t(n); ++i) {
        m[i] = 0.9 * m[i] + 0.1 * c[i];
        v[i] = 0.999 * v[i] + 0.001 * c[i] * c[i];
        expect[i] -= 0.01 * (m[i] / (1 - std::pow(0.9, t))) /
                     (std::sqrt(v[i] / (1 - std::pow(0.999, t))) + 1e-8);
      }
    }
    const double tolerance = dtype == DType::Float32 ? 1e-6 : 1e-13;  // |w| <= 1.02: absolute
    EXPECT_TRUE(ag::test::all_close(w.to_vector(), expect, tolerance, 1.0))
        << ag::dtype_name(dtype);
  }
}

TEST(Optimizer, ZeroGradZeroesEveryParameter) {
  TwoParams p;
  nn::SGD opt({p.w}, {.lr = 0.1});
  p.backward();
  opt.zero_grad();
  for (double g : p.w.grad().to_vector()) EXPECT_EQ(g, 0.0);
}

TEST(Optimizer, RejectsANonLeafParameter) {
  TwoParams p;
  EXPECT_THROW(nn::SGD({p.w * 2.0}, {.lr = 0.1}), std::invalid_argument);
  EXPECT_THROW(nn::SGD({p.w}, {.lr = -1.0}), std::invalid_argument);
}

TEST(LrSchedule, ExponentialStepAndCosine) {
  EXPECT_DOUBLE_EQ(nn::LrSchedule{}.at(0.1, 5), 0.1);
  EXPECT_DOUBLE_EQ(nn::LrSchedule::exponential(0.95).at(1.0, 2), 0.95 * 0.95);
  const nn::LrSchedule step = nn::LrSchedule::step(3, 0.1);
  EXPECT_DOUBLE_EQ(step.at(1.0, 2), 1.0);
  EXPECT_NEAR(step.at(1.0, 3), 0.1, 1e-15);
  EXPECT_NEAR(step.at(1.0, 7), 0.01, 1e-15);
  const nn::LrSchedule cosine = nn::LrSchedule::cosine(10, 0.0);
  EXPECT_DOUBLE_EQ(cosine.at(1.0, 0), 1.0);
  EXPECT_NEAR(cosine.at(1.0, 5), 0.5, 1e-15);
  EXPECT_NEAR(cosine.at(1.0, 10), 0.0, 1e-15);
}

nn::History train_spiral(nn::TwoLayerNet& net, uint64_t seed, int64_t epochs = 150) {
  ag::Generator data_gen(0);
  const nn::Dataset spiral = nn::make_spiral(3, 100, 0.2, data_gen);
  nn::SGD opt(net.parameters(), {.lr = 0.3, .momentum = 0.9, .nesterov = true});
  nn::TrainOptions options;
  options.epochs = epochs;
  options.batch_size = 100;
  options.reg = 1e-3;
  options.seed = seed;
  return nn::train(net, opt, spiral, spiral, options);
}

TEST(Train, SpiralReachesHighTrainingAccuracy) {
  ag::Generator gen(0);
  nn::TwoLayerNet net(2, 100, 3, gen);
  const nn::History h = train_spiral(net, 0);
  ASSERT_EQ(h.epochs.size(), 150u);
  EXPECT_EQ(h.step_loss.size(), 150u * 3u);
  ag::Generator data_gen(0);
  EXPECT_GE(nn::accuracy(net, nn::make_spiral(3, 100, 0.2, data_gen)), 0.95);
  EXPECT_LT(h.epochs.back().loss, h.epochs.front().loss);
}

TEST(Train, SameSeedGivesIdenticalHistory) {
  ag::Generator gen_a(5), gen_b(5);
  nn::TwoLayerNet a(2, 20, 3, gen_a), b(2, 20, 3, gen_b);
  const nn::History ha = train_spiral(a, 11, 5), hb = train_spiral(b, 11, 5);
  EXPECT_EQ(ha.step_loss, hb.step_loss);
  EXPECT_EQ(a.W1.to_vector(), b.W1.to_vector());
  ag::Generator gen_c(5);
  nn::TwoLayerNet c(2, 20, 3, gen_c);
  EXPECT_NE(train_spiral(c, 12, 5).step_loss, ha.step_loss);  // another shuffling seed
}

TEST(Train, KeepsTheBestEpochsParameters) {
  ag::Generator gen(2);
  nn::TwoLayerNet net(2, 30, 3, gen);
  const nn::History h = train_spiral(net, 0, 20);
  ASSERT_GE(h.best_epoch, 1);
  EXPECT_DOUBLE_EQ(h.epochs[std::size_t(h.best_epoch - 1)].val_accuracy, h.best_val_accuracy);
  for (const nn::EpochStats& e : h.epochs) EXPECT_LE(e.val_accuracy, h.best_val_accuracy);
  ag::Generator data_gen(0);
  EXPECT_DOUBLE_EQ(nn::accuracy(net, nn::make_spiral(3, 100, 0.2, data_gen)), h.best_val_accuracy);
}

TEST(Train, SamplingWithReplacementRunsNOverBatchSteps) {
  ag::Generator gen(0), data_gen(0);
  nn::TwoLayerNet net(2, 10, 3, gen);
  const nn::Dataset spiral = nn::make_spiral(3, 100, 0.2, data_gen);
  nn::SGD opt(net.parameters(), {.lr = 0.1});
  nn::TrainOptions options;
  options.epochs = 2;
  options.batch_size = 64;
  options.sample_with_replacement = true;
  EXPECT_EQ(nn::train(net, opt, spiral, spiral, options).step_loss.size(), 2u * 5u);
}

TEST(Train, RejectsDataOfTheWrongWidth) {
  ag::Generator gen(0), data_gen(0);
  nn::TwoLayerNet net(3, 10, 3, gen);
  const nn::Dataset spiral = nn::make_spiral(3, 10, 0.2, data_gen);
  nn::SGD opt(net.parameters(), {.lr = 0.1});
  EXPECT_THROW(nn::train(net, opt, spiral, spiral, {}), std::invalid_argument);
}

// Runs train on a copy of the spiral changed by `edit`, and returns what it throws ("" if nothing).
template <class Edit>
std::string train_error(Edit edit, double lr = 0.1) {
  ag::Generator gen(0), data_gen(0);
  nn::TwoLayerNet net(2, 10, 3, gen);
  nn::Dataset spiral = nn::make_spiral(3, 20, 0.2, data_gen);
  nn::Dataset val = spiral.head(10);
  edit(spiral, val);
  nn::SGD opt(net.parameters(), {.lr = lr});
  nn::TrainOptions options;
  options.epochs = 3;
  options.batch_size = 10;
  try {
    nn::train(net, opt, spiral, val, options);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Train, NaNOrInfInTheInputsIsRefusedNamingTheSetRowAndFeature) {
  const std::string nan = train_error(
      [](nn::Dataset& train, nn::Dataset&) { train.x.data<float>()[2 * 17 + 1] = std::nanf(""); });
  EXPECT_NE(nan.find("training set holds nan at row 17, feature 1"), std::string::npos) << nan;
  const std::string inf =
      train_error([](nn::Dataset&, nn::Dataset& val) { val.x.data<float>()[2 * 4] = -INFINITY; });
  EXPECT_NE(inf.find("validation set holds -inf at row 4, feature 0"), std::string::npos) << inf;
}

TEST(Train, LabelOutsideTheModelsClassesIsRefused) {
  const std::string e = train_error([](nn::Dataset& train, nn::Dataset&) { train.y[7] = 3; });
  EXPECT_NE(e.find("label of row 7 is 3, outside the model's classes [0, 3)"), std::string::npos)
      << e;
}

TEST(Train, LabelCountDifferentFromTheRowsIsRefused) {
  // One label short: train would have read past the end of y.
  const std::string e = train_error([](nn::Dataset& train, nn::Dataset&) { train.y.pop_back(); });
  EXPECT_NE(e.find("training set has 59 labels for 60 rows"), std::string::npos) << e;
}

TEST(Train, DivergingLossStopsWithAClearError) {
  const std::string e = train_error([](nn::Dataset&, nn::Dataset&) {}, 1e30);
  EXPECT_NE(e.find("train: the loss became"), std::string::npos) << e;
  EXPECT_NE(e.find("diverged"), std::string::npos) << e;
  EXPECT_NE(e.find("AnomalyGuard"), std::string::npos) << e;
}

TEST(Checkpoint, ReloadedModelPredictsIdentically) {
  ag::Generator gen(4), data_gen(1);
  nn::TwoLayerNet net(2, 16, 3, gen);
  const nn::Dataset spiral = nn::make_spiral(3, 50, 0.2, data_gen);
  train_spiral(net, 0, 5);
  const auto path = std::filesystem::temp_directory_path() / "autograd_test_nn_model.safetensors";
  nn::save(net, path);
  ag::Generator other(99);
  nn::TwoLayerNet loaded(2, 16, 3, other);
  nn::load(loaded, path);
  std::filesystem::remove(path);
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_EQ(net.parameters()[i].to_vector(), loaded.parameters()[i].to_vector());
  EXPECT_EQ(net.predict(spiral.x), loaded.predict(spiral.x));
}

// With Fashion-MNIST installed (CI installs it): one epoch on 10k images beats 0.80 on 2k.
TEST(FashionMnist, OneEpochOnTenThousandImagesBeatsEightyPercent) {
  const char* env = std::getenv("FASHION_MNIST_DIR");
  const std::filesystem::path dir = env && *env ? env : "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "train-labels-idx1-ubyte.gz") &&
      !std::filesystem::exists(dir / "train-labels-idx1-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << dir
                 << " (apt-get install dataset-fashion-mnist)";
  nn::Dataset train = nn::load_idx_dir(dir, "train").head(10000);
  nn::Dataset test = nn::load_idx_dir(dir, "test").head(2000);
  const nn::Standardizer norm = nn::Standardizer::fit(train);
  norm.apply(train);
  norm.apply(test);
  ag::Generator gen(0);
  nn::TwoLayerNet net(784, 256, 10, gen);
  nn::SGD opt(net.parameters(), {.lr = 0.05, .momentum = 0.9, .nesterov = true});
  nn::TrainOptions options;
  options.epochs = 1;
  options.batch_size = 128;
  nn::train(net, opt, train, test, options);
  EXPECT_GT(nn::accuracy(net, test), 0.80);
}

}  // namespace
