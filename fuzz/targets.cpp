// The fuzz targets of targets.h. The readers take paths, so each input is written to a scratch
// directory of this process first (on /dev/shm when there is one: a RAM disk keeps that cheap).
#include "fuzz/targets.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/data.h"
#include "nn/two_layer_net.h"
#ifdef AUTOGRAD_FUZZ_EXAMPLE
#include "cli.h"
#include "saved_model.h"
#endif

namespace fuzz {
namespace {

namespace fs = std::filesystem;

// A broken promise: say which, and abort (libFuzzer saves the input that did it).
void check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz target: broken promise: %s\n", what.c_str());
  std::abort();
}

// This process's scratch directory, removed at exit.
class Scratch {
 public:
  Scratch() {
    std::error_code error;
    const fs::path shm = "/dev/shm";
    const fs::path base = fs::is_directory(shm, error) ? shm : fs::temp_directory_path();
    dir_ = base / fmt::format("autograd_fuzz_{}", ::getpid());
    fs::create_directories(dir_);
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // An empty directory for this input.
  const fs::path& fresh() {
    std::error_code ignored;
    fs::remove_all(dir_ / "input", ignored);
    fs::create_directories(dir_ / "input");
    input_ = dir_ / "input";
    return input_;
  }

 private:
  fs::path dir_, input_;
};

Scratch& scratch() {
  static Scratch s;
  return s;
}

void write(const fs::path& path, std::span<const uint8_t> bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  check(f != nullptr, "cannot create " + path.string());
  const bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  check(std::fclose(f) == 0 && ok, "cannot write " + path.string());
}

// A dataset as every reader promises it: x: [N, prod(sample_shape)] float32 in [0, 1], N labels
// in [0, num_classes).
void check_dataset(const nn::Dataset& d, int64_t num_classes, const ag::Shape& sample_shape) {
  check(d.x.defined() && d.x.dim() == 2, "x is a matrix");
  check(d.x.dtype() == ag::DType::Float32, "x is float32");
  check(d.num_classes == num_classes, "num_classes as asked");
  check(d.sample_shape == sample_shape, "sample_shape as stored");
  check(ag::shape_numel(sample_shape) == d.features(), "features = prod(sample_shape)");
  check(static_cast<int64_t>(d.y.size()) == d.size(), "one label per row");
  for (const int32_t label : d.y) check(label >= 0 && label < num_classes, "label in range");
  const float* x = d.x.data<float>();
  for (int64_t i = 0; i < d.x.numel(); ++i) check(x[i] >= 0.0f && x[i] <= 1.0f, "pixel in [0, 1]");
}

uint32_t big_endian(std::span<const uint8_t> b) {
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
}

bool same_bytes(const ag::Tensor& a, const ag::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.numel() == 0) return true;
  const auto n = static_cast<std::size_t>(a.numel());
  if (a.dtype() == ag::DType::Float64)
    return std::memcmp(a.data<double>(), b.data<double>(), n * sizeof(double)) == 0;
  return std::memcmp(a.data<float>(), b.data<float>(), n * sizeof(float)) == 0;
}

}  // namespace

int idx(std::span<const uint8_t> data) {
  if (data.size() < 6) return 0;
  const int64_t num_classes = int64_t{data[0]} + 1;
  const uint8_t flags = data[1];
  const uint32_t claimed = uint32_t{data[2]} | uint32_t{data[3]} << 8 | uint32_t{data[4]} << 16 |
                           uint32_t{data[5]} << 24;
  const std::span<const uint8_t> rest = data.subspan(6);
  const std::size_t label_bytes = std::min<std::size_t>(claimed, rest.size());
  const std::span<const uint8_t> labels = rest.first(label_bytes);
  const std::span<const uint8_t> images = rest.subspan(label_bytes);

  const fs::path& dir = scratch().fresh();
  write(dir / ((flags & 1) ? "images.gz" : "images"), images);
  write(dir / ((flags & 2) ? "labels.gz" : "labels"), labels);
  try {
    const nn::Dataset d = nn::read_idx(dir / "images", dir / "labels", num_classes);
    check_dataset(d, num_classes, d.sample_shape);
    check(d.sample_shape.size() == 2, "sample_shape is {rows, cols}");
    check(d.name.empty(), "read_idx names nothing");
    const bool gzip = images.size() >= 2 && images[0] == 0x1f && images[1] == 0x8b;
    if (!gzip) {  // then the header is right there to compare with
      check(images.size() >= 16, "an accepted images file has a 16-byte header");
      check(d.size() == big_endian(images.subspan(4)), "N as in the header");
      check(d.sample_shape ==
                ag::Shape{big_endian(images.subspan(8)), big_endian(images.subspan(12))},
            "rows and cols as in the header");
      check(static_cast<uint64_t>(d.x.numel()) + 16 == images.size(), "one byte per pixel");
    }
  } catch (const nn::DataError& e) {
    check(std::string_view(e.what()).find(e.file().string()) != std::string_view::npos,
          "a DataError names its file");
  }
  return 0;
}

int cifar10(std::span<const uint8_t> data) {
  const fs::path& dir = scratch().fresh();
  write(dir / "test_batch.bin", data);
  try {
    const nn::Dataset d = nn::load_cifar10(dir, "test");
    check_dataset(d, 10, {3, 32, 32});
    check(d.size() * 3073 == static_cast<int64_t>(data.size()), "one record per 3073 bytes");
    check(d.name == "cifar10", "named cifar10");
  } catch (const nn::DataError& e) {
    check(e.file() == dir / "test_batch.bin", "a DataError names its file");
  }
  return 0;
}

