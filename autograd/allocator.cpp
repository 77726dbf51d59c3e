// The caching allocator behind tensor storage. Freed blocks wait in a per-thread list keyed by
// their (64-byte rounded) size, up to a cap; the next request of that size takes one back.
#include "autograd/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <unordered_map>
#include <vector>

namespace ag {
namespace {

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kMaxCachedBytes = std::size_t{512} << 20;  // per thread

std::size_t rounded(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
}

struct BlockCache {
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // by rounded size
  AllocatorStats stats;

  void release_all() {
    for (auto& [size, blocks] : free_blocks)
      for (void* block : blocks) std::free(block);
    free_blocks.clear();
    stats.cached_bytes = 0;
  }
  ~BlockCache();
};

// Storage may outlive its thread's cache (a tensor freed during thread exit): then blocks go
// straight back to the system. The flag is trivially destructible, so it is safe to read then.
thread_local bool cache_alive = true;
thread_local BlockCache cache;

BlockCache::~BlockCache() {
  release_all();
  cache_alive = false;
}

}  // namespace

AllocatorStats allocator_stats() {
  return cache_alive ? cache.stats : AllocatorStats{};
}

void empty_cache() {
  if (cache_alive) cache.release_all();
}

namespace detail {

void* allocate(std::size_t bytes) {
  const std::size_t size = rounded(bytes);
  if (cache_alive) {
    auto it = cache.free_blocks.find(size);
    if (it != cache.free_blocks.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      cache.stats.cached_bytes -= size;
      ++cache.stats.cache_hits;
      return block;
    }
    ++cache.stats.system_allocations;
  }
  void* block = std::aligned_alloc(kAlignment, size);
  if (!block) throw std::bad_alloc();
  return block;
}

void deallocate(void* block, std::size_t bytes) noexcept {
  if (!block) return;
  const std::size_t size = rounded(bytes);
  if (cache_alive && cache.stats.cached_bytes + size <= kMaxCachedBytes) {
    try {
      cache.free_blocks[size].push_back(block);
      cache.stats.cached_bytes += size;
      return;
    } catch (...) {  // no memory for the bookkeeping: just free it
    }
  }
  std::free(block);
}

}  // namespace detail
}  // namespace ag
