// AnomalyGuard: the first NaN or Inf produced in forward (an op's output) or in backward (a
// gradient a backward returns) throws AnomalyError naming the op, the pass and where the op was
// created; without the guard nothing throws. The guard is thread-local and nests.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::AnomalyError;
using ag::DType;
using ag::Tensor;
using ag::Where;
using ag::test::contains;
using ag::test::map;

constexpr DType f64 = DType::Float64;

// x: any shape -> same shape. y = log x; dL/dx = dL/dy / x. NaN for x < 0.
Tensor my_log(const Tensor& x, Where where = Where::current()) {
  return ag::custom_op(
      "log", {x},
      [](const std::vector<Tensor>& in) {
        return map(in[0], [](double v) { return std::log(v); });
      },
      [](const ag::OpContext& ctx, const Tensor& g) {
        const Tensor inv = map(ctx.inputs[0], [](double v) { return 1.0 / v; });
        return std::vector<Tensor>{ag::mul(g, inv)};
      },
      where);
}

// x: any shape -> same shape. y = sqrt x; dL/dx = dL/dy / (2 sqrt x): Inf at x = 0.
Tensor my_sqrt(const Tensor& x, Where where = Where::current()) {
  return ag::custom_op(
      "sqrt", {x},
      [](const std::vector<Tensor>& in) {
        return map(in[0], [](double v) { return std::sqrt(v); });
      },
      [](const ag::OpContext& ctx, const Tensor& g) {
        const Tensor d = map(ctx.output, [](double y) { return 0.5 / y; });
        return std::vector<Tensor>{ag::mul(g, d)};
      },
      where);
}

// Runs f and returns the AnomalyError it throws; fails the test if it throws none.
template <class F>
AnomalyError anomaly_of(F f) {
  try {
    f();
  } catch (const AnomalyError& e) {
    return e;
  }
  ADD_FAILURE() << "no AnomalyError was thrown";
  return AnomalyError("none", "", AnomalyError::Pass::Forward, {}, -1, -1);
}

std::string at(const Where& w) {
  return std::string(w.file_name()) + ":" + std::to_string(w.line());
}

TEST(Anomaly, ForwardNaNNamesTheOpThePassAndWhereItWasCreated) {
  Tensor x = ag::tensor({1.0, 2.0, -3.0, 4.0}, {4}, f64).requires_grad_();
  const ag::AnomalyGuard anomaly;
  const Where here = Where::current();
  const AnomalyError e = anomaly_of([&] { my_log(x, here); });
  EXPECT_EQ(e.op(), "log");
  EXPECT_EQ(e.pass(), AnomalyError::Pass::Forward);
  EXPECT_EQ(e.where().line(), here.line());
  EXPECT_EQ(e.element(), 2);
  EXPECT_EQ(e.input(), -1);
  EXPECT_TRUE(contains(e.what(), "anomaly: forward of 'log' (created at " + at(here) + ")"));
  EXPECT_TRUE(contains(e.what(), "produced NaN at element 2 of its float64 [4] output"));
}

TEST(Anomaly, ForwardNaNOfACustomOpIsCaughtEvenWithoutAGraph) {
  const Tensor x = ag::tensor({-1.0}, {1}, f64);  // requires no grad: no node is recorded
  const ag::AnomalyGuard anomaly;
  EXPECT_EQ(anomaly_of([&] { my_log(x); }).op(), "log");
}

TEST(Anomaly, ForwardInfOfABuiltInOpIsNamed) {
  Tensor x = ag::tensor({1.0, 1e300}, {2}, f64).requires_grad_();
  const ag::AnomalyGuard anomaly;
  const Where here = Where::current();
  const AnomalyError e = anomaly_of([&] { ag::scale(x, 1e10, here); });
  EXPECT_EQ(e.op(), "scale");
  EXPECT_EQ(e.element(), 1);
  EXPECT_TRUE(contains(e.what(), "forward of 'scale' (created at " + at(here) + ") produced +Inf"));
}

TEST(Anomaly, BackwardInfNamesTheOpThePassTheInputAndWhereItWasCreated) {
  Tensor x = ag::tensor({4.0, 0.0, 9.0}, {3}, f64).requires_grad_();
  const ag::AnomalyGuard anomaly;
  const Where here = Where::current();
  const Tensor loss = ag::sum(my_sqrt(x, here));  // forward is finite: sqrt(0) = 0
  const AnomalyError e = anomaly_of([&] { loss.backward(); });
  EXPECT_EQ(e.op(), "sqrt");
  EXPECT_EQ(e.pass(), AnomalyError::Pass::Backward);
  EXPECT_EQ(e.where().line(), here.line());
  EXPECT_EQ(e.input(), 0);
  EXPECT_EQ(e.element(), 1);
  EXPECT_TRUE(contains(e.what(), "anomaly: backward of 'sqrt' (created at " + at(here) + ")"));
  EXPECT_TRUE(contains(e.what(), "returned +Inf at element 1 of the gradient for input 0"));
}

