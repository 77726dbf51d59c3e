// Graph behaviour: how gradients flow and sum (diamonds, reuse, accumulation), when ops record
// nodes (NoGradGuard, detach), what backward() releases, and that graphs are freed: no cycles,
// no leaks, and no recursion deep enough to overflow the stack on a 100,000-op chain.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Shape;
using ag::Tensor;
using ag::test::all_close;
using ag::test::contains;
using ag::test::thrown_message;

constexpr DType f64 = DType::Float64;
constexpr int kLongChain = 100000;

Tensor param(const std::vector<double>& values, const Shape& shape) {
  Tensor t = ag::tensor(values, shape, f64);
  t.requires_grad_();
  return t;
}

// ---- how gradients flow and sum ----

TEST(Graph, TensorUsedTwiceInMulGetsBothGradientsSummed) {
  Tensor x = param({1, -2, 3}, {3});
  ag::sum(ag::mul(x, x)).backward();  // d(x²)/dx = 2x: x ⊙ g + g ⊙ x
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, -4, 6}));
}

TEST(Graph, TensorUsedTwiceInAddGetsBothGradientsSummed) {
  Tensor x = param({1, -2, 3}, {3});
  const Tensor g = ag::tensor({1, 10, 100}, {3}, f64);
  ag::sum(ag::mul(ag::add(x, x), g)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 20, 200}));
}

TEST(Graph, IntermediateUsedTwiceGetsBothGradientsSummed) {
  // h = 3x; L = Σ h² + Σ h, so dL/dx = 3 (2h + 1) = 18x + 3.
  Tensor x = param({1, -0.5}, {2});
  const Tensor h = ag::scale(x, 3.0);
  (ag::sum(ag::mul(h, h)) + ag::sum(h)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{21, -6}));
}

TEST(Graph, IntermediateOnPathsOfDifferentLengthsGetsAllItsGradientFirst) {
  // h = 2x feeds the product directly and through a three-op detour: h's backward must wait for
  // both. L = Σ h ⊙ 3h = 3 Σ h², so dL/dh = 6h and dL/dx = 2 · 6h = 24x (12x if h's backward ran
  // before the detour delivered its share).
  Tensor x = param({1, 2}, {2});
  const Tensor h = ag::scale(x, 2.0);
  const Tensor detour = ag::scale(ag::scale(ag::scale(h, 3.0), 1.0), 1.0);
  ag::sum(ag::mul(h, detour)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{24, 48}));
}

TEST(Graph, ParameterReusedAcrossTwoLossesGetsBothGradients) {
  Tensor w = param({1, 2, 3}, {3});
  const Tensor a = ag::tensor({0.5, -1, 4}, {3}, f64);
  const Tensor loss1 = ag::sum(ag::mul(w, a));  // dL1/dw = a
  const Tensor loss2 = ag::l2(w);               // dL2/dw = 2w
  loss1.backward();
  EXPECT_EQ(w.grad().to_vector(), a.to_vector());
  loss2.backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{2.5, 3, 10}));
}

TEST(Graph, ParameterUsedTwiceInOneModelGetsBothGradients) {
  // The same W applied twice: y = (x·W)·W, L = Σ y. dL/dW = xᵀ·1·Wᵀ + (x·W)ᵀ·1.
  Tensor w = param({1, 2, 3, 4}, {2, 2});
  const Tensor x = ag::tensor({1, 1}, {1, 2}, f64);
  ag::sum(ag::matmul(ag::matmul(x, w), w)).backward();
  // x·W = [4, 6]; 1·Wᵀ = [3, 7]; xᵀ·[3, 7] = [[3, 7], [3, 7]]; (x·W)ᵀ·[1, 1] = [[4, 4], [6, 6]].
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{7, 11, 9, 13}));
}

// matmul and l2 add their gradient into the one the engine holds already (Node::backward's
// `into`) instead of returning a new tensor for the engine to add.
TEST(Graph, AWeightsGradientsFromL2AndMatmulAreSummedEitherWayRound) {
  // L = Σ x·W + |W|²: dL/dW = xᵀ·1 + 2W. Either op's backward may run first, depending on the
  // order of the loss's terms; the second then adds into the first's gradient.
  const Tensor x = ag::tensor({1, 2}, {1, 2}, f64);
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> losses{
      {"l2 first", [&](const Tensor& w) { return ag::sum(ag::matmul(x, w)) + ag::l2(w); }},
      {"matmul first", [&](const Tensor& w) { return ag::l2(w) + ag::sum(ag::matmul(x, w)); }}};
  for (const auto& [name, loss] : losses) {
    SCOPED_TRACE(name);
    Tensor w = param({1, 2, 3, 4}, {2, 2});
    loss(w).backward();  // [[1, 1], [2, 2]] + [[2, 4], [6, 8]]
    EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{3, 5, 8, 10}));
    loss(w).backward();  // a second backward adds to it
    EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{6, 10, 16, 20}));
    {
      const Tensor held = w.grad();  // a gradient someone holds is still summed into in place
      loss(w).backward();
      EXPECT_EQ(held.to_vector(), (std::vector<double>{9, 15, 24, 30}));
    }
    w.zero_grad();  // and after zero_grad() nothing is added to the old values
    loss(w).backward();
    EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{3, 5, 8, 10}));
  }
}

