// A helper of tests/test_faults.cpp, which kills it with SIGKILL at random points:
//
//   checkpoint_writer PATH N
//
// saves checkpoints to PATH in a loop, for ever. Checkpoint k holds one float32 tensor "w" of N
// values all equal to k and the metadata {"version": "k"}; k continues from the version already
// in PATH. Prints "ready" once it has read PATH, so the test knows when to start its clock, and
// "saving k" / "saved k" around each save, so that it can tell where a kill landed.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: checkpoint_writer PATH N\n");
    return 2;
  }
  try {
    const std::string path = argv[1];
    const int64_t n = std::atoll(argv[2]);
    uint64_t version = std::stoull(nn::load_safetensors(path).metadata.at("version"));
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) {
      ++version;
      const ag::Tensor w = ag::full({n}, static_cast<double>(version));
      std::printf("saving %llu\n", static_cast<unsigned long long>(version));
      std::fflush(stdout);
      nn::save_safetensors(path, {{"w", w}}, {{"version", std::to_string(version)}});
      std::printf("saved %llu\n", static_cast<unsigned long long>(version));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_writer: %s\n", e.what());
    return 1;
  }
}