TEST(Anomaly, BackwardNaNIsNamed) {
  // sqrt's backward at x = 0 with an upstream gradient of 0: 0 · 1 / (2 · 0) = 0 · Inf = NaN.
  Tensor x = ag::tensor({4.0, 0.0}, {2}, f64).requires_grad_();
  const Tensor weights = ag::tensor({1.0, 0.0}, {2}, f64);
  const ag::AnomalyGuard anomaly;
  const Tensor loss = ag::sum(ag::mul(my_sqrt(x), weights));
  const AnomalyError e = anomaly_of([&] { loss.backward(); });
  EXPECT_EQ(e.op(), "sqrt");
  EXPECT_EQ(e.pass(), AnomalyError::Pass::Backward);
  EXPECT_TRUE(contains(e.what(), "returned NaN at element 1 of the gradient for input 0"));
}

TEST(Anomaly, WithoutTheGuardNothingThrowsAndTheValuesAreNonFinite) {
  Tensor x = ag::tensor({4.0, 0.0, -1.0}, {3}, f64).requires_grad_();
  ASSERT_FALSE(ag::is_anomaly_enabled());
  Tensor y;
  EXPECT_NO_THROW(y = my_log(x));
  EXPECT_TRUE(std::isnan(y.to_vector()[2]));
  Tensor z = ag::tensor({4.0, 0.0}, {2}, f64).requires_grad_();
  EXPECT_NO_THROW(ag::sum(my_sqrt(z)).backward());
  EXPECT_TRUE(std::isinf(z.grad().to_vector()[1]));
}

TEST(Anomaly, ChecksEachOpsOwnGradientNotTheSumItIsAddedTo) {
  // z's gradient is +Inf already, from a backward run without the guard. l2's own gradient is
  // finite, so l2 is not to blame, though it may add its gradient into z's itself elsewhere.
  Tensor z = ag::tensor({4.0, 0.0}, {2}, f64).requires_grad_();
  ag::sum(my_sqrt(z)).backward();
  ASSERT_TRUE(std::isinf(z.grad().to_vector()[1]));
  const ag::AnomalyGuard anomaly;
  EXPECT_NO_THROW(ag::l2(z).backward());
  EXPECT_EQ(z.grad().to_vector()[0], 0.25 + 8.0);  // 1 / (2 √4) + 2 · 4
  EXPECT_TRUE(std::isinf(z.grad().to_vector()[1]));
}

TEST(Anomaly, FiniteComputationsPassUnderTheGuard) {
  Tensor x = ag::test::random_normal({3, 4}, 1).requires_grad_();
  const ag::AnomalyGuard anomaly;
  EXPECT_NO_THROW(ag::sum(ag::relu(ag::mul(x, x))).backward());
}

TEST(Anomaly, GuardsNestAndRestoreThePreviousMode) {
  EXPECT_FALSE(ag::is_anomaly_enabled());
  {
    const ag::AnomalyGuard on;
    EXPECT_TRUE(ag::is_anomaly_enabled());
    {
      const ag::AnomalyGuard off(false);
      EXPECT_FALSE(ag::is_anomaly_enabled());
      const ag::AnomalyGuard on_again;
      EXPECT_TRUE(ag::is_anomaly_enabled());
    }
    EXPECT_TRUE(ag::is_anomaly_enabled());
  }
  EXPECT_FALSE(ag::is_anomaly_enabled());
}

TEST(Anomaly, GuardIsPerThread) {
  const ag::AnomalyGuard anomaly;
  bool other_thread_enabled = true;
  std::thread([&] { other_thread_enabled = ag::is_anomaly_enabled(); }).join();
  EXPECT_FALSE(other_thread_enabled);
  EXPECT_TRUE(ag::is_anomaly_enabled());
}

TEST(Anomaly, IsARuntimeError) {
  const ag::AnomalyGuard anomaly;
  EXPECT_THROW(my_log(ag::tensor({-1.0}, {1}, f64)), std::runtime_error);
}

}  // namespace