TEST(Graph, AWeightUsedAsBothOperandsOfAProductAndInL2GetsAllThree) {
  // L = |W|² + Σ W·W: dL/dW = 2W + 1·Wᵀ + Wᵀ·1. Both of matmul's edges lead to W's gradient.
  Tensor w = param({1, 2, 3, 4}, {2, 2});
  (ag::l2(w) + ag::sum(ag::matmul(w, w))).backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{9, 15, 15, 21}));
}

TEST(Graph, AnOpAddsIntoAGradientOnlyWhenNothingElseHoldsIt) {
  // b = y·V, a = b·W, L = |a|² + Σ (a + b). add's backward hands one tensor to both a and b, and
  // l2(a) runs next, before b's gradient is used: adding 2a into that shared tensor would give b
  // a's gradient too.
  Tensor w = param({1, 2, 3, 4}, {2, 2});
  Tensor v = param({1, 0, 0, 1}, {2, 2});
  const Tensor y = ag::tensor({3, -1}, {1, 2}, f64);
  const Tensor b = ag::matmul(y, v), a = ag::matmul(b, w);  // b = [3, -1], a = [0, 2]
  (ag::l2(a) + ag::sum(ag::add(a, b))).backward();
  // dL/da = 2a + 1 = [1, 5]; dL/db = 1 + dL/da·Wᵀ = [12, 24].
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{3, 15, -1, -5}));     // bᵀ·dL/da
  EXPECT_EQ(v.grad().to_vector(), (std::vector<double>{36, 72, -12, -24}));  // yᵀ·dL/db
}

TEST(Graph, AGradientThatIsAlsoAnInputOfTheOpIsNotAddedInto) {
  // w's gradient, detached, multiplies w: a product written into w's gradient while it reads it
  // would scramble both. Large enough for the product to go to BLAS in parts.
  ag::Generator gen(3);
  Tensor w = ag::randn({128, 128}, gen, 1.0, f64);
  w.requires_grad_();
  ag::l2(w).backward();
  const Tensor g = w.grad().detach();  // shares the gradient's storage
  const std::vector<double> before = g.to_vector();
  ag::sum(ag::matmul(g, w)).backward();  // adds gᵀ·1: element [i, j] gains Σ_k g[k, i]
  std::vector<double> expected = before;
  for (int i = 0; i < 128; ++i)
    for (int k = 0; k < 128; ++k)
      for (int j = 0; j < 128; ++j) expected[i * 128 + j] += before[k * 128 + i];
  EXPECT_TRUE(all_close(w.grad().to_vector(), expected, 1e-12, 1.0));
}

TEST(Graph, AddingIntoAGradientMatchesSummingTheTwoSeparately) {
  // Large enough for the product to be split across threads (by rows of the gradient for the
  // first shape, by columns for the second): each part adds into its own block.
  for (const auto& [n, d, h] : {std::tuple{96, 160, 128}, std::tuple{96, 128, 160}}) {
    SCOPED_TRACE(::testing::Message() << n << "x" << d << "x" << h);
    ag::Generator gen(7);
    const Tensor x = ag::randn({n, d}, gen, 1.0, f64);
    const Tensor w0 = ag::randn({d, h}, gen, 1.0, f64);
    auto gradient = [&](const std::function<Tensor(const Tensor&)>& loss) {
      Tensor w = w0.clone();
      w.requires_grad_();
      loss(w).backward();
      return w.grad();
    };
    const Tensor from_matmul = gradient([&](const Tensor& w) { return ag::sum(ag::matmul(x, w)); });
    const Tensor from_l2 = gradient([&](const Tensor& w) { return ag::l2(w); });
    const Tensor both =
        gradient([&](const Tensor& w) { return ag::sum(ag::matmul(x, w)) + ag::l2(w); });
    EXPECT_TRUE(all_close(both.to_vector(), (from_matmul + from_l2).to_vector(), 1e-12, 1.0));
  }
}

TEST(Graph, GradientsAccumulateAcrossBackwardCalls) {
  Tensor w = param({1, -2}, {2});
  ag::l2(w).backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{2, -4}));
  ag::l2(w).backward();  // a second graph, same leaf: summed into the same grad
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{4, -8}));
}

TEST(Graph, ZeroGradLeavesADefinedAllZeroGradientThatAccumulatesAfresh) {
  Tensor w = param({1, -2}, {2});
  ag::l2(w).backward();
  ag::l2(w).backward();
  const double* storage = w.grad().data<double>();
  w.zero_grad();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().shape(), (Shape{2}));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{0, 0}));
  EXPECT_EQ(w.grad().data<double>(), storage);  // the storage is kept
  ag::l2(w).backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{2, -4}));
}

TEST(Graph, ZeroGradZeroesAGradientSomeoneElseHoldsAtOnce) {
  Tensor w = param({1, -2}, {2});
  ag::l2(w).backward();
  const Tensor held = w.grad();  // shares the gradient's storage
  w.zero_grad();
  EXPECT_EQ(held.to_vector(), (std::vector<double>{0, 0}));
  ag::l2(w).backward();
  EXPECT_EQ(held.to_vector(), (std::vector<double>{2, -4}));  // still the leaf's gradient
  EXPECT_EQ(w.grad().data<double>(), held.data<double>());
}

