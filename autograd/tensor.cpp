// Tensor storage, factories, element access and the in-place updates used by optimizers.
#include "autograd/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <numbers>

#include "autograd/allocator.h"
#include "autograd/detail/dispatch.h"
#include "autograd/detail/parallel.h"
#include "autograd/graph.h"
#include "autograd/ops.h"

namespace ag {

const char* dtype_name(DType dtype) {
  return dtype == DType::Float64 ? "float64" : "float32";
}

std::string shape_str(const Shape& shape) {
  return detail::shape_str_of(shape);
}

int64_t shape_numel(const Shape& shape) {
  return detail::numel_of(shape);
}

namespace detail {

std::string shape_str_of(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t numel_of(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t extent : shape) {
    if (extent < 0) fail("shape {}: extents must not be negative", shape_str_of(shape));
    if (__builtin_mul_overflow(n, extent, &n))  // (no division: this runs for every tensor)
      fail("shape {}: element count overflows int64", shape_str_of(shape));
  }
  return n;
}

}  // namespace detail

// ---- Generator ----

double Generator::uniform() {
  // 53 random bits -> [0, 1), the same on every platform.
  return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
}

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Box-Muller: two uniforms -> two independent standard normals.
  double u1 = 0.0;
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

uint64_t Generator::below(uint64_t n) {
  if (n == 0) throw std::invalid_argument("Generator::below: n must be positive");
  // Rejection sampling: unbiased, and platform independent (unlike uniform_int_distribution).
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t x = engine_();
  while (x >= limit) x = engine_();
  return x % n;
}

// ---- Storage ----

namespace detail {

Storage::Storage(std::size_t n) : data(allocate(n)), bytes(n) {}

Storage::~Storage() {
  deallocate(data, bytes);
}

void check_defined(const char* op, std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs)
    if (!t->defined()) fail("{}: an input tensor is undefined", op);
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    fail("{}: dtypes {} and {} do not match (shapes {} and {}); convert one with .to()", op,
         dtype_name(a.dtype()), dtype_name(b.dtype()), shape_str(a.shape()), shape_str(b.shape()));
}

}  // namespace detail

// ---- Tensor ----

namespace {

// TensorImpls are recycled per thread, each with its shape vector's memory, so that the tensors a
// training step makes get their shapes without a call to malloc (a step makes dozens, all of
// shapes seen in the step before).
// Plain data (constinit), so the hot path reads it with no thread-local initialisation check;
// ImplPoolOwner deletes what is left when the thread exits, registered by the first recycling.
constexpr std::size_t kMaxPooledImpls = 512;
struct ImplPool {
  std::array<TensorImpl*, kMaxPooledImpls> free;
  std::size_t count;
  bool alive;  // false once the owner has emptied it at thread exit
  bool owned;  // the owner has been touched, and so will empty it at thread exit
};
constinit thread_local ImplPool impl_pool{{}, 0, true, false};

struct ImplPoolOwner {
  bool registered = false;
  ~ImplPoolOwner() {
    impl_pool.alive = false;
    while (impl_pool.count > 0) delete impl_pool.free[--impl_pool.count];
  }
};
thread_local ImplPoolOwner impl_pool_owner;

struct RecycleImpl {
  void operator()(TensorImpl* t) const noexcept {
    // First let go of what it holds; that may free a graph, and with it more impls.
    t->storage.reset();
    t->grad = Tensor();
    t->grad_fn.reset();
    t->requires_grad = false;
    t->grad_pending_zero = false;
    if (impl_pool.alive && impl_pool.count < kMaxPooledImpls) {
      if (!impl_pool.owned) impl_pool.owned = impl_pool_owner.registered = true;
      impl_pool.free[impl_pool.count++] = t;
      return;
    }
    delete t;
  }
};

std::shared_ptr<TensorImpl> new_impl() {
  TensorImpl* t = nullptr;
  if (impl_pool.count > 0) {
    t = impl_pool.free[--impl_pool.count];
  } else {
    t = new TensorImpl;
  }
  // The reference counts come from the small-object free lists (see allocator.h).
  return std::shared_ptr<TensorImpl>(t, RecycleImpl{}, detail::SmallObjectAllocator<TensorImpl>{});
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  return empty_of(shape, dtype);
}

Tensor Tensor::empty(std::initializer_list<int64_t> shape, DType dtype) {
  return empty_of(std::span<const int64_t>(shape.begin(), shape.size()), dtype);
}

Tensor Tensor::empty_of(std::span<const int64_t> shape, DType dtype) {
  const int64_t numel = detail::numel_of(shape);
  const std::size_t elem = dtype == DType::Float64 ? sizeof(double) : sizeof(float);
  if (static_cast<uint64_t>(numel) > std::numeric_limits<std::size_t>::max() / elem)
    detail::fail("Tensor::empty: shape {} is too large", detail::shape_str_of(shape));
  auto impl = new_impl();
  impl->storage = detail::make_pooled<detail::Storage>(static_cast<std::size_t>(numel) * elem);
  impl->shape.assign(shape.begin(), shape.end());
  impl->numel = numel;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

void Tensor::throw_undefined() {
  throw std::logic_error("ag::Tensor: use of an undefined tensor");
}

void Tensor::throw_dtype_mismatch(DType dtype, const char* asked_for) {
  throw std::invalid_argument(std::string("Tensor::data: tensor is ") + dtype_name(dtype) +
                              ", asked for " + asked_for);
}

void Tensor::throw_bad_dim(int64_t d) const {
  detail::fail("Tensor::size: dimension {} is out of range for shape {}", d, shape_str(shape()));
}

double Tensor::item() const {
  if (numel() != 1)
    detail::fail("Tensor::item: tensor of shape {} has {} elements, not 1", shape_str(shape()),
                 numel());
  return detail::dispatch(dtype(), [&]<class T>() { return static_cast<double>(data<T>()[0]); });
}

std::vector<double> Tensor::to_vector() const {
  return detail::dispatch(dtype(), [&]<class T>() {
    const T* p = data<T>();
    return std::vector<double>(p, p + numel());
  });
}

Tensor& Tensor::requires_grad_(bool requires_grad) {
  TensorImpl& t = checked();
  if (t.grad_fn)
    throw std::invalid_argument(
        "requires_grad_: only leaf tensors can be marked; this one was computed by '" +
        std::string(t.grad_fn->name) + "' (use detach() to make a leaf)");
  t.requires_grad = requires_grad;
  return *this;
}

bool Tensor::requires_grad() const {
  return checked().requires_grad || checked().grad_fn;
}
bool Tensor::is_leaf() const {
  return !checked().grad_fn;
}
Tensor Tensor::grad() const {
  checked();
  TensorImpl& t = *impl_;
  if (t.grad_pending_zero) {
    t.grad.fill_(0.0);
    t.grad_pending_zero = false;
  }
  return t.grad;
}
const std::shared_ptr<Node>& Tensor::grad_fn() const {
  return checked().grad_fn;
}

void Tensor::zero_grad() {
  TensorImpl& t = checked();
  if (!t.grad.defined()) return;
  // Only this tensor holds its gradient: nobody can see the zeros before grad() or backward().
  if (t.grad.impl().use_count() == 1 && t.grad.impl()->storage.use_count() == 1)
    t.grad_pending_zero = true;
  else
    t.grad.fill_(0.0);
}

void Tensor::backward(BackwardOptions options) const {
  detail::run_backward(*this, options);
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked();
  auto impl = new_impl();
  impl->storage = t.storage;
  impl->shape = t.shape;
  impl->numel = t.numel;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype());
  detail::copy_values(out, *this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  return cast(*this, dtype);
}

namespace detail {

void fill_values(Tensor& t, double value) {
  dispatch(t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    parallel_for(t.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      std::fill(p + begin, p + end, static_cast<T>(value));
    });
  });
}

void copy_values(Tensor& destination, const Tensor& source) {
  if (source.shape() != destination.shape())
    fail("copy_: shapes {} and {} do not match", shape_str(destination.shape()),
         shape_str(source.shape()));
  dispatch(destination.dtype(), [&]<class T>() {
    T* dst = destination.data<T>();
    dispatch(source.dtype(), [&]<class S>() {
      const S* src = source.data<S>();
      const int64_t n = source.numel();
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
    });
  });
}

}  // namespace detail

