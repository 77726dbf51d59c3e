// The minibatch SGD loop around TwoLayerNet::loss and backward().
#include "nn/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace nn {

double accuracy(const TwoLayerNet& model, const Dataset& data, int64_t batch_size) {
  if (data.size() == 0) return 0.0;
  std::vector<int64_t> rows;
  ag::Tensor batch;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
    const int64_t end = std::min(data.size(), begin + batch_size);
    rows.resize(static_cast<std::size_t>(end - begin));
    std::iota(rows.begin(), rows.end(), begin);
    copy_rows(data.x, rows, batch);
    const std::vector<int32_t> predicted = model.predict(batch);
    for (int64_t i = begin; i < end; ++i)
      correct +=
          predicted[static_cast<std::size_t>(i - begin)] == data.y[static_cast<std::size_t>(i)];
  }
  return double(correct) / double(data.size());
}

namespace {

// Throws std::invalid_argument unless `data` (the `which` set) has one label per row, each in
// [0, classes), and finite features; the message names the first bad row (and feature).
void check_dataset(const Dataset& data, const char* which, int64_t classes) {
  const int64_t N = data.size(), D = data.features();
  const std::string set = std::string("train: the ") + which + " set";
  if (static_cast<int64_t>(data.y.size()) != N)
    throw std::invalid_argument(set + " has " + std::to_string(data.y.size()) + " labels for " +
                                std::to_string(N) + " rows");
  for (int64_t i = 0; i < N; ++i) {
    const int32_t label = data.y[std::size_t(i)];
    if (label < 0 || label >= classes)
      throw std::invalid_argument(set + ": the label of row " + std::to_string(i) + " is " +
                                  std::to_string(label) + ", outside the model's classes [0, " +
                                  std::to_string(classes) + ")");
  }
  auto scan = [&](const auto* x) {
    for (int64_t i = 0; i < N * D; ++i)
      if (!std::isfinite(x[i]))
        throw std::invalid_argument(set + " holds " + std::to_string(x[i]) + " at row " +
                                    std::to_string(i / D) + ", feature " + std::to_string(i % D) +
                                    " (training needs finite inputs)");
  };
  if (N == 0) return;
  if (data.x.dtype() == ag::DType::Float64)
    scan(data.x.data<double>());
  else
    scan(data.x.data<float>());
}

std::vector<ag::Tensor> snapshot(const TwoLayerNet& model) {
  std::vector<ag::Tensor> copies;
  for (const ag::Tensor& p : model.parameters()) copies.push_back(p.clone());
  return copies;
}

void restore(TwoLayerNet& model, const std::vector<ag::Tensor>& copies) {
  std::vector<ag::Tensor> params = model.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(copies[i]);
}

}  // namespace

History train(TwoLayerNet& model, Optimizer& optimizer, const Dataset& train, const Dataset& val,
              const TrainOptions& options) {
  const int64_t N = train.size();
  if (N == 0) throw std::invalid_argument("train: the training set is empty");
  if (options.batch_size < 1) throw std::invalid_argument("train: batch_size must be >= 1");
  if (options.epochs < 0) throw std::invalid_argument("train: epochs must be >= 0");
  if (train.features() != model.input_size())
    throw std::invalid_argument("train: the model takes " + std::to_string(model.input_size()) +
                                " features, the data has " + std::to_string(train.features()));
  if (val.size() > 0 && val.features() != model.input_size())
    throw std::invalid_argument("train: the model takes " + std::to_string(model.input_size()) +
                                " features, the validation data has " +
                                std::to_string(val.features()));
  check_dataset(train, "training", model.num_classes());
  check_dataset(val, "validation", model.num_classes());

  using Clock = std::chrono::steady_clock;
  ag::Generator gen(options.seed);
  const double base_lr = optimizer.lr();
  const int64_t steps = (N + options.batch_size - 1) / options.batch_size;
  const Dataset train_eval =
      options.train_eval_size > 0 ? train.head(options.train_eval_size) : train;

  History history;
  std::vector<ag::Tensor> best = snapshot(model);
  std::vector<int64_t> order(static_cast<std::size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  ag::Tensor batch_x;
  std::vector<int32_t> batch_y;
  std::vector<int64_t> rows;

  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const auto start = Clock::now();
    optimizer.set_lr(options.schedule.at(base_lr, epoch));
    if (!options.sample_with_replacement)  // Fisher-Yates with our own generator: reproducible
      for (int64_t i = N - 1; i > 0; --i)
        std::swap(order[std::size_t(i)], order[std::size_t(gen.below(uint64_t(i) + 1))]);

    double loss_sum = 0.0;
    for (int64_t step = 0; step < steps; ++step) {
      const int64_t begin = step * options.batch_size;
      const int64_t B = options.sample_with_replacement ? options.batch_size
                                                        : std::min(options.batch_size, N - begin);
      rows.resize(std::size_t(B));
      for (int64_t b = 0; b < B; ++b)
        rows[std::size_t(b)] = options.sample_with_replacement ? int64_t(gen.below(uint64_t(N)))
                                                               : order[std::size_t(begin + b)];
      copy_rows(train.x, rows, batch_x);
      batch_y.resize(std::size_t(B));
      for (int64_t b = 0; b < B; ++b)
        batch_y[std::size_t(b)] = train.y[std::size_t(rows[std::size_t(b)])];

      optimizer.zero_grad();
      const ag::Tensor loss = model.loss(batch_x, batch_y, options.reg);
      loss.backward();
      optimizer.step();

      const double value = loss.item();
      if (!std::isfinite(value))
        throw std::runtime_error(
            "train: the loss became " + std::to_string(value) + " at epoch " +
            std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) + " (learning rate " +
            std::to_string(optimizer.lr()) +
            "): the training diverged; lower the learning rate, or run the step under "
            "ag::AnomalyGuard to find the op that first produced it");
      history.step_loss.push_back(value);
      loss_sum += value;
      if (options.on_step) options.on_step(step + 1, steps, value);
    }

    EpochStats stats;
    stats.epoch = epoch + 1;
    stats.loss = loss_sum / double(steps);
    stats.lr = optimizer.lr();
    stats.train_accuracy = accuracy(model, train_eval);
    stats.val_accuracy = val.size() > 0 ? accuracy(model, val) : stats.train_accuracy;
    stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (history.best_epoch == 0 || stats.val_accuracy > history.best_val_accuracy) {
      history.best_epoch = stats.epoch;
      history.best_val_accuracy = stats.val_accuracy;
      if (options.keep_best) best = snapshot(model);
    }
    history.epochs.push_back(stats);
    if (options.on_epoch) options.on_epoch(stats);
  }
  if (options.keep_best && options.epochs > 0) restore(model, best);
  if (!options.keep_best && options.epochs > 0) history.best_epoch = options.epochs;
  return history;
}

}  // namespace nn
