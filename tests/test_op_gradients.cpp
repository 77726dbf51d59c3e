// Every op's backward, checked two ways: against central differences with ag::gradcheck (Float64,
// relative error below 1e-7, several shapes including the degenerate extents 1), and against
// gradients computed by hand for tiny cases, without gradcheck. Ends with the fused softmax-CE at
// extreme logits and a two-layer loss compared with a reference derived by hand in plain loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Shape;
using ag::Tensor;
using ag::test::all_close;
using ag::test::away_from_zero;
using ag::test::gradcheck_passes;
using ag::test::random_labels;
using ag::test::random_normal;

constexpr DType f64 = DType::Float64;

// A Float64 leaf that requires grad.
Tensor param(const std::vector<double>& values, const Shape& shape) {
  Tensor t = ag::tensor(values, shape, f64);
  t.requires_grad_();
  return t;
}

// ---- matmul ----

TEST(Matmul, GradientMatchesCentralDifferences) {
  struct Case {
    int64_t N, D, H;
  };
  // A generic case, then batch N = 1, one feature D = 1, hidden H = 1, and all three at once.
  for (const Case c : {Case{4, 3, 5}, Case{1, 3, 5}, Case{4, 1, 5}, Case{4, 3, 1}, Case{1, 1, 1}}) {
    SCOPED_TRACE(testing::Message() << "N=" << c.N << " D=" << c.D << " H=" << c.H);
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::matmul(in[0], in[1]); },
                                 {random_normal({c.N, c.D}, 1), random_normal({c.D, c.H}, 2)}));
  }
}

TEST(Matmul, GradientMatchesHandComputed2x2) {
  // L = Σ (A·B) ⊙ G, so dL/dA = G·Bᵀ and dL/dB = Aᵀ·G; all values exact in binary.
  Tensor a = param({1, 2, 3, 4}, {2, 2});
  Tensor b = param({5, 6, 7, 8}, {2, 2});
  const Tensor g = ag::tensor({1, -1, 2, 0.5}, {2, 2}, f64);
  const Tensor y = ag::matmul(a, b);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{19, 22, 43, 50}));
  ag::sum(ag::mul(y, g)).backward();
  // G·Bᵀ = [[1·5 - 1·6, 1·7 - 1·8], [2·5 + .5·6, 2·7 + .5·8]]
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{-1, -1, 13, 18}));
  // Aᵀ·G = [[1·1 + 3·2, 1·-1 + 3·.5], [2·1 + 4·2, 2·-1 + 4·.5]]
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{7, 0.5, 10, 0}));
}

TEST(Matmul, NonSquareGradientHasTheInputShapes) {
  Tensor a = param(std::vector<double>(6, 1.0), {2, 3});
  Tensor b = param(std::vector<double>(12, 1.0), {3, 4});
  ag::sum(ag::matmul(a, b)).backward();
  EXPECT_EQ(a.grad().shape(), (Shape{2, 3}));
  EXPECT_EQ(b.grad().shape(), (Shape{3, 4}));
  // dL/dA = 1·Bᵀ: each entry sums a row of B (4 ones); dL/dB = Aᵀ·1: each sums a column of A.
  EXPECT_EQ(a.grad().to_vector(), std::vector<double>(6, 4.0));
  EXPECT_EQ(b.grad().to_vector(), std::vector<double>(12, 2.0));
}

// ---- add_bias ----

TEST(AddBias, GradientMatchesCentralDifferences) {
  struct Case {
    int64_t N, H;
  };
  for (const Case c : {Case{4, 5}, Case{1, 5}, Case{4, 1}, Case{1, 1}}) {
    SCOPED_TRACE(testing::Message() << "N=" << c.N << " H=" << c.H);
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::add_bias(in[0], in[1]); },
                                 {random_normal({c.N, c.H}, 3), random_normal({c.H}, 4)}));
  }
}

