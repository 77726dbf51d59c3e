// Every error path of the core: each throws std::invalid_argument (or a subclass) whose message
// names the op and what was wrong with the arguments, so a user can fix the call from the message
// alone.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Tensor;
using ag::test::contains;
using ag::test::thrown_message;

// The message of the std::invalid_argument that f() throws; fails the test when there is none.
template <class F>
std::string invalid_argument_message(F&& f) {
  const auto message = thrown_message<std::invalid_argument>(f);
  EXPECT_TRUE(message) << "expected std::invalid_argument, nothing was thrown";
  return message.value_or("");
}

constexpr DType f32 = DType::Float32;
constexpr DType f64 = DType::Float64;

// ---- matmul ----

TEST(MatmulError, InnerDimensionMismatchNamesBothShapes) {
  const std::string message = invalid_argument_message([] {
    ag::matmul(ag::zeros({2, 3}), ag::zeros({4, 5}));
  });
  EXPECT_EQ(message, "matmul: shapes [2, 3] and [4, 5] do not match (inner dimensions 3 != 4)");
}

TEST(MatmulError, NonMatrixInputIsRejected) {
  for (const auto& [a, b] : std::vector<std::pair<ag::Shape, ag::Shape>>{
           {{2, 3, 4}, {4, 5}}, {{3}, {3, 2}}, {{2, 3}, {3}}, {{}, {}}}) {
    SCOPED_TRACE(ag::shape_str(a) + " x " + ag::shape_str(b));
    const std::string message =
        invalid_argument_message([&] { ag::matmul(ag::zeros(a), ag::zeros(b)); });
    EXPECT_TRUE(contains(message, "matmul: expects two matrices"));
    EXPECT_TRUE(contains(message, ag::shape_str(a)));
    EXPECT_TRUE(contains(message, ag::shape_str(b)));
  }
}

TEST(MatmulError, MixedDtypesNameBothDtypes) {
  const std::string message = invalid_argument_message([] {
    ag::matmul(ag::zeros({2, 3}, f32), ag::zeros({3, 4}, f64));
  });
  EXPECT_TRUE(contains(message, "matmul"));
  EXPECT_TRUE(contains(message, "float32"));
  EXPECT_TRUE(contains(message, "float64"));
}

// CBLAS takes int dimensions: a wider one is refused, not truncated. ([0, 0] x [0, 2^31] holds no
// elements, so nothing large is allocated.)
TEST(MatmulError, DimensionBeyondBlasIntIsRejected) {
  const std::string message = invalid_argument_message([] {
    ag::matmul(ag::zeros({0, 0}), ag::zeros({0, int64_t{1} << 31}));
  });
  EXPECT_TRUE(contains(message, "matmul: dimensions 0 x 0 x 2147483648 exceed the BLAS limit"))
      << message;
}

// ---- add_bias ----

TEST(AddBiasError, BiasLengthMismatchNamesBothShapes) {
  const std::string message = invalid_argument_message([] {
    ag::add_bias(ag::zeros({2, 3}), ag::zeros({4}));
  });
  EXPECT_TRUE(contains(message, "add_bias: shapes [2, 3] and [4] do not match"));
  EXPECT_TRUE(contains(message, "[N, H]"));
}

TEST(AddBiasError, WrongRanksAreRejected) {
  EXPECT_TRUE(contains(invalid_argument_message([] {
                         ag::add_bias(ag::zeros({2, 3}), ag::zeros({1, 3}));
                       }),
                       "[2, 3] and [1, 3]"));
  EXPECT_TRUE(
      contains(invalid_argument_message([] { ag::add_bias(ag::zeros({3}), ag::zeros({3})); }),
               "[3] and [3]"));
}

TEST(AddBiasError, MixedDtypesNameBothDtypes) {
  const std::string message = invalid_argument_message([] {
    ag::add_bias(ag::zeros({2, 3}, f64), ag::zeros({3}, f32));
  });
  EXPECT_TRUE(contains(message, "add_bias: dtypes float64 and float32 do not match"));
}

