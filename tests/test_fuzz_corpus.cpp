// Every file of fuzz/corpus/<target>/ (the seeds, and each input a fuzzer once crashed on, named
// crash_*) run through its fuzz target with whatever compiler and sanitizers this build uses. The
// targets abort on a broken promise and let unexpected exceptions escape, so a regression fails
// here in every CI build, without clang or libFuzzer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/targets.h"

namespace {

namespace fs = std::filesystem;

void replay(const std::string& target) {
  const fuzz::Target run = fuzz::find(target);
  if (!run) GTEST_SKIP() << "fuzz target '" << target << "' is not built (no examples)";
  const fs::path dir = fs::path(AUTOGRAD_FUZZ_CORPUS_DIR) / target;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 5u) << "the seed corpus in " << dir << " is missing";
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in),
                                     std::istreambuf_iterator<char>()};
    EXPECT_EQ(run(bytes), 0);
  }
}

TEST(FuzzCorpus, IdxSeedsAndCrashesPass) {
  replay("idx");
}
TEST(FuzzCorpus, Cifar10SeedsAndCrashesPass) {
  replay("cifar10");
}
TEST(FuzzCorpus, SafetensorsSeedsAndCrashesPass) {
  replay("safetensors");
}
TEST(FuzzCorpus, CliSeedsAndCrashesPass) {
  replay("cli");
}

}  // namespace