TEST(Graph, BackwardAfterZeroGradGivesTheNewGradientNotASum) {
  // Each way the first gradient can arrive after zero_grad(): owned by nobody else (taken over),
  // shared by two edges (add(w, w) passes one tensor to both), or shared with a saved value.
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> losses{
      {"l2", [](const Tensor& w) { return ag::l2(w); }},
      {"add(w, w)", [](const Tensor& w) { return ag::sum(ag::add(w, w)); }},
      {"sum", [](const Tensor& w) { return ag::sum(w); }}};
  for (const auto& [name, loss] : losses) {
    SCOPED_TRACE(name);
    Tensor w = param({1, -2}, {2});
    loss(w).backward();
    const std::vector<double> once = w.grad().to_vector();
    loss(w).backward();
    w.zero_grad();
    loss(w).backward();
    EXPECT_EQ(w.grad().to_vector(), once);
    loss(w).backward();  // and sums again afterwards
    EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{2 * once[0], 2 * once[1]}));
  }
}

TEST(Graph, AGradientTakenOverByALeafIsNotSharedWithAnotherLeaf) {
  // add's backward returns one tensor for both inputs: neither leaf may take it over alone.
  Tensor a = param({1, 2}, {2});
  Tensor b = param({3, 4}, {2});
  ag::sum(ag::add(a, b)).backward();
  EXPECT_NE(a.grad().data<double>(), b.grad().data<double>());
  a.zero_grad();
  b.zero_grad();
  ag::sum(ag::add(a, b)).backward();
  EXPECT_NE(a.grad().data<double>(), b.grad().data<double>());
  a.grad().fill_(7.0);
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{1, 1}));
}

TEST(Graph, GradIsUndefinedBeforeAnyBackward) {
  Tensor w = param({1}, {1});
  EXPECT_FALSE(w.grad().defined());
  const Tensor y = ag::l2(w);
  EXPECT_FALSE(w.grad().defined());
}

TEST(Graph, GradientHasTheLeafsShapeAndDtype) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(ag::dtype_name(dtype));
    Tensor w = ag::ones({2, 3}, dtype);
    w.requires_grad_();
    ag::l2(w).backward();
    EXPECT_EQ(w.grad().shape(), (Shape{2, 3}));
    EXPECT_EQ(w.grad().dtype(), dtype);
    EXPECT_TRUE(w.grad().is_leaf());
    EXPECT_FALSE(w.grad().requires_grad());
  }
}

TEST(Graph, GradientReachesOnlyLeavesThatRequireGrad) {
  const Tensor x = ag::tensor({1, 2}, {1, 2}, f64);  // data: no requires_grad_()
  Tensor w = param({3, 4}, {2, 1});
  ag::sum(ag::matmul(x, w)).backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{1, 2}));
}

TEST(Graph, IntermediatesKeepNoGradient) {
  Tensor x = param({1, 2}, {2});
  const Tensor h = ag::scale(x, 2.0);
  ag::l2(h).backward();
  EXPECT_FALSE(h.grad().defined());
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{8, 16}));  // 2 · 2h
}

TEST(Graph, BackwardOnAScalarLeafSetsItsGradToOne) {
  Tensor s = ag::scalar(3.5, f64);
  s.requires_grad_();
  s.backward();
  EXPECT_EQ(s.grad().to_vector(), (std::vector<double>{1}));
  s.backward();
  EXPECT_EQ(s.grad().item(), 2.0);
}

TEST(Graph, BackwardAcceptsAnyOneElementOutput) {
  Tensor w = param({2, 3}, {1, 2});
  const Tensor out = ag::matmul(w, ag::tensor({1, -1}, {2, 1}, f64));  // shape [1, 1]
  out.backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{1, -1}));
}

// ---- when ops record nodes ----

TEST(Graph, OpsRecordANodeOnlyWhenAnInputRequiresGrad) {
  const Tensor a = ag::ones({2, 2}, f64);
  Tensor b = ag::ones({2, 2}, f64);
  const Tensor plain = ag::matmul(a, b);
  EXPECT_EQ(plain.grad_fn(), nullptr);
  EXPECT_FALSE(plain.requires_grad());
  EXPECT_TRUE(plain.is_leaf());
  b.requires_grad_();
  const Tensor tracked = ag::matmul(a, b);
  ASSERT_NE(tracked.grad_fn(), nullptr);
  EXPECT_TRUE(tracked.requires_grad());
  EXPECT_FALSE(tracked.is_leaf());
}

