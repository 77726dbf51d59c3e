// Thread control: how many threads matrix products and large element-wise loops may use.
#pragma once

namespace ag {

/// Sets the number of threads ops may use (n >= 1): matrix products and large element-wise loops
/// are split over a pool of n - 1 workers plus the calling thread, and the BLAS itself is kept
/// single-threaded under them. Call it before running ops, not while ops run on other threads.
void set_num_threads(int n);
/// The number set with set_num_threads, or the number of cores by default.
int get_num_threads();

}  // namespace ag
