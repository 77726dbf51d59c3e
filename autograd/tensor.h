// Tensor: a handle to shared, contiguous, row-major storage of float or double, plus the
// autograd state that makes it part of a dynamic computation graph (requires_grad, the
// accumulated gradient of a leaf, the node that produced a non-leaf).
//
// Copying a Tensor copies the handle, not the data (as in LibTorch). Use clone() for a deep copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/small_vector.h"

namespace ag {

/// The extent of each dimension, outermost first. `{}` is a scalar (one element).
using Shape = std::vector<int64_t>;

/// Element type of a tensor, chosen at run time.
enum class DType { Float32, Float64 };

/// "float32" or "float64".
const char* dtype_name(DType dtype);
/// "[2, 3]" (and "[]" for a scalar): how error messages print shapes.
std::string shape_str(const Shape& shape);
template <std::size_t N>
std::string shape_str(const SmallVector<int64_t, N>& shape);
/// Product of the extents; throws std::invalid_argument on a negative extent or overflow.
int64_t shape_numel(const Shape& shape);

/// A seeded, reproducible source of random numbers (same seed, same numbers, on every platform:
/// the normal deviates come from our own Box-Muller transform, not std::normal_distribution).
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  /// Uniform on [0, 1).
  double uniform();
  /// Standard normal.
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

struct Node;
struct TensorImpl;

/// Options for Tensor::backward().
struct BackwardOptions {
  /// Keep the graph's saved buffers so that backward() can run through it again.
  bool retain_graph = false;
};

class Tensor {
 public:
  /// An undefined tensor (defined() is false), as returned by grad() before any backward().
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  /// Uninitialised storage of the given shape; used by ops to allocate their outputs.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32);
  /// As above, for a shape written in place: Tensor::empty({N, H}).
  static Tensor empty(std::initializer_list<int64_t> shape, DType dtype = DType::Float32);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  /// Extent of dimension d (negative d counts from the end).
  int64_t size(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;

  /// The value of a one-element tensor.
  double item() const;
  /// All elements, row-major, converted to double.
  std::vector<double> to_vector() const;

  /// Typed access to the storage; T must match dtype() (float or double), else throws.
  template <class T>
  T* data();
  template <class T>
  const T* data() const;

  /// Marks a leaf tensor as a parameter whose gradient backward() accumulates into grad().
  Tensor& requires_grad_(bool requires_grad = true);
  /// True for a leaf marked with requires_grad_() and for any result computed from one.
  bool requires_grad() const;
  /// True when no op produced this tensor inside the graph (grad_fn() is null).
  bool is_leaf() const;
  /// The accumulated gradient of a leaf; undefined until a backward() reaches it. (It completes
  /// a pending zero_grad() first, so do not call it on one tensor from two threads at once.)
  Tensor grad() const;
  /// Sets the accumulated gradient to zero. When nothing else holds the gradient, the zeros are
  /// written only when someone looks: by grad(), or by the next backward(), which may then make a
  /// gradient it computed the new grad() (new storage) instead of adding it to zeros. A Tensor
  /// you hold from grad() stays the gradient, zeroed in place; a raw pointer into it does not.
  void zero_grad();
  /// Reverse-mode differentiation from this scalar. Gradients are added into the grad() of
  /// every leaf that requires grad. The graph's saved buffers are released unless
  /// options.retain_graph is set.
  void backward(BackwardOptions options = {}) const;
  /// The node that produced this tensor (null for a leaf).
  const std::shared_ptr<Node>& grad_fn() const;

  /// Same storage, cut out of the graph: a leaf that does not require grad.
  Tensor detach() const;
  /// A deep copy of the values (a leaf that does not require grad).
  Tensor clone() const;
  /// Converts to another dtype; differentiable.
  Tensor to(DType dtype) const;

  // In-place updates of the values. They are not recorded in the graph; use them on leaves
  // (optimizer steps, initialisation) or under NoGradGuard.
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& source);
  /// this += alpha * other (same shape and dtype).
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double factor);

  /// How many times the values were changed in place: by fill_, copy_, add_, mul_, an optimizer
  /// step, or bump_version(). Shared with detached views (they share the storage). A node whose
  /// backward reads its inputs remembers their versions, and backward() refuses to run it once
  /// one has changed, instead of silently computing the gradient of other values.
  uint64_t version() const;
  /// Counts an in-place change made through data<T>(), which the tensor cannot see: call it after
  /// writing into a tensor that a graph may still need.
  void bump_version();