TEST(AddBias, BiasGradientIsTheColumnSumsOfTheOutputGradient) {
  Tensor x = param({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor b = param({10, 20}, {2});
  const Tensor g = ag::tensor({1, 2, 3, 4, 5, 6}, {3, 2}, f64);
  const Tensor y = ag::add_bias(x, b);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{11, 22, 13, 24, 15, 26}));
  ag::sum(ag::mul(y, g)).backward();
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{1 + 3 + 5, 2 + 4 + 6}));
  EXPECT_EQ(x.grad().to_vector(), g.to_vector());
}

// ---- relu ----

TEST(Relu, GradientMatchesCentralDifferences) {
  for (const Shape& shape : {Shape{4, 5}, Shape{1, 1}, Shape{7}, Shape{2, 3, 2}}) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::relu(in[0]); },
                                 {away_from_zero(shape, 5)}));
  }
}

TEST(Relu, GradientPassesWherePositiveAndIsZeroWhereNegative) {
  Tensor x = param({-2, 3, 0.5, -0.1}, {4});
  const Tensor g = ag::tensor({1, 2, 3, 4}, {4}, f64);
  const Tensor y = ag::relu(x);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0, 3, 0.5, 0}));
  ag::sum(ag::mul(y, g)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 2, 3, 0}));
}

TEST(Relu, GradientAtExactlyZeroIsZero) {
  Tensor x = param({0.0, -0.0, 1.0, 0.0}, {2, 2});
  const Tensor g = ag::tensor({1, 2, 3, 4}, {2, 2}, f64);
  ag::sum(ag::mul(ag::relu(x), g)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 0, 3, 0}));
}

// ---- softmax_cross_entropy ----

// Long double reference: the mean of -log softmax(s)[y] and its gradient (p - onehot(y)) / N.
struct SoftmaxReference {
  double loss = 0.0;
  std::vector<double> grad;
};

SoftmaxReference softmax_reference(const std::vector<double>& s, const std::vector<int32_t>& y,
                                   int64_t N, int64_t C) {
  SoftmaxReference ref;
  ref.grad.assign(static_cast<std::size_t>(N * C), 0.0);
  long double total = 0.0L;
  for (int64_t n = 0; n < N; ++n) {
    long double m = s[n * C];
    for (int64_t c = 1; c < C; ++c) m = std::max<long double>(m, s[n * C + c]);
    long double z = 0.0L;
    for (int64_t c = 0; c < C; ++c) z += std::exp(static_cast<long double>(s[n * C + c]) - m);
    total += std::log(z) + m - static_cast<long double>(s[n * C + y[n]]);
    for (int64_t c = 0; c < C; ++c) {
      const long double p = std::exp(static_cast<long double>(s[n * C + c]) - m) / z;
      ref.grad[n * C + c] = static_cast<double>((p - (c == y[n] ? 1.0L : 0.0L)) / N);
    }
  }
  ref.loss = static_cast<double>(total / N);
  return ref;
}

// A loss of ~2 has rounding error ~4e-16, which a step of 1e-6 turns into ~4e-10 in the numeric
// derivative: a relative 1e-7 of the small entries p/N ~ 1e-3 (measured 7e-8 at N = 6, C = 10).
// The loss is smooth, so a step of 1e-5 costs little truncation error: measured below 6e-9.
ag::GradcheckOptions softmax_gradcheck_options() {
  ag::GradcheckOptions options;
  options.eps = 1e-5;
  return options;
}
const ag::GradcheckOptions kSoftmaxGradcheck = softmax_gradcheck_options();

TEST(SoftmaxCrossEntropy, GradientMatchesCentralDifferences) {
  struct Case {
    int64_t N, C;
  };
  // Batch N = 1, classes C = 1 (loss and gradient identically 0) and C = 2 among them.
  for (const Case c :
       {Case{4, 3}, Case{1, 3}, Case{4, 1}, Case{4, 2}, Case{1, 1}, Case{1, 2}, Case{6, 10}}) {
    SCOPED_TRACE(testing::Message() << "N=" << c.N << " C=" << c.C);
    const std::vector<int32_t> labels = random_labels(c.N, c.C, 6);
    EXPECT_TRUE(gradcheck_passes(
        [&labels](const auto& in) { return ag::softmax_cross_entropy(in[0], labels); },
        {random_normal({c.N, c.C}, 7)}, kSoftmaxGradcheck));
  }
}

