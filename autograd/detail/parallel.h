// Helpers for splitting one op's work across the threads set with ag::set_num_threads (threads.cpp
// owns the workers; parallel_for itself is public, in threads.h). Not public API.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <type_traits>

#include "autograd/threads.h"

namespace ag::detail {

using ::ag::parallel_for;  // threads.h

/// Σ body(begin, end) over [0, n) cut into parts of about `grain` (at most 64), computed in
/// parallel and added in order: the result depends on n and grain only, not on the threads.
template <class F>
double parallel_sum(int64_t n, int64_t grain, F&& body) {
  constexpr int64_t kMaxParts = 64;
  const int64_t parts = std::clamp<int64_t>(n / std::max<int64_t>(grain, 1), 1, kMaxParts);
  if (parts == 1) return body(int64_t{0}, n);
  std::array<double, kMaxParts> partial{};
  parallel_for(parts, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) partial[k] = body(n * k / parts, n * (k + 1) / parts);
  });
  return std::accumulate(partial.begin(), partial.begin() + parts, 0.0);
}

/// Elements per chunk for element-wise loops: below twice this, waking a thread costs more than
/// it saves.
inline constexpr int64_t kElementwiseGrain = int64_t{1} << 16;

}  // namespace ag::detail
