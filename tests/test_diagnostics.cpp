// check_graph: per-node gradient diagnosis. A correct two-layer loss (built-in ops, or correct
// custom ops) is clean at every node; each classic mistake, planted in a custom op that replaces
// a built-in, is named as the first bad node, with the line that created it. Also: graph order,
// the report, released graphs, Float32 graphs, inputs at relu's kink, NaN gradients, and nodes
// that cannot be checked.
//
// The tests that plant a mistake print check_graph's report (docs/two-layer-gradients.md shows
// them): ./build/release/tests/test_diagnostics --gtest_filter='CheckGraph.Names*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"
#include "tests/two_layer_mistakes.h"

namespace {

using ag::DType;
using ag::GraphCheck;
using ag::NodeCheck;
using ag::Tensor;
using ag::Where;
using ag::test::contains;
using ag::test::thrown_message;
using ag::test::TwoLayerLoss;
using ag::test::TwoLayerOps;

constexpr DType f64 = DType::Float64;

bool same_place(const Where& a, const Where& b) {
  return a.line() == b.line() && std::string(a.file_name()) == b.file_name();
}

// The index of the node created at `where`, or -1.
int index_of(const GraphCheck& check, const Where& where) {
  for (const NodeCheck& n : check.nodes)
    if (same_place(n.where, where)) return static_cast<int>(n.index);
  return -1;
}

// Asserts that the diagnosis names the node created at `planted` (an op called `op`) as the
// first bad node, that every other failing node is another use of the same op (one of
// `also_planted`), and that every node not planted passed. Prints the report.
void expect_first_bad(const GraphCheck& check, const std::string& op, const Where& planted,
                      const std::vector<Where>& also_planted = {}) {
  std::cout << check.report();
  ASSERT_FALSE(check.ok());
  const NodeCheck* bad = check.first_bad();
  ASSERT_NE(bad, nullptr) << check.report();
  EXPECT_EQ(bad->op, op) << check.report();
  EXPECT_TRUE(same_place(bad->where, planted)) << "named " << bad->location() << ", planted at "
                                               << planted.file_name() << ":" << planted.line();
  for (const NodeCheck& n : check.nodes) {
    const bool is_planted = same_place(n.where, planted) ||
                            std::any_of(also_planted.begin(), also_planted.end(),
                                        [&](const Where& w) { return same_place(n.where, w); });
    if (is_planted) {
      EXPECT_EQ(n.status, NodeCheck::Status::Failed) << "#" << n.index << " " << n.op;
    } else {
      EXPECT_TRUE(n.passed()) << "#" << n.index << " " << n.op << " is correct but did not pass:\n"
                              << check.report();
    }
  }
}

// ---- correct graphs are clean ----

TEST(CheckGraph, TwoLayerLossWithBuiltInOpsIsCleanAtEveryNode) {
  const auto data = ag::test::two_layer_data();
  const GraphCheck check = ag::check_graph(ag::test::two_layer_loss(data).loss);
  EXPECT_TRUE(check.ok()) << check.report();
  EXPECT_EQ(check.first_bad(), nullptr);
  // matmul, add_bias, relu, matmul, add_bias, softmax_cross_entropy, l2, l2, add, scale, add
  ASSERT_EQ(check.nodes.size(), 11u) << check.report();
  for (const NodeCheck& n : check.nodes) {
    EXPECT_TRUE(n.passed()) << n.op;
    EXPECT_LT(n.max_rel_error(), 1e-7) << n.op;
    EXPECT_EQ(n.kinks, 0) << n.op;
  }
}

TEST(CheckGraph, TwoLayerLossWithCorrectCustomOpsIsCleanAtEveryNode) {
  const auto data = ag::test::two_layer_data();
  const GraphCheck check =
      ag::check_graph(ag::test::two_layer_loss(data, ag::test::correct_custom_ops()).loss);
  EXPECT_TRUE(check.ok()) << check.report();
  std::multiset<std::string> ops;
  for (const NodeCheck& n : check.nodes) ops.insert(n.op);
  EXPECT_EQ(ops.count("custom_add_bias"), 2u);
  EXPECT_EQ(ops.count("custom_relu"), 1u);
  EXPECT_EQ(ops.count("custom_softmax_cross_entropy"), 1u);
  EXPECT_EQ(ops.count("custom_l2"), 2u);
}

TEST(CheckGraph, ListsNodesInGraphOrderWithInputsBeforeConsumers) {
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data);
  const GraphCheck check = ag::check_graph(built.loss);
  const std::vector<Where> chain = {built.matmul1, built.add_bias1, built.relu,
                                    built.matmul2, built.add_bias2, built.softmax_cross_entropy};
  for (std::size_t i = 0; i < chain.size(); ++i) {
    ASSERT_GE(index_of(check, chain[i]), 0) << i;
    if (i > 0) {
      EXPECT_LT(index_of(check, chain[i - 1]), index_of(check, chain[i])) << i;
    }
  }
  for (std::size_t i = 0; i < check.nodes.size(); ++i) EXPECT_EQ(check.nodes[i].index, i);
  EXPECT_EQ(check.nodes.back().op, "add");  // the loss itself comes last
  EXPECT_LT(index_of(check, built.l2_w1), static_cast<int>(check.nodes.size()) - 1);
}

