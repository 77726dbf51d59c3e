// The CS231n two-layer-net toy model (assignment 1), composed from the library's ops in Float64 and
// compared with the values the course notebook publishes: the scores, the loss, and gradients that
// agree with central differences to a relative error below 1e-8. The fixture, parsed here, is
// tests/data/cs231n_toy.txt; its comments say how the notebook built it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"

namespace {

using ag::DType;
using ag::Tensor;

constexpr DType f64 = DType::Float64;

// The notebook's fixed choices, stated in the fixture's comments.
const std::vector<int32_t> kLabels{0, 1, 2, 2, 1};
constexpr double kReg = 0.05;  // loss = data loss + reg * (|W1|² + |W2|²), no factor 1/2
constexpr double kPublishedLoss = 1.30378789133;

struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;
  Tensor tensor() const { return ag::tensor(values, {rows, cols}, f64); }
};

struct Fixture {
  std::string comments;
  std::map<std::string, Matrix> matrices;  // "W1=" followed by comma-separated rows
  std::map<std::string, double> numbers;   // "data_loss=1.26..."
};

// Parses the fixture format: '#' comment lines; "name=" starts a matrix whose rows follow, one per
// line, comma separated; "name=value" is a number.
Fixture load_fixture() {
  const std::string path = std::string(AUTOGRAD_TEST_DATA_DIR) + "/cs231n_toy.txt";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Fixture f;
  Matrix* current = nullptr;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      f.comments += line + '\n';
      continue;
    }
    if (const auto eq = line.find('='); eq != std::string::npos) {
      const std::string name = line.substr(0, eq), value = line.substr(eq + 1);
      if (value.empty()) {
        current = &f.matrices[name];
      } else {
        f.numbers[name] = std::stod(value);
        current = nullptr;
      }
      continue;
    }
    if (!current) throw std::runtime_error("cs231n_toy.txt: row outside a matrix: " + line);
    std::stringstream row(line);
    std::string cell;
    int64_t cols = 0;
    while (std::getline(row, cell, ',')) {
      current->values.push_back(std::stod(cell));
      ++cols;
    }
    if (current->rows > 0 && cols != current->cols)
      throw std::runtime_error("cs231n_toy.txt: ragged row: " + line);
    current->cols = cols;
    ++current->rows;
  }
  return f;
}

const Fixture& fixture() {
  static const Fixture f = load_fixture();
  return f;
}

// scores = relu(X·W1 + b1)·W2 + b2
Tensor toy_scores(const Tensor& X, const Tensor& W1, const Tensor& b1, const Tensor& W2,
                  const Tensor& b2) {
  return ag::add_bias(ag::matmul(ag::relu(ag::add_bias(ag::matmul(X, W1), b1)), W2), b2);
}

// softmax_cross_entropy(scores, y) + reg (|W1|² + |W2|²)
Tensor toy_loss(const Tensor& X, const Tensor& W1, const Tensor& b1, const Tensor& W2,
                const Tensor& b2) {
  return ag::softmax_cross_entropy(toy_scores(X, W1, b1, W2, b2), kLabels) +
         ag::scale(ag::l2(W1) + ag::l2(W2), kReg);
}

struct Params {
  Tensor X, W1, b1, W2, b2;
};

Params toy_params() {
  const Fixture& f = fixture();
  const int64_t H = f.matrices.at("W1").cols, C = f.matrices.at("W2").cols;
  return {f.matrices.at("X").tensor(), f.matrices.at("W1").tensor(), ag::zeros({H}, f64),
          f.matrices.at("W2").tensor(), ag::zeros({C}, f64)};
}

TEST(CS231nToy, FixtureHasTheNotebooksShapesAndSettings) {
  const Fixture& f = fixture();
  const auto shape = [&f](const char* name) {
    const Matrix& m = f.matrices.at(name);
    EXPECT_EQ(static_cast<int64_t>(m.values.size()), m.rows * m.cols) << name;
    return ag::Shape{m.rows, m.cols};
  };
  EXPECT_EQ(shape("W1"), (ag::Shape{4, 10}));
  EXPECT_EQ(shape("W2"), (ag::Shape{10, 3}));
  EXPECT_EQ(shape("X"), (ag::Shape{5, 4}));
  EXPECT_EQ(shape("scores"), (ag::Shape{5, 3}));
  // The constants this file hard-codes are the ones the fixture describes.
  EXPECT_TRUE(ag::test::contains(f.comments, "b1 = b2 = 0"));
  EXPECT_TRUE(ag::test::contains(f.comments, "y = [0,1,2,2,1]"));
  EXPECT_TRUE(ag::test::contains(f.comments, "reg = 0.05"));
  EXPECT_TRUE(ag::test::contains(f.comments, "correct_loss = 1.30378789133"));
  EXPECT_EQ(f.numbers.count("data_loss"), 1u);
  EXPECT_EQ(f.numbers.count("loss_reg0.05_nohalf"), 1u);
}

