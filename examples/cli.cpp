// The two_layer_net command line, set up with CLI11.
#include "cli.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace two_layer_net {

namespace {

// `text` with its control characters escaped, so that a message quoting an argument stays on one
// line whatever the argument holds (CLI11's messages repeat the offending argument as given).
std::string one_line(std::string_view text) {
  std::string out;
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr const char* kHex = "0123456789abcdef";
      out += {'\\', 'x', kHex[byte >> 4], kHex[byte & 15]};
    } else {
      out += ch;
    }
  }
  return out;
}

// A check for a real option: a finite number in [lo, hi]. (CLI::Range lets NaN through, as every
// comparison with NaN is false, and prints 1e-9 as 0.000000.)
CLI::Validator finite_in(double lo, double hi) {
  const std::string range = fmt::format("[{:g}, {:g}]", lo, hi);
  return CLI::Validator(
      [lo, hi, range](std::string& input) -> std::string {
        const char* begin = input.c_str();
        char* end = nullptr;
        errno = 0;
        const double value = std::strtod(begin, &end);
        if (end == begin || *end != '\0' || errno == ERANGE || !std::isfinite(value) ||
            value < lo || value > hi)
          return fmt::format("{} is not a number in {}", input, range);
        return {};
      },
      "NUMBER in " + range);
}

}  // namespace

std::variant<Config, int> parse_args(int argc, const char* const* argv, std::ostream& out,
                                     std::ostream& err) {
  Config c;
  CLI::App app{"Trains a two-layer classifier built from autograd ops and writes its results.",
               "two_layer_net"};
  app.add_option("--dataset", c.dataset,
                 "fashion-mnist (default if installed), mnist, cifar10 or spiral")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10", "spiral"}));
  app.add_option("--data-dir", c.data_dir,
                 "Directory with the dataset's files (default for fashion-mnist: "
                 "$FASHION_MNIST_DIR or " +
                     std::string(kDefaultFashionDir) + "; mnist: " + kDefaultMnistDir +
                     "; cifar10: " + kDefaultCifar10Dir + ")");
  app.add_option("--hidden", c.hidden, "Hidden units")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--epochs", c.epochs, "Passes over the training set")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--batch-size", c.batch_size, "Examples per step")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--optimizer", c.optimizer,
                 "sgd (Nesterov momentum) or adam (default: adam for fashion-mnist and mnist, sgd "
                 "for cifar10 and spiral)")
      ->check(CLI::IsMember({"sgd", "adam"}));
  app.add_option("--lr", c.lr, "Learning rate")->check(finite_in(1e-9, 1e3));
  app.add_option("--lr-decay", c.lr_decay, "Learning rate factor per epoch")
      ->check(finite_in(1e-9, 1.0));
  app.add_option("--schedule", c.schedule,
                 "Learning-rate schedule: exp (times --lr-decay each epoch), step (x0.1 every "
                 "third of the run) or cosine (to 0 at the end)")
      ->check(CLI::IsMember({"exp", "step", "cosine"}));
  app.add_option("--momentum", c.momentum, "SGD momentum (0 for plain SGD)")
      ->check(finite_in(0.0, 0.999));
  app.add_option("--reg", c.reg, "L2 strength: loss += reg * (|W1|^2 + |W2|^2)")
      ->check(finite_in(0.0, 1e3));
  app.add_option("--seed", c.seed, "Seed for initialisation, shuffling and the validation split");
  app.add_option("--threads", c.threads,
                 "Threads for matrix products (default: the cores this process may use)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--val-size", c.val_size, "Training examples held out for validation")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--train-limit", c.train_limit, "Use only the first N training examples")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--test-limit", c.test_limit, "Use only the first N test examples")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", c.out, "Output directory (default: runs/<dataset>-<time>)");
  app.add_option("--load", c.load,
                 "Evaluate a saved model.safetensors on the test set instead of training")
      ->check(CLI::ExistingFile);
  app.add_flag("--quiet", c.quiet, "No progress bar");
  std::vector<std::string> args;  // CLI11 takes them last to first, without the program's name
  for (int i = argc - 1; i > 0; --i) args.emplace_back(argv[i]);
  try {
    app.parse(std::move(args));
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "two_layer_net: " << one_line(e.what()) << " (see --help)\n";
    return 2;
  }
  return c;
}

}  // namespace two_layer_net