TEST(Graph, NodeRecordsTheOpNameOutputAndCallSite) {
  Tensor w = param({1, 2, 3, 4, 5, 6}, {2, 3});
  const int line = __LINE__ + 1;
  const Tensor y = ag::matmul(ag::ones({4, 2}, f64), w);
  const std::shared_ptr<ag::Node>& node = y.grad_fn();
  ASSERT_NE(node, nullptr);
  EXPECT_STREQ(node->name, "matmul");
  EXPECT_EQ(node->shape, (Shape{4, 3}));
  EXPECT_EQ(node->dtype, f64);
  EXPECT_EQ(node->where.line(), static_cast<uint32_t>(line));
  EXPECT_TRUE(contains(node->where.file_name(), "test_graph.cpp"));
  ASSERT_EQ(node->next.size(), 2u);
  EXPECT_FALSE(node->next[0].needs_grad());                     // the ones do not require grad
  EXPECT_EQ(node->next[1].leaf, w.impl());                      // w collects its gradient
  EXPECT_EQ(node->inputs[1].data<double>(), w.data<double>());  // saved values, shared storage
  EXPECT_EQ(node->inputs[1].grad_fn(), nullptr);                // ... but not the graph behind them
}

TEST(Graph, OperatorsRecordTheCallersLine) {
  const Tensor a = param({1, 2}, {2});
  const Tensor b = param({3, 4}, {2});
  const int line = __LINE__ + 1;
  const Tensor made[] = {a + b, a - b, a * b, a * 2.0, 2.0 * a, -a};
  const char* names[] = {"add", "sub", "mul", "scale", "scale", "scale"};
  for (int i = 0; i < 6; ++i) {
    const std::shared_ptr<ag::Node>& node = made[i].grad_fn();
    ASSERT_NE(node, nullptr) << i;
    EXPECT_STREQ(node->name, names[i]) << i;
    EXPECT_EQ(node->where.line(), static_cast<uint32_t>(line)) << names[i] << " (" << i << ")";
    EXPECT_TRUE(contains(node->where.file_name(), "test_graph.cpp")) << node->where.file_name();
  }
  // In a chain, every node (the inner ones too) names the line.
  const int chain_line = __LINE__ + 1;
  const Tensor chained = (a + b) * (a - b) * 0.5;
  const ag::Node* node = chained.grad_fn().get();
  for (const char* name : {"scale", "mul", "add"}) {
    ASSERT_NE(node, nullptr) << name;
    EXPECT_STREQ(node->name, name);
    EXPECT_EQ(node->where.line(), static_cast<uint32_t>(chain_line)) << name;
    node = node->next[0].node.get();
  }
}

TEST(Graph, OneNodePerTensorOp) {
  // A whole two-layer loss is 11 nodes, however many scalars flow through it.
  ag::Generator gen(1);
  const Tensor X = ag::randn({64, 32}, gen, 1.0, f64);
  Tensor W1 = ag::randn({32, 16}, gen, 1.0, f64), b1 = ag::zeros({16}, f64);
  Tensor W2 = ag::randn({16, 10}, gen, 1.0, f64), b2 = ag::zeros({10}, f64);
  for (Tensor* p : {&W1, &b1, &W2, &b2}) p->requires_grad_();
  std::vector<int32_t> y(64, 3);
  const Tensor scores =
      ag::add_bias(ag::matmul(ag::relu(ag::add_bias(ag::matmul(X, W1), b1)), W2), b2);
  const Tensor loss =
      ag::softmax_cross_entropy(scores, y) + ag::scale(ag::l2(W1) + ag::l2(W2), 0.1);
  const std::vector<ag::Node*> order = ag::detail::topological_order(loss.grad_fn().get());
  ASSERT_EQ(order.size(), 11u);
  EXPECT_STREQ(order.front()->name, "add");  // the root comes first
  EXPECT_EQ(order.front(), loss.grad_fn().get());
  // Every node comes before the nodes that produced its inputs.
  for (std::size_t i = 0; i < order.size(); ++i) {
    for (const ag::Edge& e : order[i]->next) {
      if (!e.node) continue;
      for (std::size_t j = 0; j <= i; ++j) EXPECT_NE(order[j], e.node.get()) << order[i]->name;
    }
  }
}

TEST(NoGradGuard, ResultsHaveNoGradFnAndDoNotRequireGrad) {
  Tensor w = param({1, 2, 3, 4}, {2, 2});
  Tensor b = param({1, 2}, {2});
  ag::NoGradGuard guard;
  EXPECT_FALSE(ag::is_grad_enabled());
  const std::vector<int32_t> labels{0, 1};
  for (const Tensor& t :
       {ag::matmul(w, w), ag::add_bias(w, b), ag::relu(w), ag::softmax_cross_entropy(w, labels),
        ag::l2(w), ag::add(w, w), ag::sub(w, w), ag::mul(w, w), ag::scale(w, 2.0), ag::sum(w),
        ag::mean(w), ag::cast(w, DType::Float32), w.to(DType::Float32)}) {
    EXPECT_EQ(t.grad_fn(), nullptr);
    EXPECT_FALSE(t.requires_grad());
    EXPECT_TRUE(t.is_leaf());
  }
  EXPECT_EQ(ag::matmul(w, w).to_vector(), (std::vector<double>{7, 10, 15, 22}));  // still computed
}

