// The fuzz targets: each takes arbitrary bytes, feeds them to one reader of untrusted input, and
// checks what came back. A reader may refuse the bytes only with its documented error type
// (nn::DataError, nn::CheckpointError, exit code 2 with one line); anything else escapes as an
// exception, and a result that breaks a promise of the API aborts, so that libFuzzer
// (fuzz/entry.cpp) and the corpus replay test (tests/test_fuzz_corpus.cpp) both see it as a crash.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace fuzz {

/// nn::read_idx. Byte 0: num_classes - 1. Byte 1: bit 0 (bit 1) stores the images (labels) file
/// as "<name>.gz" while read_idx is asked for "<name>". Bytes 2-5: L, the labels file's length
/// (little-endian, clipped to what is there). Then L bytes of labels file, the rest is the images
/// file.
int idx(std::span<const uint8_t> data);

/// nn::load_cifar10(dir, "test") with the bytes as dir/test_batch.bin.
int cifar10(std::span<const uint8_t> data);

/// nn::load_safetensors on the bytes; a file it accepts must save and load back identical, and
/// nn::load into a small TwoLayerNet and two_layer_net::load_saved_model (the example's --load)
/// must either succeed or throw nn::CheckpointError.
int safetensors(std::span<const uint8_t> data);

/// two_layer_net::parse_args (examples/cli.h) on the bytes split at '\0' into arguments (at most
/// 64); the Config it returns must hold values within the options' ranges.
int cli(std::span<const uint8_t> data);

/// The target called `name` ("idx", "cifar10", "safetensors", "cli"), or nullptr.
using Target = int (*)(std::span<const uint8_t>);
Target find(std::string_view name);

}  // namespace fuzz
