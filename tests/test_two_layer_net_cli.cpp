// The two_layer_net example as a user runs it: tiny settings write every output file, the
// summary parses, --load evaluates the saved model, and bad arguments exit 2 with one line. Bad
// input of every kind (arguments, output directories, checkpoints) ends in one clear line and
// damages nothing already written; parse_args and load_saved_model are also tested directly.
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
#include <variant>
#include <vector>

#include "autograd/autograd.h"
#include "cli.h"
#include "nn/checkpoint.h"
#include "saved_model.h"

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

// ---- bad output directories ----

TEST_F(TwoLayerNetCli, OutUnderARegularFileFailsBeforeTrainingAndLeavesTheFile) {
  fs::create_directories(dir_);
  {
    std::ofstream plain(dir_ / "plain");
    plain << "not a directory\n";
  }
  const CliResult r =
      run("--dataset spiral --epochs 200 --quiet --out " + (dir_ / "plain" / "run").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find((dir_ / "plain" / "run").string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Not a directory"), std::string::npos) << r.output;
  EXPECT_EQ(read(dir_ / "plain"), "not a directory\n");
}

TEST_F(TwoLayerNetCli, OutUnderProcFailsBeforeTraining) {
  for (const char* out : {"/proc/autograd-no-such-dir/run", "/proc/self"}) {
    const CliResult r = run(std::string("--dataset spiral --epochs 200 --quiet --out ") + out);
    EXPECT_EQ(r.exit_code, 1) << out << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << out << ": " << r.output;
    EXPECT_NE(r.output.find(out), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("epoch"), std::string::npos) << "trained first: " << r.output;
  }
}

TEST_F(TwoLayerNetCli, FailedRunLeavesTheOutputsOfAnEarlierRunIntact) {
  ASSERT_EQ(run("--dataset spiral --epochs 2 --quiet --out " + dir_.string()).exit_code, 0);
  std::vector<std::pair<std::string, std::string>> before;
  for (const auto& entry : fs::directory_iterator(dir_))
    before.emplace_back(entry.path().filename().string(), read(entry.path()));
  std::sort(before.begin(), before.end());
  const CliResult r =
      run("--dataset mnist --data-dir /nonexistent/dir --quiet --out " + dir_.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  std::vector<std::pair<std::string, std::string>> after;
  for (const auto& entry : fs::directory_iterator(dir_))
    after.emplace_back(entry.path().filename().string(), read(entry.path()));
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, before);
}

TEST_F(TwoLayerNetCli, DivergingTrainingStopsWithAClearErrorAndSavesNoModel) {
  const CliResult r = run("--dataset spiral --lr 1000 --epochs 20 --quiet --out " + dir_.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("two_layer_net: error: train: the loss became"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("diverged"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors"));
}

// ---- bad checkpoints for --load ----

// A checkpoint as two_layer_net saves it for D inputs, H hidden units and C classes.
nn::NamedTensors saved_tensors(int64_t D, int64_t H, int64_t C) {
  ag::Generator gen(1);
  return {{"W1", ag::randn({D, H}, gen)}, {"b1", ag::zeros({H})},
          {"W2", ag::randn({H, C}, gen)}, {"b2", ag::zeros({C})},
          {"input_mean", ag::zeros({D})}, {"input_std", ag::ones({D})}};
}

nn::NamedTensors with(nn::NamedTensors tensors, const std::string& name, ag::Tensor t) {
  bool replaced = false;
  for (auto& [n, value] : tensors)
    if (n == name) value = t, replaced = true;
  if (!replaced) tensors.emplace_back(name, t);
  return tensors;
}

nn::NamedTensors without(nn::NamedTensors tensors, const std::string& name) {
  std::erase_if(tensors, [&](const auto& entry) { return entry.first == name; });
  return tensors;
}

TEST_F(TwoLayerNetCli, LoadRefusesACheckpointThatDoesNotFitTheModel) {
  fs::create_directories(dir_);
  const ag::Tensor nan = ag::full({2, 3}, std::nan(""));
  const struct {
    const char* what;
    nn::NamedTensors tensors;
    const char* message;
  } cases[] = {
      // W1 [0, 2^40] is 0 bytes in the file; building the model from it would allocate 4 TB.
      {"empty W1, huge H", with(saved_tensors(2, 3, 3), "W1", ag::zeros({0, int64_t{1} << 40})),
       "tensor 'W1' has shape [0, 1099511627776]"},
      {"W1 not a matrix", with(saved_tensors(2, 3, 3), "W1", ag::zeros({6})), "tensor 'W1'"},
      {"W2 rows differ from H", with(saved_tensors(2, 3, 3), "W2", ag::zeros({4, 3})),
       "tensor 'W2' has shape [4, 3], expected [3, C]"},
      {"b1 of the wrong length", with(saved_tensors(2, 3, 3), "b1", ag::zeros({4})),
       "tensor 'b1' has shape [4], expected [3]"},
      // input_std shorter than input_mean: standardising read past its end.
      {"input_std too short", with(saved_tensors(2, 3, 3), "input_std", ag::ones({1})),
       "tensor 'input_std' has shape [1], expected [2]"},
      {"input_mean missing", without(saved_tensors(2, 3, 3), "input_mean"),
       "tensor 'input_mean' is missing"},
      {"NaN weight", with(saved_tensors(2, 3, 3), "W1", nan), "tensor 'W1' holds nan"},
      {"zero std", with(saved_tensors(2, 3, 3), "input_std", ag::zeros({2})),
       "tensor 'input_std' holds 0"},
      {"float64 beyond float32",
       with(saved_tensors(2, 3, 3), "b2", ag::full({3}, 1e300, ag::DType::Float64)),
       "tensor 'b2' holds inf"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const fs::path file = dir_ / "model.safetensors";
    nn::save_safetensors(file, c.tensors);
    const CliResult r = run("--dataset spiral --load " + file.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(file.string()), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
  }
}

TEST_F(TwoLayerNetCli, LoadOfATruncatedCheckpointNamesTheFile) {
  ASSERT_EQ(run("--dataset spiral --epochs 2 --quiet --out " + dir_.string()).exit_code, 0);
  const fs::path file = dir_ / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 10);
  const CliResult r = run("--dataset spiral --load " + file.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(file.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
}

TEST_F(TwoLayerNetCli, LoadWithAnotherDatasetNamesBothFeatureCounts) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed";
  ASSERT_EQ(run("--dataset spiral --epochs 2 --quiet --out " + dir_.string()).exit_code, 0);
  const CliResult r =
      run("--dataset fashion-mnist --load " + (dir_ / "model.safetensors").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("takes 2 features, the fashion-mnist test set has 784"),
            std::string::npos)
      << r.output;
}

TEST(LoadSavedModel, ReadsWhatTwoLayerNetSaves) {
  const fs::path file = fs::temp_directory_path() / "autograd_load_saved_model.safetensors";
  const nn::NamedTensors tensors = saved_tensors(4, 5, 3);
  nn::save_safetensors(file, tensors);
  const two_layer_net::SavedModel saved = two_layer_net::load_saved_model(file);
  fs::remove(file);
  EXPECT_EQ(saved.model.input_size(), 4);
  EXPECT_EQ(saved.model.hidden_size(), 5);
  EXPECT_EQ(saved.model.num_classes(), 3);
  EXPECT_EQ(saved.model.W1.to_vector(), tensors[0].second.to_vector());
  EXPECT_EQ(saved.norm.std.to_vector(), tensors[5].second.to_vector());
}

// ---- parse_args, called directly ----

struct Parsed {
  std::variant<two_layer_net::Config, int> result;
  std::string out, err;
};

Parsed parse(std::vector<std::string> args) {
  args.insert(args.begin(), "two_layer_net");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  std::ostringstream out, err;
  auto result = two_layer_net::parse_args(static_cast<int>(args.size()), argv.data(), out, err);
  return {std::move(result), out.str(), err.str()};
}

TEST(ParseArgs, GivesTheConfigAndPrintsNothing) {
  const Parsed p = parse({"--dataset", "spiral", "--hidden", "20", "--lr=0.5", "--quiet"});
  ASSERT_TRUE(std::holds_alternative<two_layer_net::Config>(p.result)) << p.err;
  const auto& c = std::get<two_layer_net::Config>(p.result);
  EXPECT_EQ(c.dataset, "spiral");
  EXPECT_EQ(c.hidden, 20);
  EXPECT_EQ(c.lr, 0.5);
  EXPECT_TRUE(c.quiet);
  EXPECT_EQ(c.momentum, -1);  // not given: the dataset's default later
  EXPECT_EQ(p.out + p.err, "");
}

TEST(ParseArgs, HelpExitsZeroWithTheHelpOnOut) {
  const Parsed p = parse({"--help"});
  ASSERT_TRUE(std::holds_alternative<int>(p.result));
  EXPECT_EQ(std::get<int>(p.result), 0);
  EXPECT_NE(p.out.find("--dataset"), std::string::npos) << p.out;
  EXPECT_EQ(p.err, "");
}

TEST(ParseArgs, NoArgumentsAtAllIsNotACrash) {
  std::ostringstream out, err;
  const char* argv[] = {nullptr};
  const auto result = two_layer_net::parse_args(0, argv, out, err);
  EXPECT_TRUE(std::holds_alternative<two_layer_net::Config>(result));
}

// CLI::Range accepted NaN (every comparison with it is false): --lr nan trained with NaN.
TEST(ParseArgs, NonFiniteOrOutOfRangeRealsAreRejected) {
  for (const char* option : {"--lr", "--lr-decay", "--momentum", "--reg"}) {
    for (const char* value : {"nan", "NaN", "-nan", "inf", "-inf", "1e400", "-1", "1e-400x", ""}) {
      const Parsed p = parse({option, value});
      ASSERT_TRUE(std::holds_alternative<int>(p.result)) << option << " " << value;
      EXPECT_EQ(std::get<int>(p.result), 2) << option << " " << value;
      EXPECT_NE(p.err.find(option), std::string::npos) << p.err;
    }
  }
  const Parsed p = parse({"--lr", "1e-9", "--momentum", "0", "--reg", "1000", "--lr-decay", "1"});
  EXPECT_TRUE(std::holds_alternative<two_layer_net::Config>(p.result)) << p.err;
}

// Found by fuzz_cli: CLI11 quotes the offending argument in its message, so an argument holding a
// newline turned the promised one line on stderr into two.
TEST(ParseArgs, ArgumentWithANewlineStillGivesOneErrorLine) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--se\x14", "", "\n", "e0d", "2"}, {"--dataset", "spi\nral"}, {"extra\r\narg\x7f"}}) {
    const Parsed p = parse(args);
    ASSERT_TRUE(std::holds_alternative<int>(p.result));
    EXPECT_EQ(std::get<int>(p.result), 2);
    EXPECT_EQ(std::count(p.err.begin(), p.err.end(), '\n'), 1) << p.err;
    EXPECT_EQ(p.err.back(), '\n') << p.err;
    EXPECT_EQ(p.err.rfind("two_layer_net: ", 0), 0u) << p.err;
    EXPECT_EQ(p.out, "");
  }
}

}  // namespace
