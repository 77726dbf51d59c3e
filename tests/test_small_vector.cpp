// SmallVector: inline up to N elements, on the heap beyond, every element constructed and
// destroyed exactly once whichever way it moves.
#include "autograd/small_vector.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using ag::SmallVector;

// Counts the live objects, so that a leaked or doubly destroyed element shows.
struct Counted {
  static inline int live = 0;
  explicit Counted(int v) : value(std::make_unique<int>(v)) { ++live; }
  Counted(const Counted& o) : value(std::make_unique<int>(*o.value)) { ++live; }
  Counted(Counted&& o) noexcept : value(std::move(o.value)) { ++live; }
  Counted& operator=(const Counted& o) {
    value = std::make_unique<int>(*o.value);
    return *this;
  }
  ~Counted() { --live; }
  std::unique_ptr<int> value;
};

std::vector<int> values(const SmallVector<Counted, 2>& v) {
  std::vector<int> out;
  for (const Counted& c : v) out.push_back(*c.value);
  return out;
}

TEST(SmallVector, KeepsUpToNElementsInline) {
  SmallVector<int64_t, 4> v{1, 2, 3, 4};
  EXPECT_TRUE(v.is_inline());
  EXPECT_EQ(v.size(), 4u);
  v.push_back(5);
  EXPECT_FALSE(v.is_inline());
  EXPECT_EQ(v.vec(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(v.front(), 1);
  EXPECT_EQ(v.back(), 5);
}

TEST(SmallVector, GrowingPastTheInlineBufferKeepsEveryElementOnce) {
  {
    SmallVector<Counted, 2> v;
    for (int i = 0; i < 9; ++i) v.emplace_back(i);
    EXPECT_EQ(values(v), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(Counted::live, 9);
    v.pop_back();
    EXPECT_EQ(Counted::live, 8);
    v.clear();
    EXPECT_EQ(Counted::live, 0);
    EXPECT_TRUE(v.empty());
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST(SmallVector, PushingAnElementOfItselfWhileGrowingCopiesItFirst) {
  SmallVector<std::string, 2> v{"a", "b"};
  v.push_back(v[0]);  // the buffer moves: the argument must be read before it does
  v.push_back(v[2]);
  EXPECT_EQ(v.vec(), (std::vector<std::string>{"a", "b", "a", "a"}));
}

TEST(SmallVector, CopyAndMoveWorkInlineAndOnTheHeap) {
  for (int n : {1, 2, 5}) {
    SCOPED_TRACE(n);
    {
      SmallVector<Counted, 2> a;
      for (int i = 0; i < n; ++i) a.emplace_back(i);
      SmallVector<Counted, 2> copy = a;
      EXPECT_EQ(values(copy), values(a));
      SmallVector<Counted, 2> moved = std::move(a);
      EXPECT_EQ(values(moved), values(copy));
      EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
      EXPECT_TRUE(a.is_inline());
      SmallVector<Counted, 2> assigned{Counted(42)};
      assigned = copy;
      EXPECT_EQ(values(assigned), values(copy));
      assigned = std::move(moved);
      EXPECT_EQ(values(assigned), values(copy));
      EXPECT_EQ(Counted::live, 2 * n);
    }
    EXPECT_EQ(Counted::live, 0);
  }
}

TEST(SmallVector, ComparesWithItselfAndWithStdVector) {
  const SmallVector<int64_t, 4> a{2, 3};
  EXPECT_EQ(a, (SmallVector<int64_t, 4>{2, 3}));
  EXPECT_NE(a, (SmallVector<int64_t, 4>{2, 3, 1}));
  EXPECT_EQ(a, (std::vector<int64_t>{2, 3}));
  EXPECT_NE((std::vector<int64_t>{3, 2}), a);
}

// Throws from its copy constructor once `fuse` copies have been made.
struct Fragile {
  static inline int live = 0;
  static inline int fuse = 0;
  Fragile() { ++live; }
  Fragile(const Fragile&) {
    if (--fuse == 0) throw std::runtime_error("copy failed");
    ++live;
  }
  Fragile(Fragile&&) noexcept { ++live; }
  ~Fragile() { --live; }
};

TEST(SmallVector, AConstructorThatThrowsHalfwayFreesWhatItMade) {
  const std::vector<Fragile> source(5);
  for (int fuse : {2, 4}) {  // fails inline, and after moving to the heap
    SCOPED_TRACE(fuse);
    Fragile::fuse = fuse;
    EXPECT_THROW((SmallVector<Fragile, 2>(source.begin(), source.end())), std::runtime_error);
    EXPECT_EQ(Fragile::live, 5);  // only the source's
  }
}

TEST(SmallVector, ReserveMovesToTheHeapOnlyWhenNeeded) {
  SmallVector<int, 4> v{1, 2};
  v.reserve(4);
  EXPECT_TRUE(v.is_inline());
  v.reserve(10);
  EXPECT_FALSE(v.is_inline());
  EXPECT_GE(v.capacity(), 10u);
  EXPECT_EQ(v.vec(), (std::vector<int>{1, 2}));
}

}  // namespace
