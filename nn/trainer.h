// The training driver: shuffled minibatches per epoch, one optimiser step per batch, loss per
// step, train and validation accuracy per epoch, and the best model (by validation accuracy)
// kept. Same seed and thread count, same history.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "nn/data.h"
#include "nn/optim.h"
#include "nn/two_layer_net.h"

namespace nn {

struct EpochStats {
  int64_t epoch = 0;            // from 1
  double loss = 0.0;            // mean of this epoch's step losses
  double train_accuracy = 0.0;  // on (up to options.train_eval_size rows of) the training set
  double val_accuracy = 0.0;
  double lr = 0.0;       // the learning rate used during the epoch
  double seconds = 0.0;  // wall time of the epoch, evaluation included
};

struct History {
  std::vector<double> step_loss;  // one per optimiser step
  std::vector<EpochStats> epochs;
  int64_t best_epoch = 0;  // the epoch whose parameters the model holds at the end
  double best_val_accuracy = 0.0;
};

struct TrainOptions {
  int64_t epochs = 10;
  int64_t batch_size = 128;
  double reg = 0.0;     // L2 strength: loss += reg · (l2(W1) + l2(W2))
  LrSchedule schedule;  // applied to the optimiser's lr at each epoch start
  uint64_t seed = 0;    // shuffling
  /// CS231n's sampling: each batch drawn with replacement, N / batch_size batches an epoch.
  bool sample_with_replacement = false;
  /// At the end, restore the parameters of the epoch with the best validation accuracy.
  bool keep_best = true;
  /// Training accuracy is measured on the first this-many training rows (0: all of them).
  int64_t train_eval_size = 10000;
  /// Called after every step with (step within the epoch, steps in the epoch, loss).
  std::function<void(int64_t, int64_t, double)> on_step;
  /// Called after every epoch.
  std::function<void(const EpochStats&)> on_epoch;
};

/// Trains `model` on `train` with `optimizer`, measuring accuracy on `val` after every epoch.
/// Checks both sets first: std::invalid_argument names the set and the first row whose label is
/// outside [0, model.num_classes()) or whose features hold a NaN or an infinity (and a label
/// count or feature count that does not match). If the loss itself becomes NaN or infinite (the
/// training diverged), throws std::runtime_error naming the epoch, the step and the learning rate.
History train(TwoLayerNet& model, Optimizer& optimizer, const Dataset& train, const Dataset& val,
              const TrainOptions& options);

/// Fraction of rows whose predicted class equals the label, evaluated in batches without a graph.
double accuracy(const TwoLayerNet& model, const Dataset& data, int64_t batch_size = 4096);

}  // namespace nn