TEST(SoftmaxCrossEntropy, LossMatchesALongDoubleReference) {
  const int64_t N = 5, C = 4;
  const Tensor s = ag::test::random_normal({N, C}, 8);
  const std::vector<int32_t> y = random_labels(N, C, 9);
  const SoftmaxReference ref = softmax_reference(s.to_vector(), y, N, C);
  EXPECT_NEAR(ag::softmax_cross_entropy(s, y).item(), ref.loss, 1e-14 * ref.loss);
}

TEST(SoftmaxCrossEntropy, GradientIsProbabilitiesMinusOneHotOverN) {
  const int64_t N = 5, C = 4;
  Tensor s = ag::test::random_normal({N, C}, 10);
  s.requires_grad_();
  const std::vector<int32_t> y = random_labels(N, C, 11);
  ag::softmax_cross_entropy(s, y).backward();
  const SoftmaxReference ref = softmax_reference(s.to_vector(), y, N, C);
  EXPECT_TRUE(all_close(s.grad().to_vector(), ref.grad, 1e-13, 1e-3));
}

TEST(SoftmaxCrossEntropy, GradientIsScaledByTheUpstreamGradient) {
  const int64_t N = 3, C = 2;
  Tensor s = ag::test::random_normal({N, C}, 12);
  s.requires_grad_();
  const std::vector<int32_t> y{1, 0, 1};
  ag::scale(ag::softmax_cross_entropy(s, y), 2.5).backward();
  std::vector<double> expected = softmax_reference(s.to_vector(), y, N, C).grad;
  for (double& v : expected) v *= 2.5;
  EXPECT_TRUE(all_close(s.grad().to_vector(), expected, 1e-13, 1e-3));
}

TEST(SoftmaxCrossEntropy, LossIsExactAtLogitsOfPlusMinus1000) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(ag::dtype_name(dtype));
    const Tensor s = ag::tensor({1000, -1000}, {1, 2}, dtype);
    EXPECT_EQ(ag::softmax_cross_entropy(s, std::vector<int32_t>{0}).item(), 0.0);
    EXPECT_EQ(ag::softmax_cross_entropy(s, std::vector<int32_t>{1}).item(), 2000.0);
  }
}

TEST(SoftmaxCrossEntropy, GradientIsFiniteAndExactAtLogitsOfPlusMinus1000) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(ag::dtype_name(dtype));
    for (int32_t label : {0, 1}) {
      Tensor s = ag::tensor({1000, -1000}, {1, 2}, dtype);
      s.requires_grad_();
      ag::softmax_cross_entropy(s, std::vector<int32_t>{label}).backward();
      // p = [1, 0] (exp(-2000) underflows to exactly 0), so dL/ds = p - onehot(label).
      EXPECT_EQ(s.grad().to_vector(),
                label == 0 ? (std::vector<double>{0, 0}) : (std::vector<double>{1, -1}));
    }
  }
}

TEST(SoftmaxCrossEntropy, LossAndGradientAreFiniteAndCorrectAtLogitsOf1e4) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(ag::dtype_name(dtype));
    Tensor s = ag::tensor({1e4, 0, -1e4, -1e4, 1e4, 1e4}, {2, 3}, dtype);
    s.requires_grad_();
    const Tensor loss = ag::softmax_cross_entropy(s, std::vector<int32_t>{2, 0});
    // Row 0: log(1) + 1e4 - (-1e4). Row 1: log(2) + 1e4 - (-1e4). Mean over the 2 rows.
    const double expected = 2e4 + std::log(2.0) / 2;
    EXPECT_TRUE(std::isfinite(loss.item()));
    EXPECT_NEAR(loss.item(), expected, (dtype == f64 ? 1e-12 : 1e-6) * expected);
    loss.backward();
    // Row 0: p = [1, 0, 0], label 2. Row 1: p = [0, 1/2, 1/2], label 0. Divided by N = 2.
    EXPECT_EQ(s.grad().to_vector(), (std::vector<double>{0.5, 0, -0.5, -0.5, 0.25, 0.25}));
  }
}