int safetensors(std::span<const uint8_t> data) {
  const fs::path& dir = scratch().fresh();
  const fs::path path = dir / "model.safetensors";
  write(path, data);
  nn::Safetensors file;
  try {
    file = nn::load_safetensors(path);
  } catch (const nn::CheckpointError& e) {
    check(e.path() == path, "a CheckpointError names its file");
    return 0;
  }
  // What load accepts, save writes back and load reads back the same.
  uint64_t bytes = 0;
  for (const auto& [name, t] : file.tensors) {
    check(!t.requires_grad(), "loaded tensors do not require grad");
    bytes += static_cast<uint64_t>(t.numel()) * (t.dtype() == ag::DType::Float64 ? 8 : 4);
  }
  check(bytes <= data.size(), "no more tensor data than the file holds");
  const fs::path copy = dir / "copy.safetensors";
  nn::save_safetensors(copy, file.tensors, file.metadata);
  const nn::Safetensors again = nn::load_safetensors(copy);
  check(again.metadata == file.metadata, "metadata round-trips");
  check(again.tensors.size() == file.tensors.size(), "tensor count round-trips");
  for (std::size_t i = 0; i < file.tensors.size(); ++i) {
    check(again.tensors[i].first == file.tensors[i].first, "names round-trip");
    check(same_bytes(again.tensors[i].second, file.tensors[i].second), "tensors round-trip");
  }
  // Loading into a model: every parameter present with its shape, or a CheckpointError.
  ag::Generator gen(0);
  nn::TwoLayerNet model(2, 3, 2, gen);
  try {
    nn::load(model, path);
  } catch (const nn::CheckpointError& e) {
    check(e.path() == path, "a CheckpointError names its file");
  }
#ifdef AUTOGRAD_FUZZ_EXAMPLE
  // As two_layer_net --load reads it.
  try {
    const two_layer_net::SavedModel saved = two_layer_net::load_saved_model(path);
    check(saved.norm.mean.numel() == saved.model.input_size(), "input_mean has D entries");
  } catch (const nn::CheckpointError& e) {
    check(e.path() == path, "a CheckpointError names its file");
  }
#endif
  return 0;
}

#ifdef AUTOGRAD_FUZZ_EXAMPLE
int cli(std::span<const uint8_t> data) {
  std::vector<std::string> args = {"two_layer_net"};
  std::string arg;
  for (const uint8_t byte : data) {
    if (byte != 0) {
      arg.push_back(static_cast<char>(byte));
    } else {
      args.push_back(std::move(arg));
      arg.clear();
    }
  }
  args.push_back(std::move(arg));
  if (args.size() > 65) return 0;
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);

  std::ostringstream out, err;
  const auto parsed =
      two_layer_net::parse_args(static_cast<int>(args.size()), argv.data(), out, err);
  if (const int* code = std::get_if<int>(&parsed)) {
    check(*code == 0 || *code == 2, "exit code 0 or 2");
    if (*code == 0) {
      check(!out.str().empty() && err.str().empty(), "--help prints the help on out");
    } else {
      const std::string e = err.str();
      check(out.str().empty(), "nothing on out after a bad argument");
      check(e.rfind("two_layer_net: ", 0) == 0, "the error line starts with the program's name");
      check(std::count(e.begin(), e.end(), '\n') == 1 && e.back() == '\n',
            "exactly one line on err: " + e);
    }
    return 0;
  }
  check(out.str().empty() && err.str().empty(), "a successful parse prints nothing");
  const two_layer_net::Config& c = std::get<two_layer_net::Config>(parsed);
  auto in = [](auto v, auto lo, auto hi) { return v >= lo && v <= hi; };
  const std::vector<std::string> datasets = {"", "fashion-mnist", "mnist", "cifar10", "spiral"};
  check(std::find(datasets.begin(), datasets.end(), c.dataset) != datasets.end(), "dataset");
  check(c.optimizer.empty() || c.optimizer == "sgd" || c.optimizer == "adam", "optimizer");
  check(c.schedule.empty() || c.schedule == "exp" || c.schedule == "step" || c.schedule == "cosine",
        "schedule");
  check(c.hidden == 0 || in(c.hidden, 1, int64_t{1} << 20), "--hidden in range");
  check(c.epochs == 0 || in(c.epochs, 1, int64_t{1} << 20), "--epochs in range");
  check(c.batch_size == 0 || in(c.batch_size, 1, int64_t{1} << 24), "--batch-size in range");
  check(c.threads == 0 || in(c.threads, 1, 1024), "--threads in range");
  check(c.val_size >= -1 && c.train_limit >= 0 && c.test_limit >= 0, "counts are non-negative");
  check(c.lr == 0 || in(c.lr, 1e-9, 1e3), fmt::format("--lr {} in range", c.lr));
  check(c.lr_decay == 0 || in(c.lr_decay, 1e-9, 1.0),
        fmt::format("--lr-decay {} in range", c.lr_decay));
  check(c.momentum == -1 || in(c.momentum, 0.0, 0.999),
        fmt::format("--momentum {} in range", c.momentum));
  check(c.reg == -1 || in(c.reg, 0.0, 1e3), fmt::format("--reg {} in range", c.reg));
  if (!c.load.empty()) {
    std::error_code ignored;
    check(fs::exists(c.load, ignored), "--load names an existing file");
  }
  return 0;
}
#endif

Target find(std::string_view name) {
  if (name == "idx") return idx;
  if (name == "cifar10") return cifar10;
  if (name == "safetensors") return safetensors;
#ifdef AUTOGRAD_FUZZ_EXAMPLE
  if (name == "cli") return cli;
#endif
  return nullptr;
}

}  // namespace fuzz
