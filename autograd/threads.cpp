// Thread control. OpenBLAS exports openblas_set_num_threads; other BLAS libraries do not, so it
// is declared weak and used only when present.
#include "autograd/threads.h"

#include <stdexcept>
#include <string>
#include <thread>

extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
int openblas_get_num_threads() __attribute__((weak));
}

namespace ag {

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("set_num_threads: need at least 1 thread, got " +
                                std::to_string(n));
  if (openblas_set_num_threads) openblas_set_num_threads(n);
}

int get_num_threads() {
  if (openblas_get_num_threads) return openblas_get_num_threads();
  return 1;
}

}  // namespace ag