TEST(NoGradGuard, NestedGuardsRestoreThePreviousMode) {
  EXPECT_TRUE(ag::is_grad_enabled());
  {
    ag::NoGradGuard outer;
    EXPECT_FALSE(ag::is_grad_enabled());
    {
      ag::NoGradGuard inner;
      EXPECT_FALSE(ag::is_grad_enabled());
    }
    EXPECT_FALSE(ag::is_grad_enabled());  // the inner guard restores "off", not "on"
  }
  EXPECT_TRUE(ag::is_grad_enabled());
  Tensor w = param({1}, {1});
  EXPECT_NE(ag::l2(w).grad_fn(), nullptr);
}

TEST(NoGradGuard, AffectsOnlyItsOwnThread) {
  ag::NoGradGuard guard;
  bool enabled_elsewhere = false;
  std::thread([&enabled_elsewhere] { enabled_elsewhere = ag::is_grad_enabled(); }).join();
  EXPECT_TRUE(enabled_elsewhere);
  EXPECT_FALSE(ag::is_grad_enabled());
}

TEST(Graph, RequiresGradOnANonLeafThrows) {
  Tensor x = param({1, 2}, {2});
  Tensor h = ag::relu(x);
  const auto message = thrown_message<std::invalid_argument>([&] { h.requires_grad_(); });
  ASSERT_TRUE(message) << "no std::invalid_argument";
  EXPECT_TRUE(contains(*message, "requires_grad_"));
  EXPECT_TRUE(contains(*message, "relu"));
  EXPECT_TRUE(contains(*message, "detach()"));
  EXPECT_NE(h.grad_fn(), nullptr);  // unchanged
}

TEST(Graph, DetachSharesStorageAndCutsTheGraph) {
  Tensor x = param({1, 2}, {2});
  const Tensor h = ag::scale(x, 3.0);
  Tensor d = h.detach();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.grad_fn(), nullptr);
  EXPECT_EQ(d.data<double>(), h.data<double>());
  d.mul_(2.0);  // shared storage: h sees the change
  EXPECT_EQ(h.to_vector(), (std::vector<double>{6, 12}));
  // Only the attached use of h carries gradient back to x.
  (ag::sum(h) + ag::l2(d)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 3}));
  EXPECT_FALSE(d.grad().defined());
}

TEST(Graph, DetachOfALeafKeepsTheLeafMarked) {
  Tensor x = param({1, 2}, {2});
  Tensor d = x.detach();
  d.requires_grad_();  // a separate leaf
  EXPECT_TRUE(x.requires_grad());
  ag::l2(d).backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(d.grad().to_vector(), (std::vector<double>{2, 4}));
}

// ---- what backward() releases ----

TEST(Graph, SecondBackwardThroughAReleasedGraphThrows) {
  Tensor w = param({1, 2}, {2});
  const Tensor loss = ag::sum(ag::relu(w));
  loss.backward();
  const auto message = thrown_message<std::runtime_error>([&] { loss.backward(); });
  ASSERT_TRUE(message) << "no std::runtime_error";
  EXPECT_TRUE(contains(*message, "already released"));
  EXPECT_TRUE(contains(*message, "retain_graph"));
  EXPECT_TRUE(contains(*message, "'sum'"));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{1, 1}));  // the failed call added nothing
}

TEST(Graph, BackwardThroughAnIntermediateReleasedByAnotherLossThrows) {
  Tensor w = param({1, 2}, {2});
  const Tensor h = ag::relu(w);
  const Tensor loss1 = ag::sum(h);
  const Tensor loss2 = ag::l2(h);
  loss1.backward();
  const auto message = thrown_message<std::runtime_error>([&] { loss2.backward(); });
  ASSERT_TRUE(message) << "no std::runtime_error";
  EXPECT_TRUE(contains(*message, "'relu'"));
  EXPECT_TRUE(contains(*message, "test_graph.cpp"));  // where the released op was created
}

TEST(Graph, RetainGraphAllowsASecondBackward) {
  Tensor w = param({1, -2}, {2});
  const Tensor loss = ag::l2(ag::scale(w, 3.0));  // dL/dw = 18 w
  loss.backward({.retain_graph = true});
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{18, -36}));
  loss.backward({.retain_graph = true});
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{36, -72}));
  loss.backward();  // the last one may release
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{54, -108}));
  EXPECT_THROW(loss.backward(), std::runtime_error);
}

TEST(Graph, BackwardReleasesEverySavedBuffer) {
  Tensor x = param({1, -2, 3, 4, -5, 6}, {2, 3});
  Tensor w = param({1, 2, 3}, {3, 1});
  std::weak_ptr<ag::detail::Storage> h_storage, r_storage;
  Tensor loss;
  {
    const Tensor h = ag::matmul(x, w);
    const Tensor r = ag::relu(h);
    loss = ag::l2(r);
    h_storage = h.impl()->storage;
    r_storage = r.impl()->storage;
  }
  // Only the graph keeps the intermediates' values now: relu saved h, l2 saved r.
  EXPECT_FALSE(h_storage.expired());
  EXPECT_FALSE(r_storage.expired());
  loss.backward();
  EXPECT_TRUE(h_storage.expired());
  EXPECT_TRUE(r_storage.expired());
  for (ag::Node* node : ag::detail::topological_order(loss.grad_fn().get())) {
    SCOPED_TRACE(node->name);
    EXPECT_TRUE(node->released());
    EXPECT_TRUE(node->inputs.empty());
    EXPECT_THROW(node->forward({Tensor(), Tensor()}), std::logic_error);
    EXPECT_FALSE(node->grad.defined());
  }
}

