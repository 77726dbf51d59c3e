// Thread control: how many threads the BLAS behind matmul may use.
#pragma once

namespace ag {

/// Sets the number of threads matrix products may use (OpenBLAS's pool; other BLAS builds
/// ignore it). n >= 1.
void set_num_threads(int n);
/// The number set with set_num_threads, or the BLAS default.
int get_num_threads();

}  // namespace ag
