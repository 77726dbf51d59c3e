// Thread control: how many threads matrix products and large element-wise loops may use, and
// parallel_for, which splits such a loop over them.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ag {

/// Sets the number of threads ops may use (n >= 1): matrix products and large element-wise loops
/// are split over a pool of n - 1 workers plus the calling thread, and the BLAS itself is kept
/// single-threaded under them. Call it before running ops, not while ops run on other threads.
/// Between parts the threads spin for up to 200 µs before they sleep, unless n is more than the
/// cores this process may run on (its CPU affinity and cgroup quota): then they sleep at once.
void set_num_threads(int n);
/// The number set with set_num_threads, or by default the number of cores this process may run on:
/// on Linux its CPU affinity mask, as `taskset` or a container's cpuset set it, and no more than
/// its cgroups' CPU quota allows, rounded up (`docker run --cpus=1.5` gives 2); elsewhere
/// std::thread::hardware_concurrency().
int get_num_threads();

namespace detail {
void run_parallel(int64_t n, int64_t grain, void (*chunk)(void* ctx, int64_t, int64_t), void* ctx);
}  // namespace detail

/// Calls body(begin, end) on disjoint ranges that cover [0, n), at most one per thread and each
/// at least `grain` long, the calling thread taking the first; returns when all are done. It is
/// one call body(0, n) on the calling thread when n < 2 * grain, with one thread, inside another
/// parallel_for, or while another thread's parallel_for has the workers. `body` must not throw.
/// For element-wise loops over large tensors (the ops, the optimisers).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& body) {
  using Body = std::remove_reference_t<F>;
  if (n < 2 * grain) return body(int64_t{0}, n);  // small: no call into the pool at all
  detail::run_parallel(
      n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<Body*>(ctx))(b, e); },
      const_cast<std::remove_const_t<Body>*>(&body));
}

}  // namespace ag
