// The two_layer_net example's command line: every option with its range and help text, parsed
// into a Config without reading data, creating directories or training, so that a test or a
// fuzzer can call it on any argv.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <variant>

namespace two_layer_net {

/// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
inline constexpr const char* kDefaultFashionDir = "/usr/share/datasets/fashion-mnist";
/// --data-dir's default for MNIST and for CIFAR-10 (relative to the working directory).
inline constexpr const char* kDefaultMnistDir = "/usr/share/datasets/mnist";
inline constexpr const char* kDefaultCifar10Dir = "data/cifar-10-batches-bin";

/// What the command line asked for. A 0 (-1 for val_size, momentum and reg; an empty string for
/// dataset, optimizer and schedule) means "not given": run() fills in the dataset's default.
struct Config {
  std::string dataset;  // empty: Fashion-MNIST if installed, else the spiral
  std::string data_dir;
  int64_t hidden = 0, epochs = 0, batch_size = 0, val_size = -1;
  int64_t train_limit = 0, test_limit = 0;
  std::string optimizer, schedule;
  double lr = 0, lr_decay = 0, momentum = -1, reg = -1;
  uint64_t seed = 0;
  int threads = 0;
  std::string out, load;
  bool quiet = false;
};

/// Parses argv (argv[0] is the program's name) into a Config, or returns the code main() must
/// exit with at once: 0 after --help (the help text written to `out`), 2 after a bad argument
/// (exactly one line written to `err`: "two_layer_net: <problem> (see --help)"). Reads no file
/// beyond checking that --load names an existing one; never throws for any argv.
std::variant<Config, int> parse_args(int argc, const char* const* argv, std::ostream& out,
                                     std::ostream& err);

}  // namespace two_layer_net
