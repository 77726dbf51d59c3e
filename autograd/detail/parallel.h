// Splitting one op's work across the threads set with ag::set_num_threads (threads.cpp owns the
// workers). Not public API.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ag::detail {

/// Runs chunk(ctx, begin, end) on disjoint ranges that cover [0, n), at most one per thread, each
/// at least `grain` long, and returns when all are done; the calling thread runs the first.
void run_parallel(int64_t n, int64_t grain, void (*chunk)(void* ctx, int64_t, int64_t), void* ctx);

/// body(begin, end) over [0, n), split as run_parallel does. It runs as one call on the calling
/// thread when n < 2 * grain, with one thread, inside another parallel_for, or while another
/// thread's parallel_for has the workers. `body` must not throw.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& body) {
  using Body = std::remove_reference_t<F>;
  run_parallel(
      n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<Body*>(ctx))(b, e); },
      const_cast<std::remove_const_t<Body>*>(&body));
}

/// Elements per chunk for element-wise loops: below twice this, waking a thread costs more than
/// it saves.
inline constexpr int64_t kElementwiseGrain = int64_t{1} << 16;

}  // namespace ag::detail