  /// The shared implementation (for the engine and for tests of graph lifetime).
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }

 private:
  // Inline, so that loops bounded by numel() or reading shape() and data() compile to plain loads.
  const TensorImpl& checked() const;
  TensorImpl& checked();
  [[noreturn]] static void throw_undefined();
  [[noreturn]] void throw_bad_dim(int64_t d) const;
  [[noreturn]] static void throw_dtype_mismatch(DType dtype, const char* asked_for);
  static Tensor empty_of(std::span<const int64_t> shape, DType dtype);
  std::shared_ptr<TensorImpl> impl_;
};

/// A tensor holding `values` (row-major) with the given shape; values.size() must match.
Tensor tensor(const std::vector<double>& values, Shape shape, DType dtype = DType::Float32);
/// A scalar (shape {}).
Tensor scalar(double value, DType dtype = DType::Float32);
Tensor zeros(Shape shape, DType dtype = DType::Float32);
Tensor ones(Shape shape, DType dtype = DType::Float32);
Tensor full(Shape shape, double value, DType dtype = DType::Float32);
/// Normal deviates with mean 0 and standard deviation `stddev`, drawn from `gen`.
Tensor randn(Shape shape, Generator& gen, double stddev = 1.0, DType dtype = DType::Float32);
/// Uniform deviates on [low, high), drawn from `gen`.
Tensor rand(Shape shape, Generator& gen, double low = 0.0, double high = 1.0,
            DType dtype = DType::Float32);

namespace detail {

/// fill_ and copy_ without counting a version: for tensors nobody has seen yet (factories, an
/// op's output).
void fill_values(Tensor& t, double value);
void copy_values(Tensor& destination, const Tensor& source);

/// shape_str and shape_numel for any contiguous list of extents.
std::string shape_str_of(std::span<const int64_t> shape);
int64_t numel_of(std::span<const int64_t> shape);

/// 64-byte aligned storage shared by a tensor and its detached views.
struct Storage {
  explicit Storage(std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  std::size_t bytes = 0;
  uint64_t version = 0;  // in-place updates so far (see Tensor::version)
};

}  // namespace detail

/// The state behind a Tensor handle. Users rarely touch it; ops and the engine do.
struct TensorImpl {
  std::shared_ptr<detail::Storage> storage;
  Shape shape;
  int64_t numel = 0;
  DType dtype = DType::Float32;
  bool requires_grad = false;      // leaves only: accumulate a gradient here
  Tensor grad;                     // leaves only: the accumulated gradient
  bool grad_pending_zero = false;  // leaves only: grad counts as zeros (see Tensor::zero_grad)
  std::shared_ptr<Node> grad_fn;   // non-leaves: the op that produced this tensor
};

template <std::size_t N>
std::string shape_str(const SmallVector<int64_t, N>& shape) {
  return detail::shape_str_of(std::span<const int64_t>(shape.data(), shape.size()));
}

inline const TensorImpl& Tensor::checked() const {
  if (!impl_) throw_undefined();
  return *impl_;
}
inline TensorImpl& Tensor::checked() {
  if (!impl_) throw_undefined();
  return *impl_;
}
inline const Shape& Tensor::shape() const {
  return checked().shape;
}
inline int64_t Tensor::size(int64_t d) const {
  const Shape& s = shape();
  const auto n = static_cast<int64_t>(s.size());
  if (d < -n || d >= n) throw_bad_dim(d);
  return s[static_cast<std::size_t>(d < 0 ? d + n : d)];
}
inline int64_t Tensor::numel() const {
  return checked().numel;
}
inline DType Tensor::dtype() const {
  return checked().dtype;
}
inline uint64_t Tensor::version() const {
  return checked().storage->version;
}
inline void Tensor::bump_version() {
  ++checked().storage->version;
}

template <class T>
T* Tensor::data() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
  TensorImpl& t = checked();
  if ((std::is_same_v<T, float> ? DType::Float32 : DType::Float64) != t.dtype)
    throw_dtype_mismatch(t.dtype, std::is_same_v<T, float> ? "float" : "double");
  return static_cast<T*>(t.storage->data);
}

template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}

}  // namespace ag
