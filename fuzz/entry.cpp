// The libFuzzer entry point of fuzz_<target>: AUTOGRAD_FUZZ_TARGET names a target of targets.h.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  return fuzz::AUTOGRAD_FUZZ_TARGET({data, size});
}
