// custom_op: a user-defined forward and backward plug into the engine like a built-in op: one
// node, named and located, gradients summed by the engine, nothing recorded without grad, extra
// arguments held fixed, a replay that check_graph can run, and clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Tensor;
using ag::Where;
using ag::test::contains;
using ag::test::gradcheck_passes;
using ag::test::map;
using ag::test::random_normal;
using ag::test::thrown_message;

constexpr DType f64 = DType::Float64;

// x: any shape -> same shape. y = tanh(x); dL/dx = dL/dy · (1 - y²)
Tensor my_tanh(const Tensor& x, Where where = Where::current()) {
  return ag::custom_op(
      "my_tanh", {x},
      [](const std::vector<Tensor>& in) {
        return map(in[0], [](double v) { return std::tanh(v); });
      },
      [](const ag::OpContext& ctx, const Tensor& g) {
        const Tensor one_minus_y2 = map(ctx.output, [](double y) { return 1.0 - y * y; });
        return std::vector<Tensor>{ag::mul(g, one_minus_y2)};
      },
      where);
}

// x: any shape -> same shape. y = k x with k held fixed; dL/dx = k dL/dy
Tensor times(const Tensor& x, double k, Where where = Where::current()) {
  return ag::custom_op(
      "times", {x}, [k](const std::vector<Tensor>& in) { return ag::scale(in[0], k); },
      [k](const ag::OpContext&, const Tensor& g) { return std::vector<Tensor>{ag::scale(g, k)}; },
      where);
}

// a, b: same shape -> same shape. a ⊙ b, its forward composed of a built-in op.
Tensor product(const Tensor& a, const Tensor& b, Where where = Where::current()) {
  return ag::custom_op(
      "product", {a, b}, [](const std::vector<Tensor>& in) { return ag::mul(in[0], in[1]); },
      [](const ag::OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>{ag::mul(g, ctx.inputs[1]), ag::mul(g, ctx.inputs[0])};
      },
      where);
}

TEST(CustomOp, GradientMatchesCentralDifferences) {
  EXPECT_TRUE(
      gradcheck_passes([](const auto& in) { return my_tanh(in[0]); }, {random_normal({3, 4}, 1)}));
  EXPECT_TRUE(gradcheck_passes([](const auto& in) { return product(in[0], in[1]); },
                               {random_normal({5}, 2), random_normal({5}, 3)}));
}

TEST(CustomOp, RecordsOneNodeWithItsNameShapeAndWhereItWasCalled) {
  Tensor x = random_normal({2, 3}, 4).requires_grad_();
  const Where here = Where::current();
  const Tensor y = my_tanh(x, here);
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_STREQ(y.grad_fn()->name, "my_tanh");
  EXPECT_EQ(y.grad_fn()->where.line(), here.line());
  EXPECT_EQ(y.grad_fn()->shape, (ag::Shape{2, 3}));
  ASSERT_EQ(y.grad_fn()->next.size(), 1u);
  EXPECT_EQ(y.grad_fn()->next[0].leaf, x.impl());
}

TEST(CustomOp, DefaultWhereIsTheCallersLine) {
  Tensor x = random_normal({2}, 5).requires_grad_();
  const int line = __LINE__ + 1;
  const Tensor y = my_tanh(x);
  EXPECT_EQ(static_cast<int>(y.grad_fn()->where.line()), line);
  EXPECT_TRUE(contains(y.grad_fn()->where.file_name(), "test_custom_op.cpp"));
}

TEST(CustomOp, OpsComposedInsideTheForwardRecordNoNodesOfTheirOwn) {
  Tensor a = random_normal({3}, 6).requires_grad_();
  Tensor b = random_normal({3}, 7).requires_grad_();
  const Tensor y = product(a, b);
  ASSERT_EQ(y.grad_fn()->next.size(), 2u);
  EXPECT_EQ(y.grad_fn()->next[0].leaf, a.impl());  // straight to the leaves: no inner mul node
  EXPECT_EQ(y.grad_fn()->next[1].leaf, b.impl());
}

TEST(CustomOp, TensorUsedTwiceGetsBothGradientsSummedByTheEngine) {
  Tensor x = ag::tensor({1, -2, 3}, {3}, f64).requires_grad_();
  ag::sum(product(x, x)).backward();  // d(x²)/dx = 2x
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, -4, 6}));
}