// ---- each classic mistake is named as the first bad node ----

TEST(CheckGraph, NamesReluWithoutMaskAsFirstBadNode) {
  TwoLayerOps ops;
  ops.relu = [](const Tensor& x, Where w) { return ag::test::relu_without_mask(x, w); };
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  expect_first_bad(ag::check_graph(built.loss), "relu_without_mask", built.relu);
}

TEST(CheckGraph, NamesL2WithoutFactor2AsFirstBadNode) {
  TwoLayerOps ops;
  ops.l2 = [](const Tensor& w, Where at) { return ag::test::l2_without_factor_2(w, at); };
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  const GraphCheck check = ag::check_graph(built.loss);
  // Both weights' penalties use the planted op: the first of the two in graph order is named.
  const bool w1_first = index_of(check, built.l2_w1) < index_of(check, built.l2_w2);
  expect_first_bad(check, "l2_without_factor_2", w1_first ? built.l2_w1 : built.l2_w2,
                   {w1_first ? built.l2_w2 : built.l2_w1});
}

TEST(CheckGraph, NamesSoftmaxCrossEntropyWithout1OverNAsFirstBadNode) {
  TwoLayerOps ops;
  ops.softmax_cross_entropy = [](const Tensor& s, std::span<const int32_t> y, Where w) {
    return ag::test::softmax_cross_entropy_without_1_over_n(s, y, w);
  };
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  expect_first_bad(ag::check_graph(built.loss), "softmax_cross_entropy_without_1_over_n",
                   built.softmax_cross_entropy);
}

TEST(CheckGraph, NamesBiasGradientAsRowSumsAsFirstBadNode) {
  TwoLayerOps ops;
  ops.add_bias = [](const Tensor& x, const Tensor& b, Where w) {
    return ag::test::add_bias_grad_row_sums(x, b, w);
  };
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  const GraphCheck check = ag::check_graph(built.loss);
  expect_first_bad(check, "add_bias_grad_row_sums", built.add_bias1, {built.add_bias2});
  // Summed over the wrong axis: one value per sample (N = 4) for a bias of H = 5.
  ASSERT_NE(check.first_bad(), nullptr);
  EXPECT_TRUE(
      contains(check.first_bad()->message,
               "backward returned a float64 [4] gradient for input 1, which is float64 [5]"));
}

TEST(CheckGraph, NamesBiasGradientNotSummedOverTheBatchAsFirstBadNode) {
  TwoLayerOps ops;
  ops.add_bias = [](const Tensor& x, const Tensor& b, Where w) {
    return ag::test::add_bias_grad_batch_mean(x, b, w);
  };
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  const GraphCheck check = ag::check_graph(built.loss);
  expect_first_bad(check, "add_bias_grad_batch_mean", built.add_bias1, {built.add_bias2});
  ASSERT_NE(check.first_bad(), nullptr);
  const ag::GradcheckResult& result = check.first_bad()->gradcheck;
  ASSERT_EQ(result.inputs.size(), 2u);
  EXPECT_LT(result.inputs[0].max_rel_error, 1e-8);  // dL/dx is right
  // dL/db is 1/N = 1/4 of the truth: relative error |1/4 - 1| / (1/4 + 1) = 0.6.
  EXPECT_NEAR(result.inputs[1].max_rel_error, 0.6, 1e-6);
}

TEST(CheckGraph, NamesAWrongBackwardInAFloat32Graph) {
  TwoLayerOps ops;
  ops.relu = [](const Tensor& x, Where w) { return ag::test::relu_without_mask(x, w); };
  const auto data = ag::test::two_layer_data(DType::Float32);
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  expect_first_bad(ag::check_graph(built.loss), "relu_without_mask", built.relu);
}

