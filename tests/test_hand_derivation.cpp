// The two-layer gradients derived by hand (docs/two-layer-gradients.md), in plain loops over
// doubles, against what the engine computes by composing the ops; then each classic mistake of
// that derivation: which parameter gradients it changes, that the same mistake planted in a custom
// op makes the engine compute exactly the same wrong gradients, and that check_graph names the
// planted op. Prints one summary line per mistake:
//
//   ./build/release/tests/test_hand_derivation
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"
#include "tests/two_layer_mistakes.h"

namespace {

using ag::Tensor;
using ag::Where;
using ag::test::all_close;
using ag::test::TwoLayerData;
using ag::test::TwoLayerOps;

enum class Mistake { None, ForgetOneOverN, ForgetFactor2OfL2, NoReluMask, BiasRowSums, BiasMean };

const char* describe(Mistake m) {
  switch (m) {
    case Mistake::None:
      return "none";
    case Mistake::ForgetOneOverN:
      return "softmax-CE backward without the 1/N";
    case Mistake::ForgetFactor2OfL2:
      return "L2 backward without the factor 2";
    case Mistake::NoReluMask:
      return "ReLU backward without the mask";
    case Mistake::BiasRowSums:
      return "bias gradient as row sums";
    case Mistake::BiasMean:
      return "bias gradient averaged, not summed, over the batch";
  }
  return "";
}

// dL/dW1, dL/db1, dL/dW2, dL/db2 by name.
using Grads = std::map<std::string, std::vector<double>>;

// The gradients of
//   z = X·W1 + b1,  h = relu(z),  s = h·W2 + b2,  L = CE(s, y) + reg (|W1|² + |W2|²)
// derived by hand, op by op from the loss back, optionally with one mistake.
Grads hand_gradients(const TwoLayerData& d, Mistake mistake) {
  const std::size_t N = d.X.size(0), D = d.X.size(1), H = d.W1.size(1), C = d.W2.size(1);
  const std::vector<double> X = d.X.to_vector(), W1 = d.W1.to_vector(), b1 = d.b1.to_vector(),
                            W2 = d.W2.to_vector(), b2 = d.b2.to_vector();
  // forward
  std::vector<double> z(N * H), h(N * H), s(N * C);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t j = 0; j < H; ++j) {
      double acc = b1[j];
      for (std::size_t k = 0; k < D; ++k) acc += X[n * D + k] * W1[k * H + j];
      z[n * H + j] = acc;
      h[n * H + j] = acc > 0 ? acc : 0;
    }
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c) {
      double acc = b2[c];
      for (std::size_t j = 0; j < H; ++j) acc += h[n * H + j] * W2[j * C + c];
      s[n * C + c] = acc;
    }
  const std::vector<double> p =
      ag::test::softmax_rows(ag::tensor(s, {int64_t(N), int64_t(C)}, ag::DType::Float64));

  // ds = (p - onehot(y)) / N                       softmax cross-entropy
  std::vector<double> ds(N * C);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c)
      ds[n * C + c] = (p[n * C + c] - (int32_t(c) == d.y[n] ? 1.0 : 0.0)) /
                      (mistake == Mistake::ForgetOneOverN ? 1.0 : double(N));
  // db = Σ_n dout[n, :], the column sums           add_bias
  const auto bias_grad = [&](const std::vector<double>& dout, std::size_t width) {
    if (mistake == Mistake::BiasRowSums) {  // Σ_j dout[n, j]: one value per sample
      std::vector<double> db(N, 0.0);
      for (std::size_t n = 0; n < N; ++n)
        for (std::size_t j = 0; j < width; ++j) db[n] += dout[n * width + j];
      return db;
    }
    std::vector<double> db(width, 0.0);
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t j = 0; j < width; ++j) db[j] += dout[n * width + j];
    if (mistake == Mistake::BiasMean)
      for (double& v : db) v /= double(N);
    return db;
  };
  Grads g;
  g["b2"] = bias_grad(ds, C);
  // dW2 = hᵀ · ds, dh = ds · W2ᵀ                  matmul
  std::vector<double> dW2(H * C, 0.0), dh(N * H, 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t j = 0; j < H; ++j)
      for (std::size_t c = 0; c < C; ++c) {
        dW2[j * C + c] += h[n * H + j] * ds[n * C + c];
        dh[n * H + j] += ds[n * C + c] * W2[j * C + c];
      }
  // dz = dh ⊙ [z > 0]                              relu
  std::vector<double> dz = dh;
  if (mistake != Mistake::NoReluMask)
    for (std::size_t i = 0; i < dz.size(); ++i)
      if (!(z[i] > 0)) dz[i] = 0;
  g["b1"] = bias_grad(dz, H);
  // dW1 = Xᵀ · dz                                  matmul
  std::vector<double> dW1(D * H, 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t k = 0; k < D; ++k)
      for (std::size_t j = 0; j < H; ++j) dW1[k * H + j] += X[n * D + k] * dz[n * H + j];
  // + reg · 2W                                     l2, scaled by reg
  const double two = mistake == Mistake::ForgetFactor2OfL2 ? 1.0 : 2.0;
  for (std::size_t i = 0; i < dW1.size(); ++i) dW1[i] += d.reg * two * W1[i];
  for (std::size_t i = 0; i < dW2.size(); ++i) dW2[i] += d.reg * two * W2[i];
  g["W1"] = dW1;
  g["W2"] = dW2;
  return g;
}

// The engine's gradients: backward() through the loss composed of `ops`.
Grads engine_gradients(const TwoLayerOps& ops = {}) {
  const TwoLayerData d = ag::test::two_layer_data();  // fresh leaves: no accumulated grad
  ag::test::two_layer_loss(d, ops).loss.backward();
  return {{"W1", d.W1.grad().to_vector()},
          {"b1", d.b1.grad().to_vector()},
          {"W2", d.W2.grad().to_vector()},
          {"b2", d.b2.grad().to_vector()}};
}