// ---- element-wise ops ----

TEST(ElementwiseError, ShapeMismatchNamesTheOpAndBothShapes) {
  using Op = Tensor (*)(const Tensor&, const Tensor&);
  const std::vector<std::pair<std::string, Op>> ops{
      {"add", [](const Tensor& a, const Tensor& b) { return ag::add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return ag::sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return ag::mul(a, b); }}};
  for (const auto& [name, op] : ops) {
    SCOPED_TRACE(name);
    const std::string message = invalid_argument_message([op] {
      op(ag::zeros({2, 3}), ag::zeros({3, 2}));
    });
    EXPECT_TRUE(contains(message, name + ": shapes [2, 3] and [3, 2] do not match"));
  }
}

TEST(ElementwiseError, NoBroadcastingOfScalars) {
  const std::string message = invalid_argument_message([] {
    ag::add(ag::zeros({2, 3}), ag::scalar(1.0));
  });
  EXPECT_TRUE(contains(message, "[2, 3] and []"));
}

TEST(ElementwiseError, MixedDtypesNameBothDtypes) {
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    const std::string message = invalid_argument_message([which] {
      const Tensor a = ag::zeros({2}, f32), b = ag::zeros({2}, f64);
      if (which == 0) ag::add(a, b);
      if (which == 1) ag::sub(a, b);
      if (which == 2) ag::mul(a, b);
    });
    EXPECT_TRUE(contains(message, "dtypes float32 and float64 do not match"));
    EXPECT_TRUE(contains(message, ".to()"));
  }
}

TEST(ElementwiseError, MeanOfAnEmptyTensorIsRejected) {
  EXPECT_TRUE(contains(invalid_argument_message([] {
                         ag::mean(ag::zeros({0, 3}));
                       }),
                       "mean: empty tensor of shape [0, 3]"));
}

// ---- backward ----

TEST(BackwardError, NonScalarOutputNamesItsShape) {
  Tensor w = ag::ones({2, 3});
  w.requires_grad_();
  const Tensor y = ag::relu(w);
  const std::string message = invalid_argument_message([&] { y.backward(); });
  EXPECT_TRUE(contains(message, "backward: only a scalar output"));
  EXPECT_TRUE(contains(message, "[2, 3]"));
  EXPECT_TRUE(contains(message, "6 elements"));
  EXPECT_FALSE(w.grad().defined());
}

TEST(BackwardError, OutputThatDoesNotRequireGradIsRejected) {
  const Tensor loss = ag::l2(ag::ones({3}));
  EXPECT_TRUE(
      contains(invalid_argument_message([&] { loss.backward(); }), "does not require grad"));
}

TEST(BackwardError, UndefinedTensorIsRejected) {
  EXPECT_TRUE(contains(invalid_argument_message([] { Tensor().backward(); }), "undefined"));
}

// ---- softmax_cross_entropy ----

TEST(SoftmaxCrossEntropyError, LabelOutsideTheClassesNamesLabelRowAndClassCount) {
  const std::vector<int32_t> labels{0, 3, 1};
  const std::string message = invalid_argument_message([&] {
    ag::softmax_cross_entropy(ag::zeros({3, 3}), labels);
  });
  EXPECT_TRUE(contains(message, "label 3"));
  EXPECT_TRUE(contains(message, "row 1"));
  EXPECT_TRUE(contains(message, "[0, 3)"));
}

TEST(SoftmaxCrossEntropyError, NegativeLabelIsRejected) {
  const std::vector<int32_t> labels{-1, 0};
  const std::string message = invalid_argument_message([&] {
    ag::softmax_cross_entropy(ag::zeros({2, 4}), labels);
  });
  EXPECT_TRUE(contains(message, "label -1 at row 0 is outside [0, 4)"));
}

