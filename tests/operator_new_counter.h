// Replaces every form of the global operator new and delete with malloc/free and counts the news,
// for checks that a warm training step allocates nothing (tests/test_allocations.cpp,
// bench/bench_step.cpp). Include it in one source file of a binary only: it defines the
// replacement functions themselves. All forms are replaced, so that no memory from a sanitizer's
// or the library's own operator new reaches the free() below (or the other way round).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace ag::test {
/// Calls of any operator new so far, on every thread.
inline std::atomic<uint64_t> operator_new_calls{0};

inline void* counted_allocation(std::size_t bytes, std::size_t alignment) noexcept {
  operator_new_calls.fetch_add(1, std::memory_order_relaxed);
  if (bytes == 0) bytes = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(bytes);
  return std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
}
inline void* counted_allocation_or_throw(std::size_t bytes, std::size_t alignment) {
  if (void* p = counted_allocation(bytes, alignment)) return p;
  throw std::bad_alloc();
}
}  // namespace ag::test

// clang-format off
void* operator new(std::size_t n) { return ag::test::counted_allocation_or_throw(n, 0); }
void* operator new[](std::size_t n) { return ag::test::counted_allocation_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return ag::test::counted_allocation(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return ag::test::counted_allocation(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return ag::test::counted_allocation_or_throw(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return ag::test::counted_allocation_or_throw(n, std::size_t(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return ag::test::counted_allocation(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return ag::test::counted_allocation(n, std::size_t(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
// clang-format on