TEST(SoftmaxCrossEntropy, EqualHugeLogitsGiveLogC) {
  for (double logit : {1e4, -1e4, 1e300}) {
    SCOPED_TRACE(logit);
    Tensor s = ag::full({1, 4}, logit, f64);
    s.requires_grad_();
    const Tensor loss = ag::softmax_cross_entropy(s, std::vector<int32_t>{3});
    EXPECT_NEAR(loss.item(), std::log(4.0), 1e-15);
    loss.backward();
    EXPECT_EQ(s.grad().to_vector(), (std::vector<double>{0.25, 0.25, 0.25, -0.75}));
  }
}

// ---- l2 ----

TEST(L2, GradientMatchesCentralDifferences) {
  for (const Shape& shape : {Shape{3, 4}, Shape{1}, Shape{5}, Shape{1, 1}}) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(
        gradcheck_passes([](const auto& in) { return ag::l2(in[0]); }, {random_normal(shape, 13)}));
  }
}

TEST(L2, GradientIsTwiceTheWeights) {
  Tensor w = param({1, -2, 0.5, 3}, {2, 2});
  const Tensor loss = ag::l2(w);
  EXPECT_EQ(loss.item(), 1 + 4 + 0.25 + 9);
  loss.backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{2, -4, 1, 6}));
}

TEST(L2, GradientIsScaledByTheUpstreamGradient) {
  Tensor w = param({1, -2, 0.5}, {3});
  ag::scale(ag::l2(w), 0.05).backward();
  EXPECT_TRUE(all_close(w.grad().to_vector(), {0.1, -0.2, 0.05}, 1e-15));
}

// Long enough for the sixteen running sums, the split over two threads and an odd tail; the
// float32 sum is accumulated in double too, so both dtypes come within a few roundings of it.
TEST(L2, ValueOfALargeTensorIsTheSumOfSquaresInBothDtypes) {
  const ag::test::ThreadCount two(2);
  constexpr int64_t n = 200003;
  std::vector<double> values(n);
  for (int64_t i = 0; i < n; ++i) values[std::size_t(i)] = std::sin(0.01 * double(i)) + 0.5;
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor w = ag::tensor(values, {n}, dtype);
    long double expect = 0.0L;  // over the values as w holds them (float32: rounded)
    for (const double v : w.to_vector()) expect += static_cast<long double>(v) * v;
    const double tolerance = dtype == DType::Float32 ? 1e-7 : 1e-13;  // float32: one rounding
    EXPECT_NEAR(ag::l2(w).item() / double(expect), 1.0, tolerance) << ag::dtype_name(dtype);
  }
}

// ---- element-wise ops and reductions ----

const std::vector<Shape> elementwise_shapes{Shape{3, 4}, Shape{1}, Shape{}, Shape{2, 1, 3}};

TEST(Add, GradientMatchesCentralDifferences) {
  for (const Shape& shape : elementwise_shapes) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::add(in[0], in[1]); },
                                 {random_normal(shape, 14), random_normal(shape, 15)}));
  }
}

TEST(Sub, GradientMatchesCentralDifferences) {
  for (const Shape& shape : elementwise_shapes) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::sub(in[0], in[1]); },
                                 {random_normal(shape, 16), random_normal(shape, 17)}));
  }
}

TEST(Mul, GradientMatchesCentralDifferences) {
  for (const Shape& shape : elementwise_shapes) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::mul(in[0], in[1]); },
                                 {random_normal(shape, 18), random_normal(shape, 19)}));
  }
}

TEST(Scale, GradientMatchesCentralDifferences) {
  for (double factor : {2.5, -0.75, 0.0}) {
    SCOPED_TRACE(factor);
    EXPECT_TRUE(gradcheck_passes([factor](const auto& in) { return ag::scale(in[0], factor); },
                                 {random_normal({3, 2}, 20)}));
  }
}