TEST(SoftmaxCrossEntropyError, EmptyBatchIsRejected) {
  const std::string message = invalid_argument_message([] {
    ag::softmax_cross_entropy(ag::zeros({0, 3}), std::vector<int32_t>{});
  });
  EXPECT_TRUE(contains(message, "empty batch"));
  EXPECT_TRUE(contains(message, "[0, 3]"));
}

TEST(SoftmaxCrossEntropyError, WrongLabelCountIsRejected) {
  const std::vector<int32_t> labels{0, 1};
  const std::string message = invalid_argument_message([&] {
    ag::softmax_cross_entropy(ag::zeros({3, 2}), labels);
  });
  EXPECT_TRUE(contains(message, "2 labels for scores of shape [3, 2]"));
}

TEST(SoftmaxCrossEntropyError, ScoresMustBeAMatrixWithClasses) {
  const std::vector<int32_t> labels{0};
  EXPECT_TRUE(
      contains(invalid_argument_message([&] { ag::softmax_cross_entropy(ag::zeros({3}), labels); }),
               "scores must be [N, C], got shape [3]"));
  EXPECT_TRUE(contains(invalid_argument_message([&] {
                         ag::softmax_cross_entropy(ag::zeros({1, 0}), labels);
                       }),
                       "no classes"));
}

TEST(ArgmaxRowsError, ScoresMustBeAMatrixWithClasses) {
  EXPECT_TRUE(
      contains(invalid_argument_message([] { ag::argmax_rows(ag::zeros({4})); }), "argmax_rows"));
  EXPECT_TRUE(contains(invalid_argument_message([] {
                         ag::argmax_rows(ag::zeros({2, 0}));
                       }),
                       "[2, 0]"));
}

// ---- tensors ----

TEST(TensorError, ItemOnANonScalarNamesTheShape) {
  const std::string message = invalid_argument_message([] { ag::zeros({2, 2}).item(); });
  EXPECT_TRUE(contains(message, "Tensor::item: tensor of shape [2, 2] has 4 elements, not 1"));
}

TEST(TensorError, WrongValueCountIsRejected) {
  const std::string message = invalid_argument_message([] { ag::tensor({1, 2, 3, 4, 5}, {2, 3}); });
  EXPECT_TRUE(contains(message, "tensor: 5 values given for shape [2, 3], which holds 6"));
}

TEST(TensorError, NegativeExtentIsRejected) {
  ag::Generator gen(0);
  for (const auto& make : std::vector<std::function<void()>>{[] {
                                                               ag::zeros({2, -1});
                                                             },
                                                             [] {
                                                               ag::tensor({}, {-2, 0});
                                                             },
                                                             [&gen] { ag::randn({-3}, gen); },
                                                             [] {
                                                               ag::Tensor::empty({4, -4});
                                                             }}) {
    const std::string message = invalid_argument_message(make);
    EXPECT_TRUE(contains(message, "extents must not be negative"));
  }
  EXPECT_TRUE(contains(invalid_argument_message([] { ag::shape_numel({2, -1}); }), "[2, -1]"));
}

TEST(TensorError, ElementCountOverflowIsRejected) {
  EXPECT_TRUE(contains(invalid_argument_message([] {
                         ag::shape_numel({1LL << 40, 1LL << 40});
                       }),
                       "overflows"));
}

TEST(TensorError, DataOfTheWrongTypeIsRejected) {
  Tensor f = ag::zeros({2}, f32);
  EXPECT_TRUE(contains(invalid_argument_message([&] { f.data<double>(); }),
                       "tensor is float32, asked for double"));
  const Tensor d = ag::zeros({2}, f64);
  EXPECT_TRUE(contains(invalid_argument_message([&] { d.data<float>(); }),
                       "tensor is float64, asked for float"));
}

TEST(TensorError, SizeOfAMissingDimensionIsRejected) {
  const Tensor t = ag::zeros({2, 3});
  EXPECT_TRUE(contains(invalid_argument_message([&] { t.size(2); }),
                       "dimension 2 is out of range for shape [2, 3]"));
  EXPECT_TRUE(contains(invalid_argument_message([&] { t.size(-3); }), "dimension -3"));
}

