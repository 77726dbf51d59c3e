// Float32 against Float64: every op, and a composed two-layer loss, run in both precisions from the
// same (float32-representable) values. Forward results agree to ~1e-5 relative, gradients to
// ~1e-4; results and gradients keep the dtype of their inputs; cast moves between the two.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Shape;
using ag::Tensor;
using ag::test::all_close;
using ag::test::max_abs;

constexpr DType f32 = DType::Float32;
constexpr DType f64 = DType::Float64;

// Forward: relative 1e-5 (float32 rounds at 6e-8; sums of a few terms lose a little more).
// Backward: relative 1e-4. Elements smaller than a tenth of their tensor's largest are held to
// that scale instead of their own, where cancellation makes relative precision meaningless.
constexpr double kForwardRtol = 1e-5;
constexpr double kBackwardRtol = 1e-4;
constexpr double kScaleFloor = 0.1;

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
};

void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<int32_t> kLabels{2, 0, 3, 1, 1, 0};

const std::vector<OpCase> kCases{
    {"matmul", {{4, 3}, {3, 5}}, [](const auto& in) { return ag::matmul(in[0], in[1]); }},
    {"add_bias", {{4, 5}, {5}}, [](const auto& in) { return ag::add_bias(in[0], in[1]); }},
    {"relu", {{4, 5}}, [](const auto& in) { return ag::relu(in[0]); }},
    {"softmax_cross_entropy",
     {{6, 4}},
     [](const auto& in) { return ag::softmax_cross_entropy(in[0], kLabels); }},
    {"l2", {{3, 4}}, [](const auto& in) { return ag::l2(in[0]); }},
    {"add", {{3, 4}, {3, 4}}, [](const auto& in) { return ag::add(in[0], in[1]); }},
    {"sub", {{3, 4}, {3, 4}}, [](const auto& in) { return ag::sub(in[0], in[1]); }},
    {"mul", {{3, 4}, {3, 4}}, [](const auto& in) { return ag::mul(in[0], in[1]); }},
    {"scale", {{3, 4}}, [](const auto& in) { return ag::scale(in[0], -1.7); }},
    {"sum", {{3, 4}}, [](const auto& in) { return ag::sum(in[0]); }},
    {"mean", {{3, 4}}, [](const auto& in) { return ag::mean(in[0]); }},
    {"cast",  // through the other dtype and back: exact for float32 values either way
     {{3, 4}},
     [](const auto& in) {
       const DType other = in[0].dtype() == f32 ? f64 : f32;
       return ag::cast(ag::cast(in[0], other), in[0].dtype());
     }},
    {"two_layer_loss",
     {{6, 3}, {3, 5}, {5}, {5, 4}, {4}},
     [](const auto& in) {
       const Tensor h = ag::relu(ag::add_bias(ag::matmul(in[0], in[1]), in[2]));
       return ag::softmax_cross_entropy(ag::add_bias(ag::matmul(h, in[3]), in[4]), kLabels) +
              ag::scale(ag::l2(in[1]) + ag::l2(in[3]), 0.05);
     }},
};

class Float32Agreement : public ::testing::TestWithParam<OpCase> {
 protected:
  // The inputs in `dtype`, drawn once in float32 so that both precisions see the same values.
  // |x| >= 0.1 keeps relu's inputs off its kink.
  static std::vector<Tensor> inputs(const OpCase& c, DType dtype, bool requires_grad) {
    std::vector<Tensor> out;
    uint64_t seed = 100;
    for (const Shape& shape : c.shapes) {
      Tensor t = ag::test::away_from_zero(shape, seed++, f32).to(dtype);
      if (requires_grad) t.requires_grad_();
      out.push_back(t);
    }
    return out;
  }

  // A scalar objective: the output itself, or Σ out ⊙ R with a fixed random R (in out's dtype,
  // with the same values for both precisions).
  static Tensor objective(const Tensor& out) {
    if (out.numel() == 1) return ag::sum(out);
    ag::Generator gen(7);
    const Tensor r = ag::rand(out.shape(), gen, 0.5, 1.5, f32).to(out.dtype());
    return ag::sum(ag::mul(out, r));
  }
};