// ---- the report ----

TEST(CheckGraph, ReportShowsEachNodesOpShapesErrorAndWhereItWasCreated) {
  TwoLayerOps ops;
  ops.relu = [](const Tensor& x, Where w) { return ag::test::relu_without_mask(x, w); };
  const auto data = ag::test::two_layer_data();
  const TwoLayerLoss built = ag::test::two_layer_loss(data, ops);
  const GraphCheck check = ag::check_graph(built.loss);
  const std::string report = check.report();
  const std::string at =
      std::string(built.relu.file_name()) + ":" + std::to_string(built.relu.line());
  // One line per node: index, op, input and output shapes, error, verdict, file:line.
  std::string relu_line;
  for (std::size_t start = 0; start < report.size();) {
    const std::size_t end = report.find('\n', start);
    const std::string line = report.substr(start, end - start);
    if (line.find("  2  relu_without_mask ") == 0) relu_line = line;
    start = end + 1;
  }
  EXPECT_TRUE(contains(relu_line, "[4, 5] -> [4, 5]"));
  EXPECT_TRUE(contains(relu_line, "FAILED  " + at));
  EXPECT_TRUE(contains(report, "[4, 3], [3, 5] -> [4, 5]"));
  EXPECT_TRUE(contains(report, "first bad node: #2 'relu_without_mask', created at " + at));
  EXPECT_TRUE(contains(report, "input 0 [4, 5]: max relative error 1 (FAILED)"));
  ASSERT_NE(check.first_bad(), nullptr);
  EXPECT_EQ(check.first_bad()->location(), at);
  EXPECT_EQ(check.first_bad()->input_shapes, (std::vector<ag::Shape>{{4, 5}}));
  EXPECT_EQ(check.first_bad()->output_shape, (ag::Shape{4, 5}));
}

TEST(CheckGraph, ReportOfACleanGraphSaysSo) {
  const auto data = ag::test::two_layer_data();
  const std::string report = ag::check_graph(ag::test::two_layer_loss(data).loss).report();
  EXPECT_TRUE(contains(report, "all 11 nodes agree with central differences"));
  EXPECT_EQ(report.find("FAILED"), std::string::npos) << report;
}

// ---- the graph must be intact ----

TEST(CheckGraph, ThrowsClearlyWhenTheGraphWasReleasedByBackward) {
  const auto data = ag::test::two_layer_data();
  const Tensor loss = ag::test::two_layer_loss(data).loss;
  loss.backward();
  const auto message = thrown_message<std::runtime_error>([&] { ag::check_graph(loss); });
  ASSERT_TRUE(message.has_value());
  EXPECT_TRUE(contains(*message, "was released by backward()"));
  EXPECT_TRUE(contains(*message, "retain_graph = true"));
}

TEST(CheckGraph, WorksAfterBackwardWithRetainGraph) {
  const auto data = ag::test::two_layer_data();
  const Tensor loss = ag::test::two_layer_loss(data).loss;
  loss.backward({.retain_graph = true});
  const GraphCheck check = ag::check_graph(loss);
  EXPECT_TRUE(check.ok()) << check.report();
  loss.backward();  // the graph is still usable afterwards
}

TEST(CheckGraph, LeavesTheGraphAndTheGradientsUntouched) {
  const auto data = ag::test::two_layer_data();
  const Tensor loss = ag::test::two_layer_loss(data).loss;
  const double value = loss.item();
  ag::check_graph(loss);
  EXPECT_FALSE(data.W1.grad().defined());
  EXPECT_EQ(loss.item(), value);
  loss.backward();
  EXPECT_TRUE(data.W1.grad().defined());
}

TEST(CheckGraph, ThrowsForATensorWithoutAGraph) {
  const Tensor x = ag::ones({2}, f64);
  EXPECT_THROW(ag::check_graph(x), std::invalid_argument);
}

TEST(CheckGraph, ThrowsUnderNoGradGuard) {
  Tensor x = ag::ones({2}, f64).requires_grad_();
  const Tensor y = ag::sum(ag::relu(x));
  const ag::NoGradGuard no_grad;
  EXPECT_THROW(ag::check_graph(y), std::logic_error);
}

// ---- kinks, NaN, and nodes that cannot be checked ----