TEST(CustomOp, ChainsWithBuiltInOps) {
  Tensor x = ag::tensor({0.5, -1.0}, {2}, f64).requires_grad_();
  ag::sum(ag::scale(my_tanh(ag::mul(x, x)), 3.0)).backward();
  // d/dx 3 tanh(x²) = 6x (1 - tanh²(x²))
  for (int i = 0; i < 2; ++i) {
    const double v = x.to_vector()[i];
    const double t = std::tanh(v * v);
    EXPECT_NEAR(x.grad().to_vector()[i], 6 * v * (1 - t * t), 1e-15);
  }
}

TEST(CustomOp, ExtraArgumentsAreHeldFixed) {
  EXPECT_TRUE(
      gradcheck_passes([](const auto& in) { return times(in[0], -2.5); }, {random_normal({4}, 8)}));
}

TEST(CustomOp, RecordsNothingWhenNoInputRequiresGrad) {
  const Tensor y = my_tanh(random_normal({3}, 9));
  EXPECT_TRUE(y.is_leaf());
  EXPECT_FALSE(y.requires_grad());
}

TEST(CustomOp, RecordsNothingUnderNoGradGuard) {
  Tensor x = random_normal({3}, 10).requires_grad_();
  const ag::NoGradGuard no_grad;
  EXPECT_TRUE(my_tanh(x).is_leaf());
}

TEST(CustomOp, BackwardIsToldWhichInputsNeedAGradient) {
  Tensor a = random_normal({2}, 11).requires_grad_();
  const Tensor b = random_normal({2}, 12);
  auto seen = std::make_shared<std::vector<bool>>();
  const Tensor y = ag::custom_op(
      "spy", {a, b}, [](const std::vector<Tensor>& in) { return ag::add(in[0], in[1]); },
      [seen](const ag::OpContext& ctx, const Tensor& g) {
        *seen = ctx.needs_input_grad;
        return std::vector<Tensor>{g, Tensor()};  // no gradient for b
      });
  ag::sum(y).backward();
  EXPECT_EQ(*seen, (std::vector<bool>{true, false}));
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 1}));
}

TEST(CustomOp, ForwardReturningACapturedParameterLeavesTheParameterALeaf) {
  Tensor w = random_normal({2}, 13).requires_grad_();
  Tensor x = random_normal({2}, 14).requires_grad_();
  const Tensor y = ag::custom_op(
      "returns_w", {x}, [w](const std::vector<Tensor>&) { return w; },
      [](const ag::OpContext&, const Tensor& g) { return std::vector<Tensor>{ag::scale(g, 0.0)}; });
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
}

TEST(CustomOp, NameOutlivesTheStringItCameFrom) {
  Tensor x = random_normal({2}, 15).requires_grad_();
  Tensor y;
  {
    const std::string name = std::string("temporary_") + "name";
    y = times(x, 2.0);
    y = ag::custom_op(
        name, {y}, [](const std::vector<Tensor>& in) { return in[0].clone(); },
        [](const ag::OpContext&, const Tensor& g) { return std::vector<Tensor>{g}; });
  }
  const Tensor loss = ag::sum(y);
  loss.backward();
  EXPECT_STREQ(y.grad_fn()->name, "temporary_name");  // read after release, after the string died
  const auto message = thrown_message<std::runtime_error>([&] { loss.backward(); });
  ASSERT_TRUE(message.has_value());
  EXPECT_TRUE(contains(*message, "'sum'"));
}

TEST(CustomOp, ReplayRecomputesTheForwardAndRecordsTheSameOp) {
  Tensor x = random_normal({3}, 16).requires_grad_();
  const Tensor y = my_tanh(x);
  Tensor x2 = random_normal({3}, 17).requires_grad_();
  const Tensor again = y.grad_fn()->forward({x2});
  EXPECT_STREQ(again.grad_fn()->name, "my_tanh");
  EXPECT_EQ(again.grad_fn()->where.line(), y.grad_fn()->where.line());
  const std::vector<double> in = x2.to_vector(), out = again.to_vector();
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_DOUBLE_EQ(out[i], std::tanh(in[i]));
}