TEST(Sum, GradientMatchesCentralDifferences) {
  for (const Shape& shape : elementwise_shapes) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::sum(in[0]); },
                                 {random_normal(shape, 21)}));
  }
}

TEST(Mean, GradientMatchesCentralDifferences) {
  for (const Shape& shape : elementwise_shapes) {
    SCOPED_TRACE(ag::shape_str(shape));
    EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::mean(in[0]); },
                                 {random_normal(shape, 22)}));
  }
}

TEST(Cast, GradientMatchesCentralDifferences) {
  // Float64 -> Float32 -> Float64. The inputs and the step eps = 2^-12 are dyadic with few
  // significant bits, so x and x ± eps are exact in float32 and the round trip loses nothing.
  const Tensor x = ag::tensor({0.5, -1.25, 0.75, 2.0, -0.375, 1.5}, {2, 3}, f64);
  ag::GradcheckOptions options;
  options.eps = std::ldexp(1.0, -12);
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return ag::cast(ag::cast(in[0], DType::Float32), DType::Float64); }, {x},
      options));
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return ag::cast(in[0], DType::Float64); },
                               {random_normal({2, 3}, 23)}));
}

TEST(ElementwiseOps, GradientsMatchHandComputed) {
  const std::vector<double> av{1, -2, 3}, bv{4, 0.5, -1}, gv{1, 2, -3};
  const Tensor g = ag::tensor(gv, {3}, f64);
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&);
    std::vector<double> da, db;
  };
  const std::vector<Case> cases{
      {"add", [](const Tensor& a, const Tensor& b) { return ag::add(a, b); }, gv, gv},
      {"sub", [](const Tensor& a, const Tensor& b) { return ag::sub(a, b); }, gv, {-1, -2, 3}},
      // dL/da = g ⊙ b, dL/db = g ⊙ a
      {"mul",
       [](const Tensor& a, const Tensor& b) { return ag::mul(a, b); },
       {4, 1, 3},
       {1, -4, -9}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor a = param(av, {3});
    Tensor b = param(bv, {3});
    ag::sum(ag::mul(c.op(a, b), g)).backward();
    EXPECT_EQ(a.grad().to_vector(), c.da);
    EXPECT_EQ(b.grad().to_vector(), c.db);
  }
}

TEST(Reductions, GradientsMatchHandComputed) {
  Tensor x = param({1, 2, 3, 4}, {2, 2});
  const Tensor s = ag::sum(x);
  EXPECT_EQ(s.item(), 10.0);
  EXPECT_EQ(s.shape(), Shape{});
  ag::scale(s, 3.0).backward();
  EXPECT_EQ(x.grad().to_vector(), std::vector<double>(4, 3.0));  // dΣ/dx_i = 1, times 3

  Tensor y = param({1, 2, 3, 4}, {2, 2});
  const Tensor m = ag::mean(y);
  EXPECT_EQ(m.item(), 2.5);
  m.backward();
  EXPECT_EQ(y.grad().to_vector(), std::vector<double>(4, 0.25));  // 1 / n

  Tensor z = param({1, -2}, {2});
  ag::sum(ag::scale(z, -1.5)).backward();
  EXPECT_EQ(z.grad().to_vector(), std::vector<double>(2, -1.5));
}

TEST(Cast, GradientComesBackInTheInputDtype) {
  Tensor x = ag::tensor({1.5, -2}, {2}, DType::Float32);
  x.requires_grad_();
  const Tensor y = ag::cast(x, f64);
  EXPECT_EQ(y.dtype(), f64);
  ag::sum(ag::mul(y, ag::tensor({0.25, 3}, {2}, f64))).backward();
  EXPECT_EQ(x.grad().dtype(), DType::Float32);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0.25, 3}));
}

// ---- gradcheck itself ----