Tensor& Tensor::fill_(double value) {
  detail::fill_values(*this, value);
  bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& source) {
  detail::copy_values(*this, source);
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  if (other.shape() != shape())
    detail::fail("add_: shapes {} and {} do not match", shape_str(shape()),
                 shape_str(other.shape()));
  detail::check_same_dtype("add_", *this, other);
  detail::dispatch(dtype(), [&]<class T>() {
    T* dst = data<T>();
    const T* src = other.data<T>();
    const T a = static_cast<T>(alpha);
    detail::parallel_for(numel(), detail::kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) dst[i] += a * src[i];
    });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  detail::dispatch(dtype(), [&]<class T>() {
    T* p = data<T>();
    const T f = static_cast<T>(factor);
    const int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) p[i] *= f;
  });
  bump_version();
  return *this;
}

// ---- factories ----

Tensor tensor(const std::vector<double>& values, Shape shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  if (static_cast<int64_t>(values.size()) != n)
    detail::fail("tensor: {} values given for shape {}, which holds {}", values.size(),
                 shape_str(shape), n);
  Tensor out = Tensor::empty(std::move(shape), dtype);
  detail::dispatch(dtype,
                   [&]<class T>() { std::copy(values.begin(), values.end(), out.data<T>()); });
  return out;
}

Tensor scalar(double value, DType dtype) {
  return full({}, value, dtype);
}
Tensor zeros(Shape shape, DType dtype) {
  return full(std::move(shape), 0.0, dtype);
}
Tensor ones(Shape shape, DType dtype) {
  return full(std::move(shape), 1.0, dtype);
}

Tensor full(Shape shape, double value, DType dtype) {
  Tensor out = Tensor::empty(std::move(shape), dtype);
  detail::fill_values(out, value);
  return out;
}

Tensor randn(Shape shape, Generator& gen, double stddev, DType dtype) {
  Tensor out = Tensor::empty(std::move(shape), dtype);
  detail::dispatch(dtype, [&]<class T>() {
    T* p = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<T>(stddev * gen.normal());
  });
  return out;
}

Tensor rand(Shape shape, Generator& gen, double low, double high, DType dtype) {
  Tensor out = Tensor::empty(std::move(shape), dtype);
  detail::dispatch(dtype, [&]<class T>() {
    T* p = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i)
      p[i] = static_cast<T>(low + (high - low) * gen.uniform());
  });
  return out;
}

}  // namespace ag