TEST(Graph, RetainGraphKeepsTheSavedBuffers) {
  Tensor x = param({1, -2, 3, 4, -5, 6}, {2, 3});
  Tensor w = param({1, 2, 3}, {3, 1});
  std::weak_ptr<ag::detail::Storage> r_storage;
  Tensor loss;
  {
    const Tensor r = ag::relu(ag::matmul(x, w));
    loss = ag::l2(r);
    r_storage = r.impl()->storage;
  }
  loss.backward({.retain_graph = true});
  EXPECT_FALSE(r_storage.expired());
  for (ag::Node* node : ag::detail::topological_order(loss.grad_fn().get())) {
    SCOPED_TRACE(node->name);
    EXPECT_FALSE(node->released());
    EXPECT_EQ(node->inputs.size(), node->next.size());
    EXPECT_FALSE(node->grad.defined());  // no scratch gradient left behind
  }
}

// ---- the graph is freed ----

TEST(Graph, NodeExpiresOnceTheLossAndIntermediatesAreGone) {
  Tensor w = param({1, 2, 3, 4}, {2, 2});
  std::weak_ptr<ag::Node> loss_node, hidden_node;
  {
    const Tensor h = ag::relu(ag::matmul(w, w));
    const Tensor loss = ag::l2(h);
    loss_node = loss.grad_fn();
    hidden_node = h.grad_fn();
    EXPECT_FALSE(loss_node.expired());
  }
  EXPECT_TRUE(loss_node.expired());
  EXPECT_TRUE(hidden_node.expired());
  EXPECT_EQ(w.impl().use_count(), 1);  // the graph let go of the leaf too
}

TEST(Graph, NodeExpiresAfterBackwardOnceTheLossIsGone) {
  for (bool retain : {false, true}) {
    SCOPED_TRACE(retain ? "retain_graph" : "released");
    Tensor w = param({1, 2, 3, 4}, {2, 2});
    std::weak_ptr<ag::Node> loss_node, hidden_node;
    {
      const Tensor h = ag::relu(ag::matmul(w, w));
      const Tensor loss = ag::l2(h) + ag::sum(h);  // h used twice
      loss_node = loss.grad_fn();
      hidden_node = h.grad_fn();
      loss.backward({.retain_graph = retain});
    }
    EXPECT_TRUE(loss_node.expired());
    EXPECT_TRUE(hidden_node.expired());
    EXPECT_EQ(w.impl().use_count(), 1);
    EXPECT_TRUE(w.grad().defined());  // the gradient outlives the graph
  }
}

TEST(Graph, IntermediateHandleKeepsItsPartOfTheGraphAlive) {
  Tensor w = param({1, 2}, {2});
  const Tensor h = ag::scale(w, 2.0);
  std::weak_ptr<ag::Node> loss_node;
  {
    const Tensor loss = ag::l2(h);
    loss_node = loss.grad_fn();
  }
  EXPECT_TRUE(loss_node.expired());
  ASSERT_NE(h.grad_fn(), nullptr);
  ag::sum(h).backward();  // what h needs is still there
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{2, 2}));
}

TEST(Graph, LongChainBackpropagatesCorrectlyAndIsFreedAfterwards) {
  // 100,000 scales by (1 + 1e-6): dL/dx = (1 + 1e-6)^100000.
  Tensor x = param({1.0, -2.0}, {2});
  std::weak_ptr<ag::Node> first;
  {
    Tensor h = ag::scale(x, 1.0 + 1e-6);
    first = h.grad_fn();
    for (int i = 1; i < kLongChain; ++i) h = ag::scale(h, 1.0 + 1e-6);
    const Tensor loss = ag::sum(h);
    const double factor = std::pow(1.0 + 1e-6, kLongChain);
    EXPECT_NEAR(loss.item(), -factor, 1e-9 * factor);
    loss.backward();
    EXPECT_TRUE(all_close(x.grad().to_vector(), {factor, factor}, 1e-9));
    EXPECT_FALSE(first.expired());
  }  // freed here; a recursive destructor would overflow the stack
  EXPECT_TRUE(first.expired());
  EXPECT_EQ(x.impl().use_count(), 1);
}

TEST(Graph, LongChainIsDestroyedWithoutBackward) {
  Tensor x = param({1.0}, {1});
  std::weak_ptr<ag::Node> first;
  {
    Tensor h = ag::scale(x, 1.0);
    first = h.grad_fn();
    for (int i = 1; i < kLongChain; ++i) h = ag::scale(h, 1.0);
    EXPECT_FALSE(first.expired());
  }
  EXPECT_TRUE(first.expired());
  EXPECT_EQ(x.impl().use_count(), 1);
}

