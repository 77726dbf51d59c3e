// custom_op: a user's forward and backward, recorded as one node like the built-in ops.
#include "autograd/function.h"

#include <fmt/format.h>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>

#include "autograd/detail/anomaly.h"
#include "autograd/detail/dispatch.h"

namespace ag {
namespace {

// Node::name is a const char* that must outlive every graph (and the error messages about a
// released one). Custom op names are therefore interned: stored once per distinct name, for the
// life of the program.
const char* intern(std::string_view name) {
  static std::mutex mutex;
  static std::unordered_set<std::string> names;
  const std::lock_guard lock(mutex);
  return names.emplace(name).first->c_str();
}

struct CustomOp {
  const char* name;
  CustomForward forward;
  CustomBackward backward;
};

// The node's backward: the user's, given the context. It takes the node's inputs (which it does
// not use) so that backward() checks that none was changed in place since the op ran (ctx.inputs
// share their storage); check_saved does the same for the output, which the node does not hold.
struct SavedBackward {
  std::shared_ptr<const CustomOp> op;
  OpContext ctx;
  uint64_t output_version;
  Where where;

  std::vector<Tensor> operator()(const Tensor& g, const TensorList& /*inputs*/) const {
    return op->backward(ctx, g);
  }
  void check_saved() const {
    if (ctx.output.version() != output_version)
      throw std::logic_error(fmt::format(
          "node '{}' (created at {}:{}): its output (shape {}) was modified in place after the op "
          "ran (its version is {}, it was {}), and the backward may read it. Change it after "
          "backward(), or clone() it first",
          op->name, where.file_name(), where.line(), shape_str(ctx.output.shape()),
          ctx.output.version(), output_version));
  }
};

Tensor apply(const std::shared_ptr<const CustomOp>& op, std::vector<Tensor> inputs, Where where) {
  std::vector<Tensor> values;  // what forward and backward see: values, no graph
  std::vector<bool> needs_input_grad;
  bool record = is_grad_enabled();
  bool any_needs_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) detail::fail("{}: input {} is undefined", op->name, i);
    values.push_back(inputs[i].detach());
    needs_input_grad.push_back(record && inputs[i].requires_grad());
    any_needs_grad = any_needs_grad || needs_input_grad.back();
  }
  record = record && any_needs_grad;

  Tensor output;
  {
    const NoGradGuard no_grad;  // ops composed inside forward must not record nodes of their own
    output = op->forward(values);
  }
  if (!output.defined()) detail::fail("{}: forward returned an undefined tensor", op->name);
  output = output.detach();  // a fresh handle: never an input's, or a leaf the lambda captured

  if (!record) {
    if (detail::anomaly_enabled) detail::check_forward_finite(output, op->name, where);
    return output;
  }
  OpContext ctx{std::move(values), output.detach(), std::move(needs_input_grad)};
  detail::record(
      output, op->name, TensorList(inputs.begin(), inputs.end()),
      SavedBackward{op, std::move(ctx), output.version(), where},
      [op, where](const std::vector<Tensor>& in) { return apply(op, in, where); }, where);
  return output;
}

}  // namespace

Tensor custom_op(std::string_view name, std::vector<Tensor> inputs, CustomForward forward,
                 CustomBackward backward, Where where) {
  if (name.empty()) detail::fail("custom_op: the op needs a name");
  if (!forward || !backward)
    detail::fail("custom_op '{}': both a forward and a backward are needed", name);
  auto op = std::make_shared<const CustomOp>(
      CustomOp{intern(name), std::move(forward), std::move(backward)});
  return apply(op, std::move(inputs), where);
}

}  // namespace ag