TEST(TensorError, InPlaceUpdatesWithMismatchedShapesAreRejected) {
  Tensor t = ag::zeros({2, 3});
  EXPECT_TRUE(contains(invalid_argument_message([&] {
                         t.copy_(ag::zeros({3, 2}));
                       }),
                       "copy_: shapes [2, 3] and [3, 2] do not match"));
  EXPECT_TRUE(contains(invalid_argument_message([&] { t.add_(ag::zeros({6})); }),
                       "add_: shapes [2, 3] and [6] do not match"));
  EXPECT_TRUE(contains(invalid_argument_message([&] {
                         t.add_(ag::zeros({2, 3}, f64));
                       }),
                       "float32 and float64"));
}

TEST(TensorError, UndefinedTensorUseThrowsLogicError) {
  const Tensor t;
  EXPECT_THROW(t.shape(), std::logic_error);
  EXPECT_THROW(t.numel(), std::logic_error);
  EXPECT_THROW(t.item(), std::logic_error);
  EXPECT_TRUE(contains(invalid_argument_message([&] { ag::relu(t); }),
                       "relu: an input tensor is undefined"));
  EXPECT_TRUE(contains(invalid_argument_message([&] {
                         ag::matmul(ag::zeros({1, 1}), t);
                       }),
                       "matmul: an input tensor is undefined"));
}

// Every op, handed an undefined tensor for any of its inputs, names itself (the single-input ops
// have no shape or dtype to disagree about; the others are tested above).
TEST(TensorError, EveryOpNamesItselfWhenAnInputIsUndefined) {
  const Tensor u;
  const Tensor m = ag::zeros({2, 2}), v = ag::zeros({2});
  const std::vector<int32_t> labels = {0, 1};
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"matmul", [&] { ag::matmul(u, m); }},
      {"matmul", [&] { ag::matmul(m, u); }},
      {"add_bias", [&] { ag::add_bias(u, v); }},
      {"add_bias", [&] { ag::add_bias(m, u); }},
      {"relu", [&] { ag::relu(u); }},
      {"softmax_cross_entropy", [&] { ag::softmax_cross_entropy(u, labels); }},
      {"l2", [&] { ag::l2(u); }},
      {"add", [&] { ag::add(u, m); }},
      {"sub", [&] { ag::sub(m, u); }},
      {"mul", [&] { ag::mul(u, m); }},
      {"scale", [&] { ag::scale(u, 2.0); }},
      {"sum", [&] { ag::sum(u); }},
      {"mean", [&] { ag::mean(u); }},
      {"cast", [&] { ag::cast(u, f64); }},
  };
  for (const auto& [op, call] : calls) {
    SCOPED_TRACE(op);
    std::string message;
    try {
      call();
    } catch (const std::exception& e) {
      message = e.what();
    }
    EXPECT_TRUE(contains(message, op + ":")) << message;
  }
}

TEST(GeneratorError, BelowZeroIsRejected) {
  ag::Generator gen(0);
  EXPECT_THROW(gen.below(0), std::invalid_argument);
}

TEST(ThreadsError, FewerThanOneThreadIsRejected) {
  EXPECT_TRUE(contains(invalid_argument_message([] { ag::set_num_threads(0); }), "got 0"));
}

// ---- gradcheck ----

TEST(GradcheckError, UndefinedInputIsRejected) {
  EXPECT_TRUE(contains(invalid_argument_message(
                           [] { ag::gradcheck([](const auto& in) { return in[0]; }, {Tensor()}); }),
                       "gradcheck: an input tensor is undefined"));
}

TEST(GradcheckError, FunctionReturningFloat32IsRejected) {
  const std::string message = invalid_argument_message([] {
    ag::gradcheck([](const auto& in) { return ag::cast(ag::sum(in[0]), DType::Float32); },
                  {ag::ones({2}, f64)});
  });
  EXPECT_TRUE(contains(message, "float32"));
  EXPECT_TRUE(contains(message, "Float64"));
}

}  // namespace