TEST(CustomOp, WrongGradientShapeIsReportedByBackwardWithTheOpAndWhere) {
  Tensor x = random_normal({3}, 18).requires_grad_();
  const Tensor y = ag::custom_op(
      "bad_shape", {x}, [](const std::vector<Tensor>& in) { return in[0].clone(); },
      [](const ag::OpContext&, const Tensor&) { return std::vector<Tensor>{ag::zeros({2}, f64)}; });
  const auto message = thrown_message<std::invalid_argument>([&] { ag::sum(y).backward(); });
  ASSERT_TRUE(message.has_value());
  EXPECT_TRUE(contains(*message, "backward of 'bad_shape' (created at "));
  EXPECT_TRUE(contains(*message, "test_custom_op.cpp"));
  EXPECT_TRUE(contains(*message, "gradient 0 is float64 [2], but input 0 is float64 [3]"));
}

TEST(CustomOp, RejectsAnEmptyNameAnUndefinedInputAndAnUndefinedOutput) {
  const auto identity = [](const std::vector<Tensor>& in) { return in[0]; };
  const auto pass = [](const ag::OpContext&, const Tensor& g) { return std::vector<Tensor>{g}; };
  const Tensor x = random_normal({2}, 19);
  EXPECT_THROW(ag::custom_op("", {x}, identity, pass), std::invalid_argument);
  const auto undefined_input = thrown_message<std::invalid_argument>(
      [&] { ag::custom_op("op", {Tensor()}, identity, pass); });
  ASSERT_TRUE(undefined_input.has_value());
  EXPECT_TRUE(contains(*undefined_input, "op: input 0 is undefined"));
  const auto undefined_output = thrown_message<std::invalid_argument>([&] {
    ag::custom_op(
        "op", {x}, [](const std::vector<Tensor>&) { return Tensor(); }, pass);
  });
  ASSERT_TRUE(undefined_output.has_value());
  EXPECT_TRUE(contains(*undefined_output, "forward returned an undefined tensor"));
}

TEST(CustomOp, BackwardRefusesAnInputOrOutputChangedInPlace) {
  Tensor a = ag::tensor({1, 2}, {2}, f64).requires_grad_();
  Tensor b = ag::tensor({3, 4}, {2}, f64);
  const Tensor from_input = ag::sum(product(a, b));
  b.mul_(2.0);  // product's backward reads b
  const auto input_message = thrown_message<std::logic_error>([&] { from_input.backward(); });
  ASSERT_TRUE(input_message.has_value());
  EXPECT_TRUE(contains(*input_message, "'product'"));
  EXPECT_TRUE(contains(*input_message, "input 1"));

  Tensor y = my_tanh(a);  // my_tanh's backward reads its output
  const Tensor from_output = ag::sum(ag::scale(y, 1.0)) + ag::l2(a);
  y.fill_(0.0);
  for (int attempt = 0; attempt < 2; ++attempt) {  // refused before any node runs, both times
    const auto output_message = thrown_message<std::logic_error>([&] { from_output.backward(); });
    ASSERT_TRUE(output_message.has_value());
    EXPECT_TRUE(contains(*output_message, "'my_tanh'"));
    EXPECT_TRUE(contains(*output_message, "its output"));
  }
  EXPECT_FALSE(a.grad().defined());  // l2's gradient, reached first, was not accumulated
}

TEST(CustomOp, AnInputPastTheThirtySecondIsCheckedToo) {
  std::vector<Tensor> inputs;
  for (int i = 0; i < 40; ++i) inputs.push_back(ag::tensor({double(i)}, {1}, f64).requires_grad_());
  const Tensor total = ag::custom_op(
      "total", inputs,
      [](const std::vector<Tensor>& in) {
        Tensor sum = ag::zeros({1}, in[0].dtype());
        for (const Tensor& t : in) sum.add_(t);
        return sum;
      },
      [](const ag::OpContext& ctx, const Tensor& g) {
        return std::vector<Tensor>(ctx.inputs.size(), g);
      });
  const Tensor loss = ag::sum(total);
  inputs[35].fill_(0.0);
  const auto message = thrown_message<std::logic_error>([&] { loss.backward(); });
  ASSERT_TRUE(message.has_value());
  EXPECT_TRUE(contains(*message, "input 35"));
}

}  // namespace
