// The CPU limit a Linux control group (cgroup) puts on this process, for the default thread count.
// A container started with `docker run --cpus=2` on a 64-core host still has all 64 cores in its
// affinity mask, but only 2 cores' worth of time per period: 64 threads spinning on it would be
// throttled most of the time. Not public API.
#pragma once

#include <filesystem>

namespace ag::detail {

/// How many cores' worth of CPU time this process's cgroups allow: quota / period, rounded up, the
/// smallest along the process's cgroup and its parents (cgroup v2 `cpu.max`, v1
/// `cpu.cfs_quota_us` over `cpu.cfs_period_us`); 0 when none sets a quota or nothing can be read.
/// The hierarchies are found from /proc/self/cgroup and /proc/self/mountinfo. `root` is where those
/// paths start: "/" on a real system, a directory laid out like one in tests. Never throws.
int cgroup_cpu_limit(const std::filesystem::path& root = "/");

}  // namespace ag::detail