// A deliberately wrong op: y = x, but its backward hands back the output gradient reversed.
Tensor reversed_gradient_identity(const Tensor& x) {
  Tensor y = x.clone();
  if (ag::detail::needs_grad({&x}))
    ag::detail::record(
        y, "reversed_gradient_identity", {x},
        [](const Tensor& g) {
          const std::vector<double> v = g.to_vector();
          const std::vector<double> reversed(v.rbegin(), v.rend());
          return std::vector<Tensor>{ag::tensor(reversed, g.shape(), g.dtype())};
        },
        [](const std::vector<Tensor>& in) { return reversed_gradient_identity(in[0]); },
        ag::Where::current());
  return y;
}

TEST(Gradcheck, RandomWeightingCatchesAPermutedGradient) {
  // With a plain sum the output gradient is all ones and reversing it changes nothing.
  const Tensor x = random_normal({4}, 24);
  EXPECT_TRUE(gradcheck_passes(
      [](const auto& in) { return ag::sum(reversed_gradient_identity(in[0])); }, {x}));
  // Reduced with gradcheck's fixed random weighting, the permutation shows.
  const ag::GradcheckResult result =
      ag::gradcheck([](const auto& in) { return reversed_gradient_identity(in[0]); }, {x});
  EXPECT_FALSE(result.passed);
  ASSERT_EQ(result.inputs.size(), 1u);
  EXPECT_GT(result.inputs[0].max_rel_error, 1e-3);
}

TEST(Gradcheck, ReportNamesTheWorstElementAndBothValues) {
  const ag::GradcheckResult result = ag::gradcheck(
      [](const auto& in) { return reversed_gradient_identity(in[0]); }, {random_normal({5}, 25)});
  ASSERT_EQ(result.inputs.size(), 1u);
  const ag::InputCheck& check = result.inputs[0];
  ASSERT_GE(check.worst_index, 0);
  EXPECT_LT(check.worst_index, 5);
  EXPECT_NE(check.worst_index, 2);  // the middle element is its own mirror image
  EXPECT_DOUBLE_EQ(check.max_rel_error, ag::relative_error(check.analytic, check.numeric));
  const std::string report = result.report();
  EXPECT_TRUE(ag::test::contains(report, "FAILED"));
  EXPECT_TRUE(ag::test::contains(report, "[5]"));
  EXPECT_TRUE(ag::test::contains(report, "element " + std::to_string(check.worst_index)));
  EXPECT_TRUE(ag::test::contains(report, "analytic"));
  EXPECT_TRUE(ag::test::contains(report, "numeric"));
}

TEST(Gradcheck, LeavesTheCallersInputsUntouched) {
  Tensor x = ag::tensor({1, 2, 3}, {3}, DType::Float32);
  const ag::GradcheckResult result =
      ag::gradcheck([](const auto& in) { return ag::l2(in[0]); }, {x});
  EXPECT_TRUE(result.passed) << result.report();
  EXPECT_EQ(x.dtype(), DType::Float32);
  EXPECT_EQ(x.to_vector(), (std::vector<double>{1, 2, 3}));
  EXPECT_FALSE(x.requires_grad());
  EXPECT_FALSE(x.grad().defined());
}