TEST(CS231nToy, ScoresMatchThePublishedValues) {
  const Params p = toy_params();
  const std::vector<double> got = toy_scores(p.X, p.W1, p.b1, p.W2, p.b2).to_vector();
  const std::vector<double>& want = fixture().matrices.at("scores").values;
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-7) << "score " << i;  // the notebook's tolerance
    // Float64 all the way: far inside it (a float32 computation would land near 1e-7).
    EXPECT_NEAR(got[i], want[i], 1e-12) << "score " << i;
  }
}

TEST(CS231nToy, DataLossMatchesTheFixture) {
  const Params p = toy_params();
  const double data_loss =
      ag::softmax_cross_entropy(toy_scores(p.X, p.W1, p.b1, p.W2, p.b2), kLabels).item();
  EXPECT_NEAR(data_loss, fixture().numbers.at("data_loss"), 1e-12);
}

TEST(CS231nToy, LossMatchesThePublishedValue) {
  const Params p = toy_params();
  const double loss = toy_loss(p.X, p.W1, p.b1, p.W2, p.b2).item();
  EXPECT_NEAR(loss, kPublishedLoss, 1e-10);
  EXPECT_NEAR(loss, fixture().numbers.at("loss_reg0.05_nohalf"), 1e-12);  // full precision
}

TEST(CS231nToy, GradientsMatchCentralDifferencesBelow1e8) {
  // eps = 1e-5, the step of the notebook's eval_numerical_gradient, and the only power of ten
  // that gets below 1e-8 here. Measured max relative errors (W1, b1, W2, b2):
  //   eps 1e-4: 3.7e-8, 1.9e-10, 6.2e-8, 9.1e-10   (truncation, ~eps²)
  //   eps 1e-5: 3.6e-9, 2.7e-9,  3.4e-9, 4.5e-11   (the notebook prints these same values)
  //   eps 1e-6: 2.9e-8, 1.2e-8,  2.0e-8, 4.5e-10   (rounding, ~1e-16 |loss| / eps)
  // No difference straddles a relu kink: checked below.
  ag::GradcheckOptions options;
  options.eps = 1e-5;
  options.tolerance = 1e-8;
  const Params p = toy_params();
  {
    ag::NoGradGuard no_grad;
    const std::vector<double> z = ag::matmul(p.X, p.W1).to_vector();
    double nearest = 1e300;
    for (double v : z) nearest = std::min(nearest, std::abs(v));
    // Moving one W1 entry by eps moves a pre-activation by at most eps |X|; b1 by eps.
    const double reach = options.eps * (ag::test::max_abs(p.X.to_vector()) + 1.0);
    ASSERT_GT(nearest, reach) << "a pre-activation is too close to relu's kink";
  }
  const ag::GradcheckResult result =
      ag::gradcheck([&p](const auto& in) { return toy_loss(p.X, in[0], in[1], in[2], in[3]); },
                    {p.W1, p.b1, p.W2, p.b2}, options);
  ASSERT_EQ(result.inputs.size(), 4u);
  const char* names[] = {"W1", "b1", "W2", "b2"};
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_LT(result.inputs[i].max_rel_error, 1e-8) << names[i] << "\n" << result.report();
  EXPECT_TRUE(result.passed) << result.report();
}

TEST(CS231nToy, GradientsAreNotTrivial) {
  // Guards the test above: every parameter actually receives a gradient.
  Params p = toy_params();
  for (Tensor* t : {&p.W1, &p.b1, &p.W2, &p.b2}) t->requires_grad_();
  toy_loss(p.X, p.W1, p.b1, p.W2, p.b2).backward();
  for (const Tensor* t : {&p.W1, &p.b1, &p.W2, &p.b2})
    EXPECT_GT(ag::test::max_abs(t->grad().to_vector()), 1e-3);
}

}  // namespace
