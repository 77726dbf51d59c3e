// Faults from outside the program: a process killed (SIGKILL) while it saves a checkpoint leaves
// the old or the new complete file, never a torn one; a full disk (a 64 KB tmpfs) gives an error
// naming the file and "No space left on device", and the file already there survives; without a
// usable /proc (no unnamed temporary file) saves still work and leave nothing behind. (A file
// size limit, RLIMIT_FSIZE, is in test_checkpoint.cpp: FailedWriteKeepsTheOriginal...)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"

namespace {

namespace fs = std::filesystem;

fs::path unique_dir(const std::string& prefix) {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  return fs::temp_directory_path() / (prefix + test->name() + "_" + std::to_string(::getpid()) +
                                      "_" + std::to_string(std::random_device{}()));
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    names.insert(entry.path().filename().string());
  return names;
}

// ---- SIGKILL during a save ----

// A child running tests/helpers/checkpoint_writer.cpp, its stdout on a pipe.
struct Writer {
  pid_t pid = -1;
  int out = -1;
};

Writer start_writer(const fs::path& path, int64_t n) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
    const std::string count = std::to_string(n);
    ::execl(CHECKPOINT_WRITER_BIN, CHECKPOINT_WRITER_BIN, path.c_str(), count.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  return {pid, pipe_fds[0]};
}

// Blocks until the writer printed its "ready" line (it has read the file and starts saving).
bool wait_ready(const Writer& w) {
  std::string line;
  char c = 0;
  while (::read(w.out, &c, 1) == 1 && c != '\n') line += c;
  return line == "ready";
}

// The last line the writer printed before it died ("saving k" or "saved k").
std::string last_line(const Writer& w) {
  std::string all;
  char buffer[4096];
  for (ssize_t n; (n = ::read(w.out, buffer, sizeof buffer)) > 0;) all.append(buffer, n);
  if (!all.empty() && all.back() == '\n') all.pop_back();
  return all.substr(all.rfind('\n') + 1);  // npos + 1 == 0: the whole text
}

// Whether saves into `dir` write an unnamed temporary file (O_TMPFILE, linked through /proc).
bool unnamed_temporaries(const fs::path& dir) {
  if (::faccessat(AT_FDCWD, "/proc/self/fd", X_OK, AT_EACCESS) != 0) return false;
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

TEST(KillDuringSave, LeavesTheOldOrTheNewCompleteCheckpoint) {
  const fs::path dir = unique_dir("ag_faults_");
  fs::create_directories(dir);
  struct RemoveAtEnd {
    const fs::path& dir;
    ~RemoveAtEnd() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } remove_at_end{dir};
  const fs::path path = dir / "model.safetensors";
  constexpr int64_t kValues = 1 << 20;  // 4 MB: a save takes long enough to be hit inside
  const auto start = std::chrono::steady_clock::now();
  nn::save_safetensors(path, {{"w", ag::zeros({kValues})}}, {{"version", "0"}});
  const int64_t save_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();

  // Kills spread over about three saves' time as measured here (a save takes a few milliseconds
  // in a release build on an idle machine, ten times that under a sanitizer on a busy one), so
  // that some land inside the first save and most after one or more completed.
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int64_t> delay_us(0, std::max<int64_t>(30000, 3 * save_us));
  const bool unnamed = unnamed_temporaries(dir);
  uint64_t last = 0;
  int killed_mid_save = 0, left_behind = 0;
  constexpr int kRounds = 25;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Writer writer = start_writer(path, kValues);
    const bool ready = wait_ready(writer);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    ::kill(writer.pid, SIGKILL);
    int status = 0;
    ::waitpid(writer.pid, &status, 0);
    const std::string where = last_line(writer);
    ::close(writer.out);
    ASSERT_TRUE(ready) << "checkpoint_writer did not start";
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "checkpoint_writer stopped on its own (status " << status << ")";
    const bool mid_save = where.rfind("saving ", 0) == 0;
    killed_mid_save += mid_save;

    // Anything besides the checkpoint is the temporary file of the save the kill interrupted.
    // An unnamed one gets its name only once it is complete, just before the rename: a kill while
    // it is written leaves nothing. A named one (filesystems without O_TMPFILE) stays behind.
    for (const std::string& name : listing(dir)) {
      if (name == "model.safetensors") continue;
      EXPECT_EQ(name.rfind(".model.safetensors.", 0), 0u) << name;
      EXPECT_TRUE(mid_save) << name << " left behind by a kill after '" << where << "'";
      if (unnamed) {
        EXPECT_NO_THROW(nn::load_safetensors(dir / name))
            << "a temporary file was left unfinished: " << name;
      }
      ++left_behind;
      fs::remove(dir / name);
    }

    const nn::Safetensors file = nn::load_safetensors(path);  // throws if torn
    const uint64_t version = std::stoull(file.metadata.at("version"));
    EXPECT_GE(version, last);
    last = version;
    const ag::Tensor& w = file.at("w");
    ASSERT_EQ(w.numel(), kValues);
    const float* values = w.data<float>();
    for (int64_t i = 0; i < kValues; ++i)
      ASSERT_EQ(values[i], static_cast<float>(version)) << "element " << i << " of " << version;
  }
  EXPECT_GT(last, 0u) << "no save ever completed";
  EXPECT_GT(killed_mid_save, 0) << "no kill landed inside a save: the test proved nothing";
  std::printf(
      "%d of %d kills landed inside a save, %d left a temporary file (%s); %llu checkpoints "
      "completed (one save: %lld us)\n",
      killed_mid_save, kRounds, left_behind, unnamed ? "unnamed, O_TMPFILE" : "named",
      static_cast<unsigned long long>(last), static_cast<long long>(save_us));
}

// ---- a full disk ----

// A 64 KB tmpfs mounted for the test (needs root, else the test is skipped).
class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_dir("ag_full_disk_");
    fs::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=64k") != 0) {
      const int err = errno;
      fs::remove(dir_);
      GTEST_SKIP() << "cannot mount a 64 KB tmpfs (" << std::strerror(err)
                   << "): run as root to test a full disk";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path dir_;
  bool mounted_ = false;
};