TEST(RelativeError, IsTheDifferenceOverTheSumOfMagnitudes) {
  EXPECT_DOUBLE_EQ(ag::relative_error(1.0, 3.0), 0.5);
  EXPECT_DOUBLE_EQ(ag::relative_error(-1.0, 1.0), 1.0);
  EXPECT_EQ(ag::relative_error(0.0, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(ag::relative_error(1e-10, 0.0), 1e-2);  // the 1e-8 floor
}

// ---- a composed two-layer loss against a reference derived by hand ----

// scores = relu(X·W1 + b1)·W2 + b2; loss = softmax_cross_entropy(scores, y) + reg (|W1|² + |W2|²).
struct TwoLayer {
  int64_t N = 4, D = 3, H = 5, C = 3;
  double reg = 0.05;
  std::vector<double> X, W1, b1, W2, b2;
  std::vector<int32_t> y{2, 0, 1, 2};
};

TwoLayer make_two_layer() {
  TwoLayer m;
  m.X = random_normal({m.N, m.D}, 30).to_vector();
  m.W1 = random_normal({m.D, m.H}, 31).to_vector();
  m.b1 = random_normal({m.H}, 32).to_vector();
  m.W2 = random_normal({m.H, m.C}, 33).to_vector();
  m.b2 = random_normal({m.C}, 34).to_vector();
  return m;
}

struct TwoLayerGrads {
  double loss = 0.0;
  std::vector<double> W1, b1, W2, b2;
};

// The forward and the backward written out with plain loops on std::vector<double>.
TwoLayerGrads reference_two_layer(const TwoLayer& m) {
  const int64_t N = m.N, D = m.D, H = m.H, C = m.C;
  std::vector<double> z1(N * H), h(N * H), s(N * C), ds(N * C), dz1(N * H, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) {
      double acc = m.b1[j];
      for (int64_t d = 0; d < D; ++d) acc += m.X[n * D + d] * m.W1[d * H + j];
      z1[n * H + j] = acc;
      h[n * H + j] = acc > 0 ? acc : 0.0;
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double acc = m.b2[c];
      for (int64_t j = 0; j < H; ++j) acc += h[n * H + j] * m.W2[j * C + c];
      s[n * C + c] = acc;
    }
  TwoLayerGrads r;
  double data_loss = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    double mx = s[n * C];
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, s[n * C + c]);
    double z = 0.0;
    for (int64_t c = 0; c < C; ++c) z += std::exp(s[n * C + c] - mx);
    data_loss += std::log(z) + mx - s[n * C + m.y[n]];
    for (int64_t c = 0; c < C; ++c)  // dL/ds = (p - onehot) / N
      ds[n * C + c] = (std::exp(s[n * C + c] - mx) / z - (c == m.y[n] ? 1.0 : 0.0)) / N;
  }
  double l2 = 0.0;
  for (double w : m.W1) l2 += w * w;
  for (double w : m.W2) l2 += w * w;
  r.loss = data_loss / N + m.reg * l2;

  r.W2.assign(H * C, 0.0);
  r.b2.assign(C, 0.0);
  for (int64_t j = 0; j < H; ++j)
    for (int64_t c = 0; c < C; ++c) {
      double acc = 2 * m.reg * m.W2[j * C + c];  // dL/dW2 = hᵀ·ds + 2 reg W2
      for (int64_t n = 0; n < N; ++n) acc += h[n * H + j] * ds[n * C + c];
      r.W2[j * C + c] = acc;
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) r.b2[c] += ds[n * C + c];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) {
      if (z1[n * H + j] <= 0) continue;  // dz1 = (ds·W2ᵀ) ⊙ [z1 > 0]
      for (int64_t c = 0; c < C; ++c) dz1[n * H + j] += ds[n * C + c] * m.W2[j * C + c];
    }
  r.W1.assign(D * H, 0.0);
  r.b1.assign(H, 0.0);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t j = 0; j < H; ++j) {
      double acc = 2 * m.reg * m.W1[d * H + j];  // dL/dW1 = Xᵀ·dz1 + 2 reg W1
      for (int64_t n = 0; n < N; ++n) acc += m.X[n * D + d] * dz1[n * H + j];
      r.W1[d * H + j] = acc;
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) r.b1[j] += dz1[n * H + j];
  return r;
}

// The same loss composed from the library's ops in `dtype`, then backward().
TwoLayerGrads engine_two_layer(const TwoLayer& m, DType dtype) {
  const Tensor X = ag::tensor(m.X, {m.N, m.D}, dtype);
  Tensor W1 = ag::tensor(m.W1, {m.D, m.H}, dtype), b1 = ag::tensor(m.b1, {m.H}, dtype);
  Tensor W2 = ag::tensor(m.W2, {m.H, m.C}, dtype), b2 = ag::tensor(m.b2, {m.C}, dtype);
  for (Tensor* p : {&W1, &b1, &W2, &b2}) p->requires_grad_();
  const Tensor scores =
      ag::add_bias(ag::matmul(ag::relu(ag::add_bias(ag::matmul(X, W1), b1)), W2), b2);
  const Tensor loss =
      ag::softmax_cross_entropy(scores, m.y) + ag::scale(ag::l2(W1) + ag::l2(W2), m.reg);
  loss.backward();
  return {loss.item(), W1.grad().to_vector(), b1.grad().to_vector(), W2.grad().to_vector(),
          b2.grad().to_vector()};
}

