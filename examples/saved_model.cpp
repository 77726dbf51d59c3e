// Reading back the model two_layer_net saves.
#include "saved_model.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "nn/checkpoint.h"

namespace two_layer_net {

namespace {

// The first element of t that is not finite (or, if positive, not > 0), or -1.
int64_t first_bad(const ag::Tensor& t, bool positive) {
  const std::vector<double> values = t.to_vector();
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]) || (positive && !(values[i] > 0))) return static_cast<int64_t>(i);
  return -1;
}

}  // namespace

SavedModel load_saved_model(const std::filesystem::path& path) {
  const nn::Safetensors file = nn::load_safetensors(path);
  std::map<std::string, const ag::Tensor*> by_name;
  for (const auto& [name, tensor] : file.tensors) by_name.emplace(name, &tensor);
  auto get = [&](const std::string& name) -> const ag::Tensor& {
    const auto found = by_name.find(name);
    if (found == by_name.end())
      throw nn::CheckpointError(path, fmt::format("tensor '{}' is missing: a two_layer_net "
                                                  "checkpoint holds W1, b1, W2, b2, input_mean "
                                                  "and input_std",
                                                  name));
    return *found->second;
  };
  const ag::Tensor &W1 = get("W1"), &b1 = get("b1"), &W2 = get("W2"), &b2 = get("b2");
  const ag::Tensor &mean = get("input_mean"), &stddev = get("input_std");

  // D, H and C from W1 and W2; each at least 1, so the model is no larger than the file's data.
  auto bad_shape = [&](const std::string& name, const ag::Tensor& t, const std::string& expected) {
    return nn::CheckpointError(path, fmt::format("tensor '{}' has shape {}, expected {}", name,
                                                 ag::shape_str(t.shape()), expected));
  };
  if (W1.dim() != 2 || W1.size(0) < 1 || W1.size(1) < 1)
    throw bad_shape("W1", W1, "[D, H] with D, H >= 1");
  const int64_t D = W1.size(0), H = W1.size(1);
  if (W2.dim() != 2 || W2.size(0) != H || W2.size(1) < 1)
    throw bad_shape("W2", W2, fmt::format("[{}, C] with C >= 1 (H = {} from W1)", H, H));
  const int64_t C = W2.size(1);
  for (const auto& [name, t, n] :
       {std::tuple<std::string, const ag::Tensor*, int64_t>{"b1", &b1, H},
        {"b2", &b2, C},
        {"input_mean", &mean, D},
        {"input_std", &stddev, D}})
    if (t->shape() != ag::Shape{n}) throw bad_shape(name, *t, fmt::format("[{}]", n));

  ag::Generator gen(0);
  SavedModel saved{nn::TwoLayerNet(D, H, C, gen),
                   {mean.to(ag::DType::Float32), stddev.to(ag::DType::Float32)}};
  {
    ag::NoGradGuard no_grad;
    saved.model.W1.copy_(W1);
    saved.model.b1.copy_(b1);
    saved.model.W2.copy_(W2);
    saved.model.b2.copy_(b2);
  }
  // Checked as float32: a float64 value beyond float's range has become infinite.
  for (const auto& [name, t] : {std::pair<std::string, const ag::Tensor*>{"W1", &saved.model.W1},
                                {"b1", &saved.model.b1},
                                {"W2", &saved.model.W2},
                                {"b2", &saved.model.b2},
                                {"input_mean", &saved.norm.mean},
                                {"input_std", &saved.norm.std}}) {
    const bool positive = name == "input_std";
    if (const int64_t i = first_bad(*t, positive); i >= 0)
      throw nn::CheckpointError(
          path, fmt::format("tensor '{}' holds {} at element {} as float32{}", name,
                            t->to_vector()[static_cast<std::size_t>(i)], i,
                            positive ? " (a standard deviation must be positive)" : ""));
  }
  return saved;
}

}  // namespace two_layer_net
