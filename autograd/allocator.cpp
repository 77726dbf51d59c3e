// The caching allocator behind tensor storage. Freed blocks wait in a per-thread list keyed by
// their (64-byte rounded) size, up to a cap; the next request of that size takes one back.
// Small objects (allocate_small) wait in per-thread intrusive free lists, one per 16-byte class.
#include "autograd/allocator.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <new>
#include <unordered_map>
#include <utility>
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

struct FreeBlock {
  FreeBlock* next;
};

// Blocks up to 64 KiB wait in intrusive lists (each free block holds the next one's address) in
// plain, constinit thread-local data: taking one back is two loads and a store, with no
// thread-local initialisation check. SmallBlocksOwner frees them when the thread exits.
struct SmallBlocks {
  std::array<FreeBlock*, kDirectClasses> head;  // [size / 64 - 1]
  AllocatorStats stats;                         // of the whole cache, large blocks too
  bool alive;                                   // false once the owner has freed the lists
  bool owned;                                   // the owner is registered to free them
};
constinit thread_local SmallBlocks small_blocks{{}, {}, true, false};

void release_small_blocks() {
  for (std::size_t i = 0; i < kDirectClasses; ++i)
    for (FreeBlock* b = std::exchange(small_blocks.head[i], nullptr); b;) {
      small_blocks.stats.cached_bytes -= (i + 1) * kAlignment;
      std::free(std::exchange(b, b->next));
    }
}

struct SmallBlocksOwner {
  bool registered = false;  // written on first use, which registers the destructor
  ~SmallBlocksOwner() {
    release_small_blocks();
    small_blocks.alive = false;
  }
};
thread_local SmallBlocksOwner small_blocks_owner;

// Larger blocks, by rounded size. Storage may outlive its thread's cache (a tensor freed during
// thread exit): then blocks go straight back to the system. The flag is trivially destructible,
// so it is safe to read then.
thread_local bool large_blocks_alive = true;
struct LargeBlocks {
  std::unordered_map<std::size_t, std::vector<void*>> by_size;
  void release_all() {
    for (auto& [size, blocks] : by_size)
      for (void* block : blocks) {
        small_blocks.stats.cached_bytes -= size;
        std::free(block);
      }
    by_size.clear();
  }
  ~LargeBlocks() {
    release_all();
    large_blocks_alive = false;
  }
};
thread_local LargeBlocks large_blocks;

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
  return small_blocks.stats;
}

void empty_cache() {
  if (small_blocks.alive) release_small_blocks();
  if (large_blocks_alive) large_blocks.release_all();
}

namespace detail {

void* allocate(std::size_t bytes) {
  const std::size_t size = rounded(bytes);
  const std::size_t index = size / kAlignment - 1;
  AllocatorStats& stats = small_blocks.stats;
  if (index < kDirectClasses) {
    if (FreeBlock* block = small_blocks.head[index]) {  // (empty once the thread's cache is gone)
      small_blocks.head[index] = block->next;
      stats.cached_bytes -= size;
      ++stats.cache_hits;
      return block;
    }
  } else if (large_blocks_alive) {
    if (auto it = large_blocks.by_size.find(size);
        it != large_blocks.by_size.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      stats.cached_bytes -= size;
      ++stats.cache_hits;
      return block;
    }
  }
  ++stats.system_allocations;
  void* block = std::aligned_alloc(kAlignment, size);
  if (!block) throw std::bad_alloc();
  return block;
}

Scratch try_allocate(std::size_t bytes) {
  try {
    return Scratch(allocate(bytes), Deallocate{bytes});
  } catch (const std::bad_alloc&) {
    return Scratch(nullptr, Deallocate{bytes});
  }
}

void deallocate(void* block, std::size_t bytes) noexcept {
  if (!block) return;
  const std::size_t size = rounded(bytes);
  const std::size_t index = size / kAlignment - 1;
  AllocatorStats& stats = small_blocks.stats;
  if (size <= kMaxCachedBlock && stats.cached_bytes + size <= kMaxCachedBytes) {
    if (index < kDirectClasses) {
      if (small_blocks.alive) {
        if (!small_blocks.owned) small_blocks.owned = small_blocks_owner.registered = true;
        small_blocks.head[index] = new (block) FreeBlock{small_blocks.head[index]};
        stats.cached_bytes += size;
        return;
      }
    } else if (large_blocks_alive) {
      try {
        large_blocks.by_size[size].push_back(block);
        stats.cached_bytes += size;
        return;
      } catch (...) {  // no memory for the bookkeeping: just free it
      }
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