TEST(Graph, LongChainOfDiamondsIsDestroyedWithoutStackOverflow) {
  // h = h + h: every node is held by two edges of the next one, not one, and by the tensor that
  // the next one keeps as its input value. (x = 0 keeps the values finite.)
  Tensor x = param({0.0}, {1});
  std::weak_ptr<ag::Node> first;
  {
    Tensor h = ag::add(x, x);
    first = h.grad_fn();
    for (int i = 1; i < kLongChain; ++i) h = ag::add(h, h);
    EXPECT_EQ(h.item(), 0.0);
    EXPECT_EQ(first.use_count(), 3);
  }
  EXPECT_TRUE(first.expired());
  EXPECT_EQ(x.impl().use_count(), 1);
}

TEST(Graph, LeafUsedByManyOpsGetsEveryGradient) {
  Tensor x = param({1.0}, {1});
  Tensor acc = x;
  for (int i = 0; i < 1000; ++i) acc = ag::add(acc, x);  // 1001 x: x is used 1001 times
  ag::sum(acc).backward();
  EXPECT_EQ(x.grad().item(), 1001.0);
}

}  // namespace

namespace {

// y = x; its backward throws on demand.
Tensor fragile_identity(const Tensor& x, const bool& fail) {
  return ag::custom_op(
      "fragile_identity", {x}, [](const std::vector<Tensor>& in) { return in[0].clone(); },
      [&fail](const ag::OpContext&, const Tensor& g) {
        if (fail) throw std::runtime_error("planted failure");
        return std::vector<Tensor>{g};
      });
}

TEST(Graph, ABackwardThatThrowsLeavesNoPartialGradientInTheGraph) {
  Tensor x = ag::tensor({1.0, 2.0}, {2}, DType::Float64).requires_grad_();
  bool fail = true;
  const Tensor h = ag::scale(x, 3.0);
  const Tensor loss = ag::sum(fragile_identity(h, fail));
  EXPECT_THROW(loss.backward({.retain_graph = true}), std::runtime_error);
  for (ag::Node* node : ag::detail::topological_order(loss.grad_fn().get()))
    EXPECT_FALSE(node->grad.defined()) << node->name;
  fail = false;
  loss.backward();  // the same graph, now whole: x gets exactly one gradient
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3.0, 3.0}));
}

TEST(Graph, NodesThatReceiveNoGradientAreReleasedToo) {
  Tensor x = ag::tensor({1.0, 2.0}, {2}, DType::Float64).requires_grad_();
  const Tensor h = ag::scale(x, 2.0);
  // An op whose backward passes nothing back: the scale node behind it receives no gradient.
  const Tensor stopped = ag::custom_op(
      "stop_gradient", {h}, [](const std::vector<Tensor>& in) { return in[0].clone(); },
      [](const ag::OpContext&, const Tensor&) { return std::vector<Tensor>{Tensor()}; });
  const Tensor loss = ag::add(ag::sum(stopped), ag::sum(x));
  loss.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{1.0, 1.0}));
  ASSERT_TRUE(h.grad_fn());
  EXPECT_TRUE(h.grad_fn()->released());
  EXPECT_TRUE(h.grad_fn()->inputs.empty());
}

// ---- in-place changes to values a backward needs ----

TEST(Version, CountsEveryInPlaceUpdateAndIsSharedWithDetachedViews) {
  Tensor t = ag::zeros({3}, f64);
  EXPECT_EQ(t.version(), 0u);
  t.fill_(1.0);
  t.add_(ag::ones({3}, f64));
  t.mul_(2.0);
  t.copy_(ag::ones({3}, f64));
  EXPECT_EQ(t.version(), 4u);
  Tensor view = t.detach();  // same storage, same counter
  view.bump_version();       // e.g. after writing through view.data<double>()
  EXPECT_EQ(t.version(), 5u);
  EXPECT_EQ(t.clone().version(), 0u);  // new storage
}

TEST(Version, BackwardRefusesAnInputChangedInPlaceAfterTheForward) {
  Tensor w = param({1, -2, 3, 4, 0.5, -1}, {3, 2});
  Tensor x = ag::tensor({1, 2, 3}, {1, 3}, f64);
  const Tensor loss = ag::sum(ag::matmul(x, w));  // dL/dw needs x as it was
  const int line = __LINE__ - 1;
  x.mul_(10.0);
  const auto message = thrown_message<std::logic_error>([&] { loss.backward(); });
  ASSERT_TRUE(message.has_value());
  EXPECT_TRUE(contains(*message, "'matmul'"));
  EXPECT_TRUE(contains(*message, "test_graph.cpp:" + std::to_string(line)));
  EXPECT_TRUE(contains(*message, "input 0 (shape [1, 3])"));
  EXPECT_TRUE(contains(*message, "modified in place"));
  EXPECT_TRUE(contains(*message, "version is 1, it was 0"));
  EXPECT_FALSE(w.grad().defined());  // nothing was accumulated
}

TEST(Version, ReluRefusesItsInputChangedInPlace) {
  // relu's backward reads its mask from the input: zeroing it would zero the gradient silently.
  Tensor x = param({1, -2, 3}, {3});
  Tensor h = ag::scale(x, 1.0);
  const Tensor loss = ag::sum(ag::relu(h));
  h.fill_(-1.0);
  EXPECT_TRUE(thrown_message<std::logic_error>([&] { loss.backward(); }).has_value());
}

