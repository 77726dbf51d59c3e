// Thread control. Matrix products and the large element-wise loops split their work over a small
// pool of our own workers (detail::parallel_for), each part a single-threaded BLAS call or loop:
// on this library's shapes (a batch of a few hundred rows) that beats handing OpenBLAS the whole
// product with its own threads, and it lets the element-wise passes use every core too.
//
// OpenBLAS exports openblas_set_num_threads; other BLAS libraries do not, so it is declared weak
// and used only when present (to keep OpenBLAS itself single-threaded under our workers).
#include "autograd/threads.h"

#ifdef __linux__
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "autograd/detail/cgroup.h"
#include "autograd/detail/parallel.h"

extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
}

namespace ag {
namespace {

// True on the pool's workers, and on a caller while it runs its own chunk: a parallel_for
// started there runs serially instead of waiting for workers that are busy with its parent.
thread_local bool inside_parallel = false;

// The cores this process may run on: its CPU affinity mask (taskset, a container's cpuset), else
// std::thread::hardware_concurrency(); fewer when a cgroup's CPU quota allows less time than that
// (docker run --cpus=N), rounded up; at least 1.
int usable_cores() {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = std::max(1, CPU_COUNT(&set));
  if (const int quota = detail::cgroup_cpu_limit(); quota > 0) cores = std::min(cores, quota);
#endif
  return cores;
}

// Spins while busy() holds, for at most `limit`, before its caller goes to sleep (on a futex, with
// std::atomic::wait). A training step issues its parallel parts microseconds apart, and a sleeping
// thread wakes 5-15 µs after it is notified on our 2-core VM (median 9 µs), as long as a small
// product takes.
template <class Busy>
void spin_while(std::chrono::microseconds limit, Busy busy) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (busy() && std::chrono::steady_clock::now() < until) {
  }
}

class ThreadPool {
 public:
  // `cores`: usable_cores(), read once by the caller.
  ThreadPool(int threads, int cores) : spin_(spin_limit(threads, cores)) {
    if (openblas_set_num_threads) openblas_set_num_threads(1);  // we split; each part is serial
    for (int k = 1; k < threads; ++k) workers_.emplace_back([this, k] { work(k); });
  }
  ~ThreadPool() {
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void run(int64_t n, int64_t grain, void (*chunk)(void*, int64_t, int64_t), void* ctx) {
    const int64_t parts = std::min<int64_t>(threads(), grain > 0 ? n / grain : n);
    std::unique_lock lock(busy_, std::try_to_lock);
    if (parts < 2 || inside_parallel || !lock.owns_lock()) return chunk(ctx, 0, n);
    job_ = {chunk, ctx, n, parts};
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    inside_parallel = true;
    run_part(0);
    inside_parallel = false;
    // The caller waits for the workers the same way: a worker starts its part a little after the
    // caller and often ends after it, and the caller asleep by then would add a wake-up to every
    // product (training steps were 3-11% slower).
    spin_while(spin_, [this] { return pending_.load(std::memory_order_acquire) != 0; });
    for (int left; (left = pending_.load(std::memory_order_acquire)) != 0;)
      pending_.wait(left, std::memory_order_acquire);
  }

 private:
  struct Job {
    void (*chunk)(void*, int64_t, int64_t) = nullptr;
    void* ctx = nullptr;
    int64_t n = 0, parts = 0;
  };

  void run_part(int64_t k) const {
    if (k < job_.parts)
      job_.chunk(job_.ctx, job_.n * k / job_.parts, job_.n * (k + 1) / job_.parts);
  }

  void work(int k) {
    inside_parallel = true;
    uint32_t seen = 0;
    while (true) {
      spin_while(spin_, [&] { return generation_.load(std::memory_order_acquire) == seen; });
      generation_.wait(seen, std::memory_order_acquire);
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
      run_part(k);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
  }

  // With more threads than cores a spinning thread holds a core that another one needs for its
  // part, so then nobody spins (OpenMP runtimes throttle their spinning in that case too).
  static std::chrono::microseconds spin_limit(int threads, int cores) {
    return std::chrono::microseconds(threads > cores ? 0 : 200);
  }

  const std::chrono::microseconds spin_;  // how long a thread spins before it sleeps
  std::vector<std::thread> workers_;
  std::mutex busy_;  // one parallel_for at a time
  Job job_;
  std::atomic<uint32_t> generation_{0};  // bumped once per job (and to stop)
  std::atomic<int> pending_{0};          // workers that have not finished the current job
  std::atomic<bool> stop_{false};
};

std::mutex pool_mutex;
int requested_threads = 0;  // 0: one per usable core
// Never destroyed at exit (its sleeping workers end with the process): an op run by another
// static object's destructor must not find the pool gone, or start a new one nobody joins.
ThreadPool* pool = nullptr;

ThreadPool& the_pool() {
  const std::lock_guard lock(pool_mutex);
  if (!pool) {
    const int cores = usable_cores();  // reads the affinity mask and the cgroup files
    pool = new ThreadPool(requested_threads > 0 ? requested_threads : cores, cores);
  }
  return *pool;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("set_num_threads: need at least 1 thread, got " +
                                std::to_string(n));
  const std::lock_guard lock(pool_mutex);
  requested_threads = n;
  if (pool && pool->threads() != n) delete std::exchange(pool, nullptr);  // restarts on next use
}

int get_num_threads() {
  return the_pool().threads();
}

namespace detail {

void run_parallel(int64_t n, int64_t grain, void (*chunk)(void*, int64_t, int64_t), void* ctx) {
  if (n < 2 * grain || inside_parallel) return chunk(ctx, 0, n);
  the_pool().run(n, grain, chunk, ctx);
}

}  // namespace detail
}  // namespace ag
