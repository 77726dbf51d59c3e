// The default thread count also honours a cgroup's CPU quota (docker run --cpus=N), which the
// affinity mask does not show. Each test lays out a directory like a system's /proc/self and
// /sys/fs/cgroup and reads it with ag::detail::cgroup_cpu_limit(root).
#include "autograd/detail/cgroup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed at the end.
class Cgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("ag_cgroup_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "proc/self");
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes `text` to root/relative, making its directories.
  void write(const std::string& relative, const std::string& text) {
    const fs::path file = root_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  // cgroup v1's quota files in root/dir, the period 100 ms.
  void v1_quota(const std::string& dir, const std::string& quota) {
    write(dir + "/cpu.cfs_quota_us", quota + "\n");
    write(dir + "/cpu.cfs_period_us", "100000\n");
  }
  // A cgroup v2 system: the unified hierarchy at /sys/fs/cgroup, the process in `cgroup`.
  void v2_system(const std::string& cgroup) {
    write("proc/self/cgroup", "0::" + cgroup + "\n");
    write("proc/self/mountinfo",
          "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
          "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate\n");
  }

  fs::path root_;
};

TEST_F(Cgroup, V2QuotaIsRoundedUpToWholeCores) {
  v2_system("/system.slice/train.service");
  write("sys/fs/cgroup/system.slice/train.service/cpu.max", "150000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 2);
  write("sys/fs/cgroup/system.slice/train.service/cpu.max", "50000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 1);
  write("sys/fs/cgroup/system.slice/train.service/cpu.max", "400000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 4);
  write("sys/fs/cgroup/system.slice/train.service/cpu.max", "9223372036854775807 1\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 1 << 20);  // no overflow; no limit in practice
}

TEST_F(Cgroup, V2WithoutQuotaGivesNoLimit) {
  v2_system("/user.slice");
  write("sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);
}

TEST_F(Cgroup, TheSmallestLimitOnThePathToTheProcessCounts) {
  v2_system("/kubepods/pod1/box");
  write("sys/fs/cgroup/cpu.max", "max 100000\n");
  write("sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n");
  write("sys/fs/cgroup/kubepods/pod1/box/cpu.max", "max 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 3);  // the parent's, the process's has none
  write("sys/fs/cgroup/kubepods/pod1/box/cpu.max", "120000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 2);  // the process's own, smaller
  write("sys/fs/cgroup/kubepods/cpu.max", "100000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 1);  // a grandparent's, smaller still
}

TEST_F(Cgroup, V1QuotaOverPeriodInAContainerThatSeesItsOwnCgroupAsTheMount) {
  // Docker on cgroup v1 without a cgroup namespace: /proc/self/cgroup names the container's
  // cgroup, and the mount shows that same directory at /sys/fs/cgroup/cpu,cpuacct.
  write("proc/self/cgroup",
        "12:memory:/docker/0123abcd\n"
        "4:cpu,cpuacct:/docker/0123abcd\n"
        "1:name=systemd:/docker/0123abcd\n");
  write("proc/self/mountinfo",
        "640 600 0:60 / / rw,relatime - overlay overlay rw\n"
        "655 650 0:30 /docker/0123abcd /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:12 - cgroup "
        "cgroup rw,cpu,cpuacct\n"
        "656 650 0:31 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid master:13 - cgroup cgroup "
        "rw,memory\n");
  v1_quota("sys/fs/cgroup/cpu,cpuacct", "250000");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 3);
  v1_quota("sys/fs/cgroup/cpu,cpuacct", "-1");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);
}

TEST_F(Cgroup, AHybridSystemReadsTheCpuControllerNotCpusetOrCpuacct) {
  // Laid out as this project's CI machine: v1 controllers mounted one each (cpuset and cpuacct
  // listed before cpu), and the unified v2 tree beside them.
  write("proc/self/cgroup",
        "9:name=systemd:/batch\n3:cpuset:/batch\n2:cpuacct:/batch\n1:cpu:/batch\n0::/batch\n");
  write("proc/self/mountinfo",
        "24 22 0:20 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
        "25 24 0:21 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n"
        "26 24 0:22 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "27 24 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
        "28 24 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  v1_quota("sys/fs/cgroup/cpuacct/batch", "100000");  // decoys: not the cpu controller
  v1_quota("sys/fs/cgroup/cpuset/batch", "100000");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);
  v1_quota("sys/fs/cgroup/cpu/batch", "200000");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 2);
  // Were the v2 tree to set a quota too (constructed: on a real hybrid system the cpu controller
  // is bound to v1 and cpu.max does not exist there), the smaller of the two would count.
  write("sys/fs/cgroup/unified/batch/cpu.max", "100000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 1);
}

TEST_F(Cgroup, MountPointsWithEscapedSpacesAreFound) {
  write("proc/self/cgroup", "0::/job\n");
  write("proc/self/mountinfo", "30 22 0:26 / /cgroup\\040root rw - cgroup2 cgroup2 rw\n");
  write("cgroup root/job/cpu.max", "100000 100000\n");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 1);
}

TEST_F(Cgroup, ACgroupOutsideWhatTheMountShowsGivesNoLimit) {
  // A process that joined a container's cgroup namespace without moving into its cgroup
  // (nsenter) sees its own cgroup above the namespace's root; the mount's quota is not its own.
  write("proc/self/cgroup", "0::/../../other\n");
  write("proc/self/mountinfo", "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  write("sys/fs/cgroup/cpu.max", "100000 100000\n");
  write("sys/other/cpu.max", "100000 100000\n");  // outside the mount: a naive join reads it
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);
}

TEST_F(Cgroup, AMountOfAnotherCgroupIsNotTheProcesssOwn) {
  // v1 without a cgroup namespace: the process is in /docker/abcdef; a mount showing
  // /docker/abc (a prefix of the name, but another cgroup) comes first and must be skipped.
  write("proc/self/cgroup", "4:cpu:/docker/abcdef\n");
  write("proc/self/mountinfo",
        "50 22 0:30 /docker/abc /mnt/abc rw - cgroup cgroup rw,cpu\n"
        "51 22 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  v1_quota("mnt/abc", "100000");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);  // the second mount: no quota set there
  v1_quota("sys/fs/cgroup/cpu/docker/abcdef", "300000");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 3);
}

TEST_F(Cgroup, MissingOrGarbledFilesGiveNoLimit) {
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_ / "does/not/exist"), 0);
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);  // empty /proc/self
  v2_system("/app");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);  // no cpu.max anywhere
  for (const char* garbled : {"", "150000", "abc 100000", "150000 0", "0 100000", "-5 100000",
                              "150000 100000 7", "99999999999999999999999 100000"}) {
    write("sys/fs/cgroup/app/cpu.max", garbled);
    EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0) << "cpu.max: \"" << garbled << "\"";
  }
  write("proc/self/mountinfo", "garbage\n - \n30 22\n\n- cgroup2\n");
  write("sys/fs/cgroup/app/cpu.max", "100000 100000");
  EXPECT_EQ(ag::detail::cgroup_cpu_limit(root_), 0);  // no usable mount line
}

}  // namespace
