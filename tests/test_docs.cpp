// The code in docs/ is real code: every ```cpp block placed right after a marker
//   <!-- snippet: examples/tutorial.cpp -->
// must appear, line for line (indentation and blank lines aside), in that file, which is built
// and run as an example or a test. Change the code, and this test says which page to update.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path kRoot = fs::path(AUTOGRAD_TEST_DATA_DIR) / ".." / "..";

std::string trim(const std::string& s) {
  const std::size_t begin = s.find_first_not_of(" \t");
  const std::size_t end = s.find_last_not_of(" \t\r");
  return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
}

std::vector<std::string> lines_of(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The non-blank lines, trimmed.
std::vector<std::string> code_lines(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const std::string& line : lines)
    if (!trim(line).empty()) out.push_back(trim(line));
  return out;
}

// Whether `part` occurs in `whole` as a contiguous run.
bool contains_run(const std::vector<std::string>& whole, const std::vector<std::string>& part) {
  if (part.empty()) return true;
  for (std::size_t i = 0; i + part.size() <= whole.size(); ++i) {
    std::size_t k = 0;
    while (k < part.size() && whole[i + k] == part[k]) ++k;
    if (k == part.size()) return true;
  }
  return false;
}

struct Snippet {
  fs::path page;
  int line = 0;  // of the marker
  std::string source;
  std::vector<std::string> code;
};

std::vector<Snippet> snippets() {
  const std::string marker = "<!-- snippet: ";
  std::vector<Snippet> out;
  for (const auto& entry : fs::directory_iterator(kRoot / "docs")) {
    if (entry.path().extension() != ".md") continue;
    const std::vector<std::string> lines = lines_of(entry.path());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string text = trim(lines[i]);  // markers may be indented, as in a list
      if (text.rfind(marker, 0) != 0) continue;
      Snippet s{entry.path(),
                static_cast<int>(i + 1),
                text.substr(marker.size(), text.find(" -->") - marker.size()),
                {}};
      std::size_t j = i + 1;
      EXPECT_TRUE(j < lines.size() && trim(lines[j]) == "```cpp")
          << s.page << ":" << s.line << ": a snippet marker must be followed by ```cpp";
      for (++j; j < lines.size() && trim(lines[j]) != "```"; ++j) s.code.push_back(lines[j]);
      out.push_back(s);
    }
  }
  return out;
}

TEST(Docs, EverySnippetIsVerbatimFromTheFileItNames) {
  const std::vector<Snippet> all = snippets();
  EXPECT_GE(all.size(), 5u) << "docs/ lost its snippet markers";
  for (const Snippet& s : all) {
    const fs::path source = kRoot / s.source;
    ASSERT_TRUE(fs::exists(source)) << s.page << ":" << s.line << ": no file " << s.source;
    EXPECT_TRUE(contains_run(code_lines(lines_of(source)), code_lines(s.code)))
        << s.page.filename().string() << ":" << s.line << ": this snippet is not in " << s.source
        << " any more; copy the current code into the page";
  }
}

}  // namespace
