// The two_layer_net example as a user runs it: tiny settings write every output file, the
// summary parses, --load evaluates the saved model, and bad arguments exit 2 with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

struct CliResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

CliResult run(const std::string& args) {
  const std::string command = std::string(TWO_LAYER_NET_BIN) + " " + args + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class TwoLayerNetCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("autograd_cli_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TwoLayerNetCli, SpiralRunWritesEveryOutputFile) {
  const CliResult r = run("--dataset spiral --epochs 3 --hidden 20 --quiet --out " + dir_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("epoch   3/3"), std::string::npos) << r.output;
  for (const char* f :
       {"history.csv", "summary.json", "model.safetensors", "loss.svg", "accuracy.svg"})
    EXPECT_TRUE(fs::exists(dir_ / f) && fs::file_size(dir_ / f) > 0) << f;
  const nlohmann::json summary = nlohmann::json::parse(read(dir_ / "summary.json"));
  for (const char* key : {"dataset", "test_accuracy", "val_accuracy", "train_accuracy",
                          "final_loss", "epochs", "seconds", "hidden", "seed"})
    EXPECT_TRUE(summary.contains(key)) << key;
  EXPECT_EQ(summary["dataset"], "spiral");
  EXPECT_EQ(summary["epochs"], 3);
  EXPECT_EQ(summary["hidden"], 20);
  const double acc = summary["test_accuracy"];
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  const std::string svg = read(dir_ / "loss.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("step"), std::string::npos);  // the x-axis label
  const std::string csv = read(dir_ / "history.csv");
  EXPECT_EQ(csv.rfind("step,epoch,loss", 0), 0u);
}

TEST_F(TwoLayerNetCli, LoadEvaluatesTheSavedModel) {
  ASSERT_EQ(run("--dataset spiral --epochs 20 --quiet --out " + dir_.string()).exit_code, 0);
  const nlohmann::json summary = nlohmann::json::parse(read(dir_ / "summary.json"));
  const CliResult r = run("--dataset spiral --load " + (dir_ / "model.safetensors").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  char expected[32];
  std::snprintf(expected, sizeof expected, "test accuracy %.4f",
                summary["test_accuracy"].get<double>());
  EXPECT_NE(r.output.find(expected), std::string::npos) << r.output;
}

TEST_F(TwoLayerNetCli, FashionMnistSubsetWritesWeightsPng) {
  const fs::path data = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(data / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed";
  const CliResult r = run(
      "--epochs 1 --hidden 16 --train-limit 2000 --val-size 500 --test-limit 500 --quiet --out " +
      dir_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string png = read(dir_ / "weights.png");
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  EXPECT_EQ(nlohmann::json::parse(read(dir_ / "summary.json"))["dataset"], "fashion-mnist");
}

TEST_F(TwoLayerNetCli, BadArgumentsExitTwoWithOneLine) {
  for (const char* args :
       {"--epochs -3", "--dataset imagenet", "--no-such-flag", "--lr abc", "--optimizer rmsprop"}) {
    const CliResult r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << ": " << r.output;
  }
}

TEST_F(TwoLayerNetCli, HelpListsTheOptions) {
  const CliResult r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--dataset", "--hidden", "--epochs", "--batch-size", "--optimizer", "--lr", "--lr-decay",
        "--momentum", "--reg", "--seed", "--threads", "--out", "--load"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
}

TEST_F(TwoLayerNetCli, MissingDataDirectoryIsAClearError) {
  const CliResult r =
      run("--dataset mnist --data-dir /nonexistent/dir --epochs 1 --quiet --out " + dir_.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/dir"), std::string::npos) << r.output;
}

}  // namespace
