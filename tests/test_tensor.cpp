// Tensor basics: the factories, shape queries, element access, deep and shallow copies, dtype
// conversion and the in-place updates optimizers use. Nothing here builds a graph.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Shape;
using ag::Tensor;

TEST(TensorFactory, TensorHoldsTheValuesRowMajorWithTheGivenShape) {
  const Tensor t = ag::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.dtype(), DType::Float64);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  const double* p = t.data<double>();
  EXPECT_EQ(p[1 * 3 + 2], 6.0);  // row 1, column 2
  EXPECT_EQ(p[0 * 3 + 1], 2.0);
}

TEST(TensorFactory, DefaultDtypeIsFloat32) {
  EXPECT_EQ(ag::tensor({1, 2}, {2}).dtype(), DType::Float32);
  EXPECT_EQ(ag::zeros({2}).dtype(), DType::Float32);
  EXPECT_EQ(ag::ones({2}).dtype(), DType::Float32);
  EXPECT_EQ(ag::full({2}, 3.0).dtype(), DType::Float32);
  EXPECT_EQ(ag::scalar(1.0).dtype(), DType::Float32);
  ag::Generator gen(1);
  EXPECT_EQ(ag::randn({2}, gen).dtype(), DType::Float32);
  EXPECT_EQ(ag::rand({2}, gen).dtype(), DType::Float32);
}

TEST(TensorFactory, ZerosOnesAndFullFillEveryElement) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(ag::dtype_name(dtype));
    EXPECT_EQ(ag::zeros({2, 3}, dtype).to_vector(), std::vector<double>(6, 0.0));
    EXPECT_EQ(ag::ones({4}, dtype).to_vector(), std::vector<double>(4, 1.0));
    EXPECT_EQ(ag::full({3, 1}, -2.5, dtype).to_vector(), std::vector<double>(3, -2.5));
    EXPECT_EQ(ag::full({3, 1}, -2.5, dtype).shape(), (Shape{3, 1}));
  }
}

TEST(TensorFactory, ScalarHasEmptyShapeAndOneElement) {
  const Tensor s = ag::scalar(4.25, DType::Float64);
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 4.25);
}

TEST(TensorFactory, EmptyExtentGivesNoElements) {
  const Tensor t = ag::zeros({0, 3}, DType::Float64);
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.size(1), 3);
  EXPECT_TRUE(t.to_vector().empty());
}

TEST(Randn, SameSeedGivesTheSameValues) {
  ag::Generator a(42), b(42);
  EXPECT_EQ(ag::randn({1000}, a, 1.0, DType::Float64).to_vector(),
            ag::randn({1000}, b, 1.0, DType::Float64).to_vector());
}

TEST(Randn, DifferentSeedsGiveDifferentValues) {
  ag::Generator a(42), b(43);
  const std::vector<double> x = ag::randn({1000}, a, 1.0, DType::Float64).to_vector();
  const std::vector<double> y = ag::randn({1000}, b, 1.0, DType::Float64).to_vector();
  int equal = 0;
  for (std::size_t i = 0; i < x.size(); ++i) equal += x[i] == y[i];
  EXPECT_EQ(equal, 0);
}

TEST(Randn, SuccessiveDrawsFromOneGeneratorDiffer) {
  ag::Generator gen(7);
  EXPECT_NE(ag::randn({100}, gen).to_vector(), ag::randn({100}, gen).to_vector());
}

TEST(Randn, IsNormalWithMeanZeroAndTheRequestedStddev) {
  constexpr int64_t n = 100000;
  constexpr double stddev = 2.5;
  ag::Generator gen(2024);
  const std::vector<double> x = ag::randn({n}, gen, stddev, DType::Float64).to_vector();
  double sum = 0.0, sum_sq = 0.0;
  int64_t within_one_sigma = 0, within_two_sigma = 0;
  for (double v : x) {
    sum += v;
    sum_sq += v * v;
    within_one_sigma += std::abs(v) < stddev;
    within_two_sigma += std::abs(v) < 2 * stddev;
  }
  const double mean = sum / n;
  const double sd = std::sqrt(sum_sq / n - mean * mean);
  // Standard errors: mean stddev/sqrt(n) = 0.0079, sd about stddev/sqrt(2n) = 0.0056; allow ~5.
  EXPECT_NEAR(mean, 0.0, 0.04);
  EXPECT_NEAR(sd, stddev, 0.03);
  // Normal, not just the right moments: P(|z| < 1) = 0.6827, P(|z| < 2) = 0.9545.
  EXPECT_NEAR(static_cast<double>(within_one_sigma) / n, 0.6827, 0.01);
  EXPECT_NEAR(static_cast<double>(within_two_sigma) / n, 0.9545, 0.005);
}

TEST(Rand, IsUniformOnTheHalfOpenRangeAndReproducible) {
  ag::Generator gen(5), same(5);
  const std::vector<double> x = ag::rand({100000}, gen, -2.0, 3.0, DType::Float64).to_vector();
  EXPECT_EQ(x, ag::rand({100000}, same, -2.0, 3.0, DType::Float64).to_vector());
  double sum = 0.0;
  int64_t below_zero = 0;
  for (double v : x) {
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 3.0);
    sum += v;
    below_zero += v < 0.0;
  }
  EXPECT_NEAR(sum / x.size(), 0.5, 0.03);  // standard error 5/sqrt(12 n) = 0.0046
  EXPECT_NEAR(static_cast<double>(below_zero) / x.size(), 0.4, 0.01);
}

TEST(Tensor, ShapeNumelDimAndSizeDescribeTheExtents) {
  const Tensor t = ag::zeros({2, 3, 4});
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(2), 4);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
}