TEST_F(FullDisk, SaveThatDoesNotFitNamesTheFileAndKeepsTheOldOne) {
  const fs::path path = dir_ / "model.safetensors";
  nn::save_safetensors(path, {{"w", ag::ones({256})}});
  const std::string original = read_bytes(path);

  std::string what;
  int code = 0;
  try {
    nn::save_safetensors(path, {{"w", ag::ones({100000})}});  // 400 KB on a 64 KB disk
  } catch (const std::system_error& e) {
    what = e.what();
    code = e.code().value();
  }
  EXPECT_EQ(code, ENOSPC) << what;
  EXPECT_NE(what.find("No space left on device"), std::string::npos) << what;
  EXPECT_NE(what.find(path.string()), std::string::npos) << what;
  EXPECT_EQ(read_bytes(path), original);
  EXPECT_EQ(listing(dir_), std::set<std::string>{"model.safetensors"});  // no temporary file

  // The space the failed save took is free again.
  nn::save_safetensors(path, {{"w", ag::full({256}, 2.0)}});
  EXPECT_EQ(nn::load_safetensors(path).at("w").to_vector()[0], 2.0);
}

// ---- where the temporary file cannot be unnamed ----

// Runs `body` in a child process with a mount namespace of its own, where /proc is an empty tmpfs:
// with `fd_dir`, /proc/self/fd exists there but links nothing, as when a security policy refuses
// the link (the save writes an unnamed file and must copy it into a named one); without, the save
// names its temporary file from the start. Returns the child's exit code: 0 when `body` passed,
// else `body`'s code (its message on stderr); -1 where no namespace can be made (not root).
// `body` keeps its tensors small (below the element-wise split): the child has a copy of the
// parent's thread pool but none of its threads.
int without_proc(bool fd_dir, const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid < 0) return -2;
  if (pid == 0) {
    std::error_code ec;
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/proc", "tmpfs", 0, "size=64k") != 0 ||
        (fd_dir && !fs::create_directories("/proc/self/fd", ec)))
      ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return -3;
  return WEXITSTATUS(status) == 100 ? -1 : WEXITSTATUS(status);
}

