// The model two_layer_net saves (model.safetensors: W1, b1, W2, b2 and the input statistics
// input_mean, input_std), read back with every shape checked against the others before anything
// is allocated: a checkpoint that lies gets an nn::CheckpointError naming the tensor, never a
// crash, an out-of-bounds read or an allocation larger than the file.
#pragma once

#include <filesystem>

#include "nn/data.h"
#include "nn/two_layer_net.h"

namespace two_layer_net {

struct SavedModel {
  nn::TwoLayerNet model;
  /// The training set's statistics, to apply to raw inputs before model.predict.
  nn::Standardizer norm;
};

/// Reads `path`, which must hold W1 [D, H], b1 [H], W2 [H, C], b2 [C], input_mean [D] and
/// input_std [D] with D, H, C >= 1, finite values and a positive input_std (float32 or float64;
/// other tensors are ignored). Throws nn::CheckpointError naming the file and the first tensor
/// that is missing or does not fit, std::system_error if the file cannot be read.
SavedModel load_saved_model(const std::filesystem::path& path);

}  // namespace two_layer_net