TEST(Tensor, ShapeStrAndDtypeNamePrintAsInErrorMessages) {
  EXPECT_EQ(ag::shape_str({2, 3}), "[2, 3]");
  EXPECT_EQ(ag::shape_str({}), "[]");
  EXPECT_STREQ(ag::dtype_name(DType::Float32), "float32");
  EXPECT_STREQ(ag::dtype_name(DType::Float64), "float64");
  EXPECT_EQ(ag::shape_numel({}), 1);
  EXPECT_EQ(ag::shape_numel({2, 0, 5}), 0);
  EXPECT_EQ(ag::shape_numel({2, 3, 5}), 30);
}

TEST(Tensor, ItemReadsTheOnlyElementOfAnyOneElementShape) {
  EXPECT_EQ(ag::tensor({-1.5}, {1, 1}, DType::Float64).item(), -1.5);
  EXPECT_EQ(ag::tensor({0.25}, {1}).item(), 0.25);
  EXPECT_EQ(ag::scalar(3.0).item(), 3.0);
}

TEST(Tensor, ToVectorWidensFloat32ExactlyToDouble) {
  const Tensor t = ag::tensor({0.1, -3.0}, {2}, DType::Float32);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{double(0.1f), -3.0}));
}

TEST(Tensor, CopiedHandleSharesStorage) {
  Tensor a = ag::zeros({3}, DType::Float64);
  Tensor b = a;
  b.fill_(7.0);
  EXPECT_EQ(a.to_vector(), std::vector<double>(3, 7.0));
  EXPECT_EQ(a.impl(), b.impl());
}

TEST(Tensor, CloneIsIndependentOfTheOriginal) {
  Tensor a = ag::tensor({1, 2, 3}, {3}, DType::Float64);
  a.requires_grad_();
  Tensor c = a.clone();
  EXPECT_EQ(c.to_vector(), a.to_vector());
  EXPECT_EQ(c.dtype(), DType::Float64);
  EXPECT_FALSE(c.requires_grad());
  EXPECT_TRUE(c.is_leaf());
  c.fill_(0.0);
  EXPECT_EQ(a.to_vector(), (std::vector<double>{1, 2, 3}));
  a.mul_(2.0);
  EXPECT_EQ(c.to_vector(), std::vector<double>(3, 0.0));
}

TEST(Tensor, ToRoundTripsBetweenDtypes) {
  // Values representable in float32 survive float64 -> float32 -> float64 exactly.
  const std::vector<double> exact{1.5, -0.25, 1024.0, 3.0517578125e-05};
  const Tensor a = ag::tensor(exact, {2, 2}, DType::Float64);
  const Tensor f = a.to(DType::Float32);
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.shape(), (Shape{2, 2}));
  EXPECT_EQ(f.to(DType::Float64).to_vector(), exact);
  // Others are rounded to the nearest float.
  const Tensor b = ag::tensor({0.1, 1.0 / 3.0}, {2}, DType::Float64).to(DType::Float32);
  EXPECT_EQ(b.to(DType::Float64).to_vector(),
            (std::vector<double>{double(0.1f), double(1.0f / 3.0f)}));
}

TEST(Tensor, ToMakesAnIndependentCopy) {
  Tensor a = ag::tensor({1, 2}, {2}, DType::Float64);
  Tensor b = a.to(DType::Float64);
  b.fill_(5.0);
  EXPECT_EQ(a.to_vector(), (std::vector<double>{1, 2}));
}

TEST(Tensor, FillSetsEveryElement) {
  Tensor t = ag::tensor({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(&t.fill_(-0.5), &t);
  EXPECT_EQ(t.to_vector(), std::vector<double>(4, -0.5));
}

TEST(Tensor, CopyCopiesValuesAcrossDtypes) {
  Tensor dst = ag::zeros({3}, DType::Float32);
  const Tensor src = ag::tensor({0.5, -2.0, 0.1}, {3}, DType::Float64);
  dst.copy_(src);
  EXPECT_EQ(dst.dtype(), DType::Float32);
  EXPECT_EQ(dst.to_vector(), (std::vector<double>{0.5, -2.0, double(0.1f)}));
  Tensor dst64 = ag::zeros({3}, DType::Float64);
  dst64.copy_(src);
  EXPECT_EQ(dst64.to_vector(), src.to_vector());
  EXPECT_NE(dst64.data<double>(), src.data<double>());
}

TEST(Tensor, AddAddsAlphaTimesOtherInPlace) {
  Tensor t = ag::tensor({1, 2, 3}, {3}, DType::Float64);
  t.add_(ag::tensor({10, 20, 30}, {3}, DType::Float64));
  EXPECT_EQ(t.to_vector(), (std::vector<double>{11, 22, 33}));
  t.add_(ag::tensor({1, 2, 3}, {3}, DType::Float64), -0.5);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{10.5, 21, 31.5}));
}

TEST(Tensor, MulScalesInPlace) {
  Tensor t = ag::tensor({1, -2, 0.5}, {3});
  t.mul_(-4.0);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{-4, 8, -2}));
}

TEST(Tensor, DefaultConstructedIsUndefined) {
  const Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_TRUE(ag::zeros({1}).defined());
}

TEST(Tensor, NewTensorIsALeafThatDoesNotRequireGrad) {
  Tensor t = ag::ones({2});
  EXPECT_TRUE(t.is_leaf());
  EXPECT_FALSE(t.requires_grad());
  EXPECT_EQ(t.grad_fn(), nullptr);
  EXPECT_FALSE(t.grad().defined());
  EXPECT_TRUE(t.requires_grad_().requires_grad());
  EXPECT_FALSE(t.requires_grad_(false).requires_grad());
}

TEST(Tensor, StorageIs64ByteAligned) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor t = ag::zeros({3, 5}, dtype);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.impl()->storage->data) % 64, 0u);
  }
}

}  // namespace
