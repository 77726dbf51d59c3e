// The caching allocator behind tensor storage. Freed blocks wait in a per-thread list keyed by
// their (64-byte rounded) size, up to a cap; the next request of that size takes one back.
// Small objects (allocate_small) wait in per-thread intrusive free lists, one per 16-byte class.
#include "autograd/allocator.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <new>
#include <unordered_map>
#include <vector>

namespace ag {
namespace {

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kMaxCachedBytes = std::size_t{512} << 20;  // per thread
// Larger blocks (a whole dataset, say) go straight back to the system: a training step does not
// allocate them again, and keeping one would hold its memory for the rest of the run.
constexpr std::size_t kMaxCachedBlock = std::size_t{64} << 20;
// Blocks up to this size are found by indexing an array with their size; larger ones by hashing.
constexpr std::size_t kDirectClasses = 1024;  // 64 KiB in 64-byte steps

constexpr std::size_t kSmallGranule = 16;
constexpr std::size_t kSmallClasses = 32;                    // objects up to 512 bytes
constexpr std::size_t kMaxSmallFree = std::size_t{1} << 16;  // per class and thread

std::size_t rounded(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
}

struct FreeObject {
  FreeObject* next;
};

struct BlockCache {
  std::array<std::vector<void*>, kDirectClasses> small_blocks;       // [size / 64 - 1]
  std::unordered_map<std::size_t, std::vector<void*>> large_blocks;  // by rounded size
  AllocatorStats stats;

  std::vector<void*>& blocks_of(std::size_t size) {
    const std::size_t index = size / kAlignment - 1;
    return index < kDirectClasses ? small_blocks[index] : large_blocks[size];
  }
  void release_all() {
    for (auto& blocks : small_blocks) {
      for (void* block : blocks) std::free(block);
      blocks.clear();
    }
    for (auto& [size, blocks] : large_blocks)
      for (void* block : blocks) std::free(block);
    large_blocks.clear();
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

// The small objects' free lists are plain data (constinit, trivially destructible), so the hot
// path reads them with no thread-local initialisation check. FreeListsOwner empties them when
// the thread exits; it is touched (and so registered for that) by the first object freed.
struct FreeLists {
  std::array<FreeObject*, kSmallClasses> head;  // [(bytes - 1) / 16]
  std::array<std::size_t, kSmallClasses> count;
  bool alive;  // false once the owner has emptied the lists at thread exit
  bool owned;  // the owner has been touched, and so will empty the lists at thread exit
};
constinit thread_local FreeLists free_lists{{}, {}, true, false};

struct FreeListsOwner {
  bool registered = false;  // written on first use, which registers the destructor
  ~FreeListsOwner() {
    for (FreeObject*& head : free_lists.head)
      while (head) ::operator delete(std::exchange(head, head->next));
    free_lists.alive = false;
  }
};
thread_local FreeListsOwner free_lists_owner;

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
    const std::size_t index = size / kAlignment - 1;
    std::vector<void*>* blocks = nullptr;
    if (index < kDirectClasses) {
      blocks = &cache.small_blocks[index];
    } else if (auto it = cache.large_blocks.find(size); it != cache.large_blocks.end()) {
      blocks = &it->second;
    }
    if (blocks && !blocks->empty()) {
      void* block = blocks->back();
      blocks->pop_back();
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
  if (cache_alive && size <= kMaxCachedBlock &&
      cache.stats.cached_bytes + size <= kMaxCachedBytes) {
    try {
      cache.blocks_of(size).push_back(block);
      cache.stats.cached_bytes += size;
      return;
    } catch (...) {  // no memory for the bookkeeping: just free it
    }
  }
  std::free(block);
}

void* allocate_small(std::size_t bytes) {
  const std::size_t c = (std::max<std::size_t>(bytes, 1) - 1) / kSmallGranule;
  if (c >= kSmallClasses) return ::operator new(bytes);
  if (FreeObject* object = free_lists.head[c]) {
    free_lists.head[c] = object->next;
    --free_lists.count[c];
    return object;
  }
  return ::operator new((c + 1) * kSmallGranule);  // the class's full size: any later use fits
}

void deallocate_small(void* p, std::size_t bytes) noexcept {
  const std::size_t c = (std::max<std::size_t>(bytes, 1) - 1) / kSmallGranule;
  if (c < kSmallClasses && free_lists.alive && free_lists.count[c] < kMaxSmallFree) {
    if (!free_lists.owned) free_lists.owned = free_lists_owner.registered = true;  // see above
    free_lists.head[c] = new (p) FreeObject{free_lists.head[c]};
    ++free_lists.count[c];
    return;
  }
  ::operator delete(p);
}

}  // namespace detail
}  // namespace ag
