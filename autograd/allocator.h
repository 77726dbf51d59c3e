// Tensor storage comes from a per-thread cache of freed blocks: a training step allocates the
// same sizes as the step before, and gets them back without a system call (large blocks would
// otherwise be mmap'ed, page-faulted and unmapped every step).
//
// The small objects a step creates by the dozen (tensor handles' state, storage headers, graph
// nodes, with their reference counts) come from per-thread free lists the same way: the graph of
// one step is freed all at once and its objects are handed to the next step's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace ag {

/// Counters of the storage allocator, for this thread.
struct AllocatorStats {
  uint64_t system_allocations = 0;  // blocks obtained from the system
  uint64_t cache_hits = 0;          // blocks handed out again from the cache
  std::size_t cached_bytes = 0;     // bytes now held in the cache, free for reuse
};

/// This thread's counters.
AllocatorStats allocator_stats();
/// Returns every cached block of this thread to the system.
void empty_cache();

namespace detail {
/// 64-byte aligned block of at least `bytes` bytes.
void* allocate(std::size_t bytes);
/// Gives back a block from allocate(bytes).
void deallocate(void* block, std::size_t bytes) noexcept;
/// The deleter of a block from allocate(bytes), for std::unique_ptr and std::shared_ptr.
struct Deallocate {
  std::size_t bytes = 0;
  void operator()(void* block) const noexcept { deallocate(block, bytes); }
};
/// A block from allocate(bytes) that gives itself back, or none when there is no memory for it:
/// the caller then does without. (For the products' scratch space: a throw from a product in a
/// backward could leave a gradient half-written, see Node::backward.)
using Scratch = std::unique_ptr<void, Deallocate>;
Scratch try_allocate(std::size_t bytes);

/// A small object's memory (16-byte aligned), from this thread's free list for its size.
void* allocate_small(std::size_t bytes);
/// Gives back memory from allocate_small(bytes), on any thread.
void deallocate_small(void* p, std::size_t bytes) noexcept;

/// The allocator std::allocate_shared uses for the objects above.
template <class T>
struct SmallObjectAllocator {
  static_assert(alignof(T) <= 16, "the small-object pool gives 16-byte aligned memory");
  using value_type = T;
  SmallObjectAllocator() = default;
  template <class U>
  SmallObjectAllocator(const SmallObjectAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(allocate_small(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { deallocate_small(p, n * sizeof(T)); }
  friend bool operator==(SmallObjectAllocator, SmallObjectAllocator) { return true; }
};

/// std::make_shared, with the object and its reference counts in one block from the free lists.
template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(SmallObjectAllocator<T>{}, std::forward<Args>(args)...);
}
}  // namespace detail

}  // namespace ag