// Rounds every parameter to float32, so that both precisions start from the same values.
TwoLayer rounded_to_float32(TwoLayer m) {
  for (std::vector<double>* v : {&m.X, &m.W1, &m.b1, &m.W2, &m.b2})
    for (double& x : *v) x = static_cast<float>(x);
  return m;
}

TEST(Composition, TwoLayerGradientMatchesHandDerivedReference) {
  const TwoLayer m = make_two_layer();
  const TwoLayerGrads want = reference_two_layer(m);
  const TwoLayerGrads got = engine_two_layer(m, f64);
  EXPECT_NEAR(got.loss, want.loss, 1e-9 * want.loss);
  EXPECT_TRUE(all_close(got.W1, want.W1, 1e-9)) << "W1";
  EXPECT_TRUE(all_close(got.b1, want.b1, 1e-9)) << "b1";
  EXPECT_TRUE(all_close(got.W2, want.W2, 1e-9)) << "W2";
  EXPECT_TRUE(all_close(got.b2, want.b2, 1e-9)) << "b2";
}

TEST(Composition, Float32TwoLayerGradientMatchesHandDerivedReference) {
  const TwoLayer m = rounded_to_float32(make_two_layer());
  const TwoLayerGrads want = reference_two_layer(m);
  const TwoLayerGrads got = engine_two_layer(m, DType::Float32);
  EXPECT_NEAR(got.loss, want.loss, 2e-3 * want.loss);
  // Elements under 1e-3 of a tensor's largest are compared against that scale instead.
  EXPECT_TRUE(all_close(got.W1, want.W1, 2e-3, 1e-3 * ag::test::max_abs(want.W1))) << "W1";
  EXPECT_TRUE(all_close(got.b1, want.b1, 2e-3, 1e-3 * ag::test::max_abs(want.b1))) << "b1";
  EXPECT_TRUE(all_close(got.W2, want.W2, 2e-3, 1e-3 * ag::test::max_abs(want.W2))) << "W2";
  EXPECT_TRUE(all_close(got.b2, want.b2, 2e-3, 1e-3 * ag::test::max_abs(want.b2))) << "b2";
}

TEST(Composition, ReferenceHasLiveAndDeadHiddenUnits) {
  // Guards the two tests above: the relu mask must matter for them to mean anything.
  const TwoLayer m = make_two_layer();
  int positive = 0, total = 0;
  for (int64_t n = 0; n < m.N; ++n)
    for (int64_t j = 0; j < m.H; ++j, ++total) {
      double z = m.b1[j];
      for (int64_t d = 0; d < m.D; ++d) z += m.X[n * m.D + d] * m.W1[d * m.H + j];
      positive += z > 0;
    }
  EXPECT_GT(positive, 0);
  EXPECT_LT(positive, total);
}

TEST(Composition, TwoLayerGradientMatchesCentralDifferences) {
  const TwoLayer m = make_two_layer();
  const Tensor X = ag::tensor(m.X, {m.N, m.D}, f64);
  EXPECT_TRUE(gradcheck_passes(
      [&](const auto& in) {
        const Tensor h = ag::relu(ag::add_bias(ag::matmul(X, in[0]), in[1]));
        return ag::softmax_cross_entropy(ag::add_bias(ag::matmul(h, in[2]), in[3]), m.y) +
               ag::scale(ag::l2(in[0]) + ag::l2(in[2]), m.reg);
      },
      {ag::tensor(m.W1, {m.D, m.H}, f64), ag::tensor(m.b1, {m.H}, f64),
       ag::tensor(m.W2, {m.H, m.C}, f64), ag::tensor(m.b2, {m.C}, f64)},
      kSoftmaxGradcheck));  // the loss ends in softmax-CE: the same step, for the same reason
}

}  // namespace