TEST_P(Float32Agreement, ForwardMatchesFloat64) {
  const OpCase& c = GetParam();
  const std::vector<double> want = c.fn(inputs(c, f64, false)).to_vector();
  const std::vector<double> got = c.fn(inputs(c, f32, false)).to_vector();
  EXPECT_TRUE(all_close(got, want, kForwardRtol, kScaleFloor * max_abs(want)));
}

TEST_P(Float32Agreement, BackwardMatchesFloat64) {
  const OpCase& c = GetParam();
  const std::vector<Tensor> x64 = inputs(c, f64, true), x32 = inputs(c, f32, true);
  objective(c.fn(x64)).backward();
  objective(c.fn(x32)).backward();
  for (std::size_t i = 0; i < x64.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "input " << i);
    ASSERT_TRUE(x32[i].grad().defined());
    const std::vector<double> want = x64[i].grad().to_vector();
    EXPECT_TRUE(
        all_close(x32[i].grad().to_vector(), want, kBackwardRtol, kScaleFloor * max_abs(want)));
  }
}

TEST_P(Float32Agreement, ResultAndGradientsKeepTheInputDtype) {
  const OpCase& c = GetParam();
  for (DType dtype : {f32, f64}) {
    SCOPED_TRACE(ag::dtype_name(dtype));
    const std::vector<Tensor> x = inputs(c, dtype, true);
    const Tensor out = c.fn(x);
    EXPECT_EQ(out.dtype(), dtype);
    objective(out).backward();
    for (const Tensor& t : x) {
      ASSERT_TRUE(t.grad().defined());
      EXPECT_EQ(t.grad().dtype(), dtype);
      EXPECT_EQ(t.grad().shape(), t.shape());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryOp, Float32Agreement, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

TEST(Dtypes, CastUpRecordsTheGraphAndSendsGradientsBackInFloat32) {
  // Mixed precision: float32 parameters, a loss computed in float64.
  Tensor w = ag::tensor({0.5, -1.5, 2.0}, {3}, f32);
  w.requires_grad_();
  const Tensor loss = ag::l2(ag::cast(w, f64));
  EXPECT_EQ(loss.dtype(), f64);
  EXPECT_EQ(loss.item(), 0.25 + 2.25 + 4.0);
  loss.backward();
  EXPECT_EQ(w.grad().dtype(), f32);
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{1, -3, 4}));
}

TEST(Dtypes, CastDownRoundsToTheNearestFloat) {
  Tensor x = ag::tensor({0.1, 1.0 / 3.0}, {2}, f64);
  x.requires_grad_();
  const Tensor y = ag::cast(x, f32);
  EXPECT_EQ(y.dtype(), f32);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{double(0.1f), double(1.0f / 3.0f)}));
  ag::sum(ag::scale(y, 2.0)).backward();
  EXPECT_EQ(x.grad().dtype(), f64);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 2}));
}

TEST(Dtypes, ToIsDifferentiableLikeCast) {
  Tensor x = ag::tensor({1.5, -2}, {2}, f64);
  x.requires_grad_();
  const Tensor y = x.to(f32);
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_STREQ(y.grad_fn()->name, "cast");
  ag::l2(y).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, -4}));
}

TEST(Dtypes, Float32ReductionsAccumulateInDouble) {
  // 2^24 + 1 rounds back to 2^24 in float: a float accumulator would lose every added 1.
  const Tensor x = ag::tensor({16777216, 1, 1, 1, 1}, {5}, f32);
  EXPECT_EQ(ag::sum(x).item(), 16777220.0);
  EXPECT_EQ(ag::mean(x).item(), 16777220.0 / 5);
  EXPECT_EQ(ag::l2(ag::tensor({4096, 1, 1, 1, 1}, {5}, f32)).item(), 16777220.0);
}

}  // namespace