// In a child: exits with `code` and says why when `ok` is false.
int check(bool ok, int code, const std::string& what) {
  if (!ok) std::fprintf(stderr, "%s\n", what.c_str());
  return ok ? 0 : code;
}

class NoUnnamedTemporaries : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = unique_dir("ag_named_tmp_");
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path dir_;
};

TEST_F(NoUnnamedTemporaries, SavesWhenTheLinkIsRefused) {
  const fs::path path = dir_ / "model.safetensors";
  const int code = without_proc(/*fd_dir=*/true, [&] {
    for (int version = 1; version <= 2; ++version) {  // the second save is named from the start
      try {
        nn::save_safetensors(path, {{"w", ag::full({1000}, version)}});
        const std::vector<double> w = nn::load_safetensors(path).at("w").to_vector();
        if (int c = check(w.size() == 1000 && w[0] == version && w[999] == version, 10 + version,
                          "wrong contents after save " + std::to_string(version)))
          return c;
        if (int c = check(listing(dir_) == std::set<std::string>{"model.safetensors"}, 20 + version,
                          "a temporary file is left after save " + std::to_string(version)))
          return c;
      } catch (const std::exception& e) {
        return check(false, 30 + version, e.what());
      }
    }
    return 0;
  });
  if (code == -1) GTEST_SKIP() << "cannot make a mount namespace: run as root to test this";
  EXPECT_EQ(code, 0) << "see the child's message above";
}

TEST_F(NoUnnamedTemporaries, FailedWriteKeepsTheOriginalAndRemovesTheNamedTemporaryFile) {
  const fs::path path = dir_ / "model.safetensors";
  nn::save_safetensors(path, {{"w", ag::ones({256})}});
  const std::string original = read_bytes(path);
  const int code = without_proc(/*fd_dir=*/false, [&] {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit small{16 * 1024, 16 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return check(false, 10, "setrlimit");
    try {
      nn::save_safetensors(path, {{"w", ag::ones({8000})}});  // 32 KB with a 16 KB limit
      return check(false, 11, "the save did not fail");
    } catch (const std::system_error& e) {
      const std::string what = e.what();
      if (int c = check(e.code().value() == EFBIG, 12, what)) return c;
      if (int c = check(what.find(".model.safetensors.") != std::string::npos, 13,
                        "the message names no temporary file: " + what))
        return c;
    }
    if (int c = check(read_bytes(path) == original, 14, "the original changed")) return c;
    return check(listing(dir_) == std::set<std::string>{"model.safetensors"}, 15,
                 "the temporary file is left");
  });
  if (code == -1) GTEST_SKIP() << "cannot make a mount namespace: run as root to test this";
  EXPECT_EQ(code, 0) << "see the child's message above";
}

#ifdef TWO_LAYER_NET_BIN
// The example on a disk with 8 KB left: the run fails with one line naming the file it could not
// write, and the files of an earlier run in the same directory are left as they were.
TEST_F(FullDisk, TwoLayerNetOnAFullDiskFailsClearlyAndKeepsEarlierOutputs) {
  const fs::path out = dir_ / "run";
  fs::create_directories(out);
  {
    std::ofstream earlier(out / "summary.json");
    earlier << "{\"from\": \"an earlier run\"}\n";
  }
  {
    std::ofstream filler(dir_ / "filler", std::ios::binary);
    filler << std::string(64 * 1024 - 12 * 1024, 'x');
  }
  const std::string command = std::string(TWO_LAYER_NET_BIN) +
                              " --dataset spiral --epochs 2 --hidden 400 --quiet --out " +
                              out.string() + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  const std::size_t error = output.find("two_layer_net: error: ");
  ASSERT_NE(error, std::string::npos) << output;
  const std::string line = output.substr(error);
  EXPECT_NE(line.find("No space left on device"), std::string::npos) << line;
  EXPECT_NE(line.find(out.string()), std::string::npos) << line;
  EXPECT_EQ(read_bytes(out / "summary.json"), "{\"from\": \"an earlier run\"}\n");
  for (const std::string& name : listing(out))
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << "temporary file left: " << name;
}
#endif

}  // namespace