// The same mistake, planted in a custom op that replaces the built-in.
TwoLayerOps planted(Mistake m) {
  TwoLayerOps ops;
  switch (m) {
    case Mistake::None:
      break;
    case Mistake::ForgetOneOverN:
      ops.softmax_cross_entropy = [](const Tensor& s, std::span<const int32_t> y, Where w) {
        return ag::test::softmax_cross_entropy_without_1_over_n(s, y, w);
      };
      break;
    case Mistake::ForgetFactor2OfL2:
      ops.l2 = [](const Tensor& x, Where w) { return ag::test::l2_without_factor_2(x, w); };
      break;
    case Mistake::NoReluMask:
      ops.relu = [](const Tensor& x, Where w) { return ag::test::relu_without_mask(x, w); };
      break;
    case Mistake::BiasRowSums:
      ops.add_bias = [](const Tensor& x, const Tensor& b, Where w) {
        return ag::test::add_bias_grad_row_sums(x, b, w);
      };
      break;
    case Mistake::BiasMean:
      ops.add_bias = [](const Tensor& x, const Tensor& b, Where w) {
        return ag::test::add_bias_grad_batch_mean(x, b, w);
      };
      break;
  }
  return ops;
}

// Largest |a - b| / max(|a|, |b|) over the elements; a description if the sizes differ.
std::string difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size())
    return std::to_string(a.size()) + " values instead of " + std::to_string(b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst =
        std::max(worst, std::abs(a[i] - b[i]) / std::max({std::abs(a[i]), std::abs(b[i]), 1e-300}));
  std::ostringstream out;
  out << "off by up to " << std::fixed << std::setprecision(0) << worst * 100 << "%";
  return out.str();
}

bool agrees(const std::vector<double>& a, const std::vector<double>& b) {
  return all_close(a, b, 1e-12, 1e-12);
}

TEST(HandDerivation, MatchesTheEngineForEveryParameter) {
  const Grads hand = hand_gradients(ag::test::two_layer_data(), Mistake::None);
  const Grads engine = engine_gradients();
  for (const char* name : {"W1", "b1", "W2", "b2"}) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(all_close(hand.at(name), engine.at(name), 1e-12, 1e-12));
  }
}

struct Case {
  Mistake mistake;
  std::vector<std::string> wrong;  // the parameter gradients the mistake changes
  const char* op;                  // the planted custom op check_graph must name
};

const std::vector<Case> kCases = {
    {Mistake::ForgetOneOverN, {"W1", "b1", "W2", "b2"}, "softmax_cross_entropy_without_1_over_n"},
    {Mistake::ForgetFactor2OfL2, {"W1", "W2"}, "l2_without_factor_2"},
    {Mistake::NoReluMask, {"W1", "b1"}, "relu_without_mask"},
    {Mistake::BiasRowSums, {"b1", "b2"}, "add_bias_grad_row_sums"},
    {Mistake::BiasMean, {"b1", "b2"}, "add_bias_grad_batch_mean"},
};

TEST(HandDerivation, EachClassicMistakeChangesExactlyTheGradientsItShould) {
  const Grads engine = engine_gradients();
  for (const Case& c : kCases) {
    SCOPED_TRACE(describe(c.mistake));
    const Grads hand = hand_gradients(ag::test::two_layer_data(), c.mistake);
    std::cout << describe(c.mistake) << ":\n";
    for (const char* name : {"W1", "b1", "W2", "b2"}) {
      const bool expected_wrong = std::find(c.wrong.begin(), c.wrong.end(), name) != c.wrong.end();
      EXPECT_EQ(!agrees(hand.at(name), engine.at(name)), expected_wrong) << name;
      std::cout << "  dL/d" << name << ": "
                << (expected_wrong ? difference(hand.at(name), engine.at(name)) : "right") << "\n";
    }
  }
}

TEST(HandDerivation, TheSameMistakeInACustomOpGivesTheSameWrongGradients) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(describe(c.mistake));
    if (c.mistake == Mistake::BiasRowSums) {
      // A gradient of the wrong shape: backward() stops at the op, naming it and its line.
      const auto message = ag::test::thrown_message<std::invalid_argument>(
          [] { engine_gradients(planted(Mistake::BiasRowSums)); });
      ASSERT_TRUE(message.has_value());
      EXPECT_TRUE(ag::test::contains(*message, "backward of 'add_bias_grad_row_sums' (created at"));
      continue;
    }
    const Grads hand = hand_gradients(ag::test::two_layer_data(), c.mistake);
    const Grads engine = engine_gradients(planted(c.mistake));
    for (const char* name : {"W1", "b1", "W2", "b2"}) {
      SCOPED_TRACE(name);
      EXPECT_TRUE(all_close(engine.at(name), hand.at(name), 1e-12, 1e-12));
    }
  }
}

TEST(HandDerivation, CheckGraphNamesThePlantedMistake) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(describe(c.mistake));
    const TwoLayerData d = ag::test::two_layer_data();
    const ag::GraphCheck check =
        ag::check_graph(ag::test::two_layer_loss(d, planted(c.mistake)).loss);
    const ag::NodeCheck* bad = check.first_bad();
    ASSERT_NE(bad, nullptr) << check.report();
    EXPECT_EQ(bad->op, c.op);
    std::cout << describe(c.mistake) << ": first bad node #" << bad->index << " '" << bad->op
              << "' (" << bad->location().substr(bad->location().rfind('/') + 1) << ")\n";
  }
}

}  // namespace