TEST(CheckGraph, ReluInputsAtExactlyZeroAreMovedOffTheKinkNotBlamed) {
  // Central differences at x = 0 see slope 1/2; relu's backward says 0 (PyTorch's choice).
  Tensor x = ag::tensor({0.0, -0.5, 0.0, 1.5, 0.0, -2.0}, {6}, f64).requires_grad_();
  const Tensor weights = ag::tensor({1, 2, 3, 4, 5, 6}, {6}, f64);
  const GraphCheck check = ag::check_graph(ag::sum(ag::mul(ag::relu(x), weights)));
  EXPECT_TRUE(check.ok()) << check.report();
  ASSERT_EQ(check.nodes.front().op, "relu");
  EXPECT_EQ(check.nodes.front().kinks, 3);
  EXPECT_TRUE(contains(check.report(), "3 input element(s) at a kink"));
}

TEST(CheckGraph, ReluOfReluIsClean) {
  // The outer relu's inputs are exactly 0 wherever the inner one clipped.
  Tensor x = ag::test::away_from_zero({4, 5}, 3).requires_grad_();
  const GraphCheck check = ag::check_graph(ag::sum(ag::mul(ag::relu(ag::relu(x)), x)));
  EXPECT_TRUE(check.ok()) << check.report();
}

TEST(CheckGraph, ReluWithoutMaskIsStillBlamedWhenSomeInputsSitAtTheKink) {
  Tensor x = ag::tensor({0.0, -0.5, 0.0, 1.5, 0.0, -2.0}, {6}, f64).requires_grad_();
  const Tensor weights = ag::tensor({1, 2, 3, 4, 5, 6}, {6}, f64);
  const GraphCheck check =
      ag::check_graph(ag::sum(ag::mul(ag::test::relu_without_mask(x), weights)));
  ASSERT_NE(check.first_bad(), nullptr) << check.report();
  EXPECT_EQ(check.first_bad()->op, "relu_without_mask");
}

TEST(CheckGraph, ANaNGradientFails) {
  Tensor x = ag::tensor({1, 2, 3, 4}, {4}, f64).requires_grad_();
  const Tensor y = ag::custom_op(
      "nan_in_backward", {x}, [](const std::vector<Tensor>& in) { return in[0].clone(); },
      [](const ag::OpContext&, const Tensor& g) {
        Tensor dx = g.clone();
        dx.data<double>()[2] = std::numeric_limits<double>::quiet_NaN();  // not the first element
        return std::vector<Tensor>{dx};
      });
  const GraphCheck check = ag::check_graph(ag::sum(y));
  ASSERT_NE(check.first_bad(), nullptr) << check.report();
  EXPECT_EQ(check.first_bad()->op, "nan_in_backward");
  EXPECT_TRUE(std::isnan(check.first_bad()->max_rel_error()));
}

TEST(CheckGraph, ANodeThatCannotReplayInFloat64IsAnErrorNotAWrongBackward) {
  Tensor x = ag::ones({3}, DType::Float32).requires_grad_();
  const Tensor y = ag::custom_op(
      "float32_only", {x},
      [](const std::vector<Tensor>& in) {  // a Float32 constant: fails on Float64 inputs
        return ag::mul(in[0], ag::full({3}, 2.0, DType::Float32));
      },
      [](const ag::OpContext&, const Tensor& g) { return std::vector<Tensor>{g.clone().mul_(2)}; });
  const GraphCheck check = ag::check_graph(ag::sum(y));
  EXPECT_FALSE(check.ok());
  EXPECT_EQ(check.first_bad(), nullptr) << check.report();
  EXPECT_EQ(check.nodes.front().status, NodeCheck::Status::Error);
  EXPECT_TRUE(contains(check.nodes.front().message, "could not check: mul: dtypes"));
  EXPECT_TRUE(contains(check.report(), "ERROR"));
}

TEST(CheckGraph, ToleranceIsAnOption) {
  TwoLayerOps ops;
  ops.add_bias = [](const Tensor& x, const Tensor& b, Where w) {
    return ag::test::add_bias_grad_batch_mean(x, b, w);
  };
  const auto data = ag::test::two_layer_data();
  // The batch mean is off by a relative 0.6: a tolerance of 0.7 lets it through.
  const GraphCheck check =
      ag::check_graph(ag::test::two_layer_loss(data, ops).loss, {.tolerance = 0.7});
  EXPECT_TRUE(check.ok()) << check.report();
  EXPECT_EQ(check.tolerance, 0.7);
}

}  // namespace