TEST(Version, ARefusalChangesNoGradientAndKeepsTheGraph) {
  // add_bias's node is reached first and would give b its gradient; the check runs before any.
  Tensor W = param({1, 2, 3, 4}, {2, 2});
  Tensor b = param({0.5, -0.5}, {2});
  Tensor X = ag::tensor({1, 2}, {1, 2}, f64);
  const Tensor loss = ag::sum(ag::add_bias(ag::matmul(X, W), b));
  X.mul_(3.0);
  for (int attempt = 0; attempt < 2; ++attempt) {  // the same refusal, not "already released"
    const auto message = thrown_message<std::logic_error>([&] { loss.backward(); });
    ASSERT_TRUE(message.has_value());
    EXPECT_TRUE(contains(*message, "'matmul'"));
  }
  EXPECT_FALSE(b.grad().defined());
  EXPECT_FALSE(W.grad().defined());
}

TEST(Version, AnInputOnlyTheOtherInputsGradientNeedsMayChange) {
  // dL/dW = Xᵀ·G does not depend on W, and dL/da = G ⊙ b not on a: as in PyTorch, which saves
  // an operand only when the other one needs a gradient.
  Tensor W = param({1, 2, 3, 4}, {2, 2});
  const Tensor X = ag::tensor({1, 2}, {1, 2}, f64);
  const Tensor loss = ag::sum(ag::matmul(X, W));
  W.add_(ag::ones({2, 2}, f64));
  loss.backward();
  EXPECT_EQ(W.grad().to_vector(), (std::vector<double>{1, 1, 2, 2}));

  Tensor a = param({1, 2}, {2});
  const Tensor c = ag::tensor({3, 4}, {2}, f64);
  const Tensor product = ag::sum(ag::mul(a, c));
  a.fill_(7.0);
  product.backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3, 4}));
}

TEST(Version, EachOperandIsCheckedForTheOthersGradient) {
  const auto refused = [](const Tensor& loss, const std::string& op, const std::string& input) {
    const auto message = thrown_message<std::logic_error>([&] { loss.backward(); });
    return message.has_value() && contains(*message, "'" + op + "'") &&
           contains(*message, "input " + input);
  };
  {  // dA = G · Bᵀ reads B
    Tensor A = param({1, 2}, {1, 2});
    Tensor B = ag::tensor({1, 2, 3, 4}, {2, 2}, f64);
    const Tensor loss = ag::sum(ag::matmul(A, B));
    B.mul_(2.0);
    EXPECT_TRUE(refused(loss, "matmul", "1"));
  }
  {  // da = g ⊙ b reads b
    Tensor a = param({1, 2}, {2});
    Tensor b = ag::tensor({3, 4}, {2}, f64);
    const Tensor loss = ag::sum(ag::mul(a, b));
    b.fill_(0.0);
    EXPECT_TRUE(refused(loss, "mul", "1"));
  }
  {  // db = g ⊙ a reads a
    Tensor a = ag::tensor({3, 4}, {2}, f64);
    Tensor b = param({1, 2}, {2});
    const Tensor loss = ag::sum(ag::mul(a, b));
    a.fill_(0.0);
    EXPECT_TRUE(refused(loss, "mul", "0"));
  }
}

TEST(Version, CheckGraphReportsANodeWhoseInputChanged) {
  Tensor x = param({1, -2, 3}, {3});
  Tensor h = ag::scale(x, 2.0);
  const Tensor loss = ag::sum(ag::relu(h));
  h.fill_(1.0);
  const ag::GraphCheck check = ag::check_graph(loss);
  EXPECT_FALSE(check.ok());
  EXPECT_TRUE(contains(check.report(), "modified in place"));
}

TEST(Version, OpsWhoseBackwardDoesNotReadTheirInputsDoNotMind) {
  // As in PyTorch: add's gradient is the same whatever its inputs hold.
  Tensor a = param({1, 2}, {2});
  Tensor b = ag::tensor({3, 4}, {2}, f64);
  const Tensor loss = ag::sum(ag::add(a, b));
  b.fill_(100.0);
  loss.backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 1}));
}

TEST(Version, AChangeBeforeTheForwardOrAfterTheBackwardIsFine) {
  Tensor w = param({1, 2}, {2});
  Tensor x = ag::tensor({3, 4}, {2}, f64);
  x.fill_(5.0);  // before: the node records version 1
  ag::sum(ag::mul(w, x)).backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{5, 5}));
  x.fill_(6.0);  // after: the graph is gone
  w.add_(w.grad(), -0.1);
}

TEST(Version, ARetainedGraphRefusesASecondBackwardAfterAParameterUpdate) {
  Tensor w = param({1, 2}, {2});
  const Tensor loss = ag::l2(w);
  loss.backward({.retain_graph = true});
  {
    const ag::NoGradGuard no_grad;
    w.add_(w.grad(), -0.1);  // an optimizer step
  }
  EXPECT_TRUE(thrown_message<std::logic_error>([&] { loss.backward(); }).has_value());
}

}  // namespace
