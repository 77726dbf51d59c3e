// SmallVector: a vector that keeps its first N elements inside the object itself, and moves to
// the heap only beyond that (as LLVM's and c10's SmallVector do). The graph records a handful of
// short lists per op (its inputs, their edges, the gradients its backward returns), nearly always
// of one or two elements; keeping them inline takes the allocator out of every op.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace ag {

template <class T, std::size_t N>
class SmallVector {
  static_assert(N > 0, "SmallVector needs room for at least one element inline");
  static_assert(std::is_nothrow_move_constructible_v<T>, "elements are moved when it grows");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = T&;
  using const_reference = const T&;
  using pointer = T*;
  using const_pointer = const T*;
  using iterator = T*;
  using const_iterator = const T*;

  SmallVector() noexcept = default;
  // (Each delegates to the default constructor first, so that if an element's constructor throws,
  // the destructor frees the ones already made.)
  SmallVector(std::initializer_list<T> values) : SmallVector() {
    append(values.begin(), values.end());
  }
  template <std::input_iterator It>
  SmallVector(It first, It last) : SmallVector() {
    append(first, last);
  }
  SmallVector(const SmallVector& other) : SmallVector() { append(other.begin(), other.end()); }
  SmallVector(SmallVector&& other) noexcept { take(other); }
  SmallVector& operator=(const SmallVector& other) {
    if (this != &other) {
      clear();
      append(other.begin(), other.end());
    }
    return *this;
  }
  SmallVector& operator=(SmallVector&& other) noexcept {
    if (this != &other) {
      clear();
      free_heap();
      take(other);
    }
    return *this;
  }
  ~SmallVector() {
    clear();
    free_heap();
  }

  size_type size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  size_type capacity() const noexcept { return capacity_; }
  /// True while the elements live inside the object (no heap memory held).
  bool is_inline() const noexcept { return data_ == inline_data(); }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  iterator begin() noexcept { return data_; }
  iterator end() noexcept { return data_ + size_; }
  const_iterator begin() const noexcept { return data_; }
  const_iterator end() const noexcept { return data_ + size_; }
  T& operator[](size_type i) noexcept { return data_[i]; }
  const T& operator[](size_type i) const noexcept { return data_[i]; }
  T& front() noexcept { return data_[0]; }
  const T& front() const noexcept { return data_[0]; }
  T& back() noexcept { return data_[size_ - 1]; }
  const T& back() const noexcept { return data_[size_ - 1]; }

  void reserve(size_type n) {
    if (n > capacity_) reallocate(n);
  }
  template <class... Args>
  T& emplace_back(Args&&... args) {
    if (size_ == capacity_) {
      // Build the new element before moving the old ones: args may refer to one of them.
      const size_type grown = std::max<size_type>(2 * capacity_, size_ + 1);
      T* fresh = std::allocator<T>().allocate(grown);
      try {
        std::construct_at(fresh + size_, std::forward<Args>(args)...);
      } catch (...) {
        std::allocator<T>().deallocate(fresh, grown);
        throw;
      }
      std::uninitialized_move(data_, data_ + size_, fresh);
      std::destroy_n(data_, size_);
      free_heap();
      data_ = fresh;
      capacity_ = grown;
    } else {
      std::construct_at(data_ + size_, std::forward<Args>(args)...);
    }
    return data_[size_++];
  }
  void push_back(const T& value) { emplace_back(value); }
  void push_back(T&& value) { emplace_back(std::move(value)); }
  void pop_back() noexcept { std::destroy_at(data_ + --size_); }
  /// Destroys the elements and keeps the capacity.
  void clear() noexcept {
    std::destroy_n(data_, size_);
    size_ = 0;
  }

  /// The elements as a std::vector.
  std::vector<T> vec() const { return std::vector<T>(begin(), end()); }

  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator==(const SmallVector& a, const std::vector<T>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  // The inline buffer's address (it may hold no element yet, so no std::launder here).
  T* inline_data() noexcept { return reinterpret_cast<T*>(inline_); }
  const T* inline_data() const noexcept { return reinterpret_cast<const T*>(inline_); }

  template <class It>
  void append(It first, It last) {
    if constexpr (std::forward_iterator<It>)
      reserve(size_ + static_cast<size_type>(std::distance(first, last)));
    for (; first != last; ++first) emplace_back(*first);
  }

  void reallocate(size_type n) {
    T* fresh = std::allocator<T>().allocate(n);
    std::uninitialized_move(data_, data_ + size_, fresh);
    std::destroy_n(data_, size_);
    free_heap();
    data_ = fresh;
    capacity_ = n;
  }

  // Takes other's elements, leaving it empty and inline. *this must be empty and inline.
  void take(SmallVector& other) noexcept {
    if (other.is_inline()) {
      std::uninitialized_move(other.data_, other.data_ + other.size_, data_);
      size_ = other.size_;
      other.clear();
    } else {  // steal the heap block
      data_ = std::exchange(other.data_, other.inline_data());
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, N);
    }
  }

  void free_heap() noexcept {
    if (!is_inline()) {
      std::allocator<T>().deallocate(data_, capacity_);
      data_ = inline_data();
      capacity_ = N;
    }
  }

  T* data_ = inline_data();
  size_type size_ = 0;
  size_type capacity_ = N;
  alignas(T) std::byte inline_[N * sizeof(T)];
};

}  // namespace ag
