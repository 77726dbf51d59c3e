// to_dot: the graph as Graphviz DOT. The output is parsed back (node declarations and edges) and
// checked against the graph: one box per op, one ellipse per leaf and per constant input, one
// edge per input of every op; names, norms, released graphs and escaping. When Graphviz's `dot`
// is installed, the output is also rendered with it.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tests/grad_test_util.h"
#include "tests/two_layer_mistakes.h"

namespace {

using ag::DType;
using ag::Tensor;
using ag::test::contains;

constexpr DType f64 = DType::Float64;

// The DOT output, parsed: every declared node with its attribute text, and every edge.
struct Dot {
  std::map<std::string, std::string> nodes;  // id -> attributes
  std::vector<std::string> order;            // ids in declaration order
  std::vector<std::pair<std::string, std::string>> edges;
  std::string label(const std::string& id) const {
    static const std::regex label_re(R"(label="((?:[^"\\]|\\.)*)\")");
    std::smatch m;
    const std::string& attributes = nodes.at(id);
    return std::regex_search(attributes, m, label_re) ? m[1].str() : "";
  }
  std::vector<std::string> ids_starting_with(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const std::string& id : order)
      if (id.rfind(prefix, 0) == 0) out.push_back(id);
    return out;
  }
};

// Parses what to_dot writes; fails the test on any line it does not expect, on an edge whose
// ends are not declared before it, and on a missing header or closing brace.
Dot parse(const std::string& text) {
  static const std::regex node_re(R"(^  (\w+) \[(.*)\];$)");
  static const std::regex edge_re(R"(^  (\w+) -> (\w+);$)");
  Dot dot;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "digraph autograd {");
  bool closed = false;
  while (std::getline(in, line)) {
    std::smatch m;
    if (line == "}") {
      closed = true;
    } else if (closed) {
      ADD_FAILURE() << "text after the closing brace: " << line;
    } else if (line.rfind("  node [", 0) == 0) {
      continue;  // default attributes
    } else if (std::regex_match(line, m, edge_re)) {
      EXPECT_TRUE(dot.nodes.count(m[1])) << "edge from undeclared " << m[1];
      EXPECT_TRUE(dot.nodes.count(m[2])) << "edge to undeclared " << m[2];
      dot.edges.emplace_back(m[1], m[2]);
    } else if (std::regex_match(line, m, node_re)) {
      EXPECT_FALSE(dot.nodes.count(m[1])) << "declared twice: " << m[1];
      dot.nodes.emplace(m[1], m[2]);
      dot.order.push_back(m[1]);
    } else {
      ADD_FAILURE() << "unexpected line: " << line;
    }
  }
  EXPECT_TRUE(closed) << "no closing brace";
  return dot;
}

TEST(ToDot, TwoLayerGraphHasOneBoxPerOpOneNodePerLeafAndOneEdgePerInput) {
  const auto data = ag::test::two_layer_data();
  const Tensor loss = ag::test::two_layer_loss(data).loss;
  const Dot dot = parse(ag::to_dot(loss));

  // 11 ops; the leaves W1, b1, W2, b2; the data X, a constant input.
  EXPECT_EQ(dot.ids_starting_with("op").size(), 11u);
  EXPECT_EQ(dot.ids_starting_with("leaf").size(), 4u);
  EXPECT_EQ(dot.ids_starting_with("const").size(), 1u);
  // matmul 2 + add_bias 2 + relu 1 + matmul 2 + add_bias 2 + softmax_cross_entropy 1 + l2 1 +
  // l2 1 + add 2 + scale 1 + add 2
  EXPECT_EQ(dot.edges.size(), 17u);

  std::multiset<std::string> ops;
  for (const std::string& id : dot.ids_starting_with("op"))
    ops.insert(dot.label(id).substr(0, dot.label(id).find("\\n")));
  EXPECT_EQ(ops, (std::multiset<std::string>{"matmul", "matmul", "add_bias", "add_bias", "relu",
                                             "softmax_cross_entropy", "l2", "l2", "add", "add",
                                             "scale"}));
  // Each op's in-degree is its number of inputs.
  std::map<std::string, int> in_degree;
  for (const auto& [from, to] : dot.edges) ++in_degree[to];
  for (const std::string& id : dot.ids_starting_with("op")) {
    const std::string op = dot.label(id).substr(0, dot.label(id).find("\\n"));
    const int inputs =
        (op == "relu" || op == "softmax_cross_entropy" || op == "l2" || op == "scale") ? 1 : 2;
    EXPECT_EQ(in_degree[id], inputs) << op;
  }
}

TEST(ToDot, OpLabelsShowNameShapeDtypeAndWhere) {
  const auto data = ag::test::two_layer_data();
  const ag::test::TwoLayerLoss built = ag::test::two_layer_loss(data);
  const Dot dot = parse(ag::to_dot(built.loss));
  const std::string relu =
      "relu\\n[4, 5] float64\\ntwo_layer_mistakes.h:" + std::to_string(built.relu.line());
  bool found = false;
  for (const std::string& id : dot.ids_starting_with("op")) found |= dot.label(id) == relu;
  EXPECT_TRUE(found) << ag::to_dot(built.loss);
  // The root, the final add, has a double border.
  EXPECT_TRUE(contains(dot.nodes.at(dot.ids_starting_with("op").back()), "peripheries=2"));
}

TEST(ToDot, LeavesShowShapeAndWhetherTheyRequireGradAndTheirNames) {
  const auto data = ag::test::two_layer_data();
  const Tensor loss = ag::test::two_layer_loss(data).loss;
  const Dot dot = parse(ag::to_dot(loss, {.names = {{"W1", data.W1}, {"X", data.X}}}));
  std::set<std::string> labels;
  for (const std::string& id : dot.order) labels.insert(dot.label(id));
  EXPECT_TRUE(labels.count("W1\\n[3, 5] float64\\nrequires grad"));
  EXPECT_TRUE(labels.count("leaf\\n[5] float64\\nrequires grad"));  // b1, unnamed
  EXPECT_TRUE(labels.count("X\\n[4, 3] float64\\nno grad"));
}

TEST(ToDot, InputsAreDeclaredBeforeTheOpsThatConsumeThem) {
  const auto data = ag::test::two_layer_data();
  const Dot dot = parse(ag::to_dot(ag::test::two_layer_loss(data).loss));
  std::map<std::string, std::size_t> position;
  for (std::size_t i = 0; i < dot.order.size(); ++i) position[dot.order[i]] = i;
  for (const auto& [from, to] : dot.edges) EXPECT_LT(position[from], position[to]);
}

TEST(ToDot, NormsShowValuesAndLeafGradients) {
  Tensor w = ag::tensor({3, 4}, {2}, f64).requires_grad_();
  const Tensor loss = ag::l2(w);  // 25; dL/dw = 2w = [6, 8], norm 10
  loss.backward({.retain_graph = true});
  const std::string text = ag::to_dot(loss, {.value_norms = true, .grad_norms = true});
  const Dot dot = parse(text);
  EXPECT_TRUE(contains(text, "|value| = 5\\n|grad| = 10"));  // the leaf
  EXPECT_TRUE(contains(dot.label("op0"), "|value| = 25"));   // the op's output, here the root
}

TEST(ToDot, LeafGradientNotYetComputedSaysSo) {
  Tensor w = ag::tensor({3, 4}, {2}, f64).requires_grad_();
  EXPECT_TRUE(contains(ag::to_dot(ag::l2(w), {.grad_norms = true}), "grad: none yet"));
}

TEST(ToDot, DataUsedByTwoOpsIsOneConstantNode) {
  const Tensor x = ag::tensor({1, 2}, {2}, f64);
  Tensor w = ag::tensor({3, 4}, {2}, f64).requires_grad_();
  const Dot dot = parse(ag::to_dot(ag::add(ag::mul(x, w), ag::mul(w, x))));
  EXPECT_EQ(dot.ids_starting_with("const").size(), 1u);
  EXPECT_EQ(dot.ids_starting_with("leaf").size(), 1u);
  EXPECT_EQ(dot.edges.size(), 6u);
}

TEST(ToDot, ReleasedGraphStillShowsEveryOpAndEdge) {
  const auto data = ag::test::two_layer_data();
  const Tensor loss = ag::test::two_layer_loss(data).loss;
  loss.backward();
  const Dot dot = parse(ag::to_dot(loss, {.value_norms = true}));
  EXPECT_EQ(dot.ids_starting_with("op").size(), 11u);
  EXPECT_EQ(dot.edges.size(), 17u);
  EXPECT_EQ(dot.label(dot.ids_starting_with("const").front()), "constant\\n(released)");
}

TEST(ToDot, ALeafOnItsOwnIsOneNode) {
  const Dot dot = parse(ag::to_dot(ag::ones({2}, f64)));
  EXPECT_EQ(dot.order.size(), 1u);
  EXPECT_TRUE(dot.edges.empty());
}

TEST(ToDot, QuotesAndBackslashesInNamesAreEscaped) {
  Tensor x = ag::ones({2}, f64).requires_grad_();
  const Tensor y = ag::custom_op(
      "say \"hi\" \\o/", {x}, [](const std::vector<Tensor>& in) { return in[0].clone(); },
      [](const ag::OpContext&, const Tensor& g) { return std::vector<Tensor>{g}; });
  const Dot dot = parse(ag::to_dot(y));
  EXPECT_EQ(dot.label("op0").substr(0, 17), R"(say \"hi\" \\o/\n)");
}

TEST(ToDot, RendersWithGraphvizWhenInstalled) {
  if (std::system("command -v dot > /dev/null 2>&1") != 0) GTEST_SKIP() << "Graphviz not installed";
  const auto data = ag::test::two_layer_data();
  const std::string path = std::string(AUTOGRAD_BINARY_DIR) + "/test_graph_export.dot";
  std::ofstream(path) << ag::to_dot(ag::test::two_layer_loss(data).loss, {.value_norms = true});
  const std::string svg = path + ".svg";
  ASSERT_EQ(std::system(("dot -Tsvg " + path + " -o " + svg).c_str()), 0);
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(contains(text, "<svg"));
  EXPECT_TRUE(contains(text, "softmax_cross_entropy"));
  std::remove(path.c_str());
  std::remove(svg.c_str());
}

}  // namespace
