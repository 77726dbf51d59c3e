// Tensor storage comes from a per-thread cache of freed blocks: a training step allocates the
// same sizes as the step before, and gets them back without a system call (large blocks would
// otherwise be mmap'ed, page-faulted and unmapped every step).
#pragma once

#include <cstddef>
#include <cstdint>

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
}  // namespace detail

}  // namespace ag
