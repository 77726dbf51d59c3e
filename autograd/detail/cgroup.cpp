// Reads the CPU quota of this process's cgroups (see cgroup.h). Each hierarchy is found in two
// steps: /proc/self/cgroup names the process's cgroup in it ("4:cpu,cpuacct:/docker/abc" in
// cgroup v1, "0::/user.slice/x" in v2), and /proc/self/mountinfo says where the hierarchy is
// mounted and which of its directories the mount shows (inside a container often the container's
// own cgroup: the mount's root is then "/docker/abc", shown at /sys/fs/cgroup/cpu,cpuacct).
#include "autograd/detail/cgroup.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ag::detail {
namespace {

namespace fs = std::filesystem;

struct Hierarchy {
  std::optional<std::string> cgroup;  // the process's cgroup in it, from /proc/self/cgroup
  bool mounted = false;               // a mount shows that cgroup or a parent of it:
  fs::path top;                       // where, under `root`
  fs::path steps;                     // and the path from there down to the cgroup
};

std::optional<std::string> read_first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

bool has_token(std::string_view list, std::string_view token) {
  const std::vector<std::string_view> tokens = split(list, ',');
  return std::find(tokens.begin(), tokens.end(), token) != tokens.end();
}

// mountinfo writes a space in a path as \040 (octal), a backslash as \134.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto octal = [](char c) { return c >= '0' && c <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// ceil(quota / period), or nullopt when there is no quota.
std::optional<int64_t> cores(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return std::min<int64_t>(quota / period + (quota % period != 0), 1 << 20);
}

// cgroup v2: cpu.max holds "max 100000" (no limit) or "150000 100000" (quota, period, in µs).
std::optional<int64_t> limit_v2(const fs::path& dir) {
  const std::optional<std::string> line = read_first_line(dir / "cpu.max");
  if (!line) return std::nullopt;
  const std::vector<std::string_view> f = split(*line, ' ');
  if (f.size() != 2) return std::nullopt;
  const std::optional<int64_t> quota = to_int(f[0]), period = to_int(f[1]);
  return quota && period ? cores(*quota, *period) : std::nullopt;
}

// cgroup v1: cpu.cfs_quota_us (-1: no limit) over cpu.cfs_period_us.
std::optional<int64_t> limit_v1(const fs::path& dir) {
  const std::optional<std::string> quota = read_first_line(dir / "cpu.cfs_quota_us");
  const std::optional<std::string> period = read_first_line(dir / "cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  const std::optional<int64_t> q = to_int(*quota), p = to_int(*period);
  return q && p ? cores(*q, *p) : std::nullopt;
}

// The path from a mount of a hierarchy down to the process's cgroup, when the mount shows that
// cgroup or one of its parents: the cgroup's path below the mount's root. Else nullopt: the mount
// shows another part of the hierarchy, or the cgroup is outside what it shows (a cgroup namespace
// can show paths like "/../.." to a process that joined it without moving into its cgroup).
std::optional<fs::path> below_mount(std::string_view cgroup, std::string_view mount_root) {
  if (mount_root != "/") {
    if (!cgroup.starts_with(mount_root)) return std::nullopt;
    cgroup.remove_prefix(mount_root.size());
    if (!cgroup.empty() && cgroup.front() != '/') return std::nullopt;  // "/docker/abcdef"
  }
  fs::path steps = fs::path(cgroup).relative_path().lexically_normal();
  for (const fs::path& step : steps)
    if (step == "..") return std::nullopt;
  return steps;
}

// The smallest limit on the way from the mount down to the process's cgroup.
template <class Limit>
std::optional<int64_t> smallest_limit(const Hierarchy& h, Limit limit) {
  if (!h.mounted) return std::nullopt;
  fs::path dir = h.top;
  std::optional<int64_t> smallest = limit(dir);
  for (const fs::path& step : h.steps) {
    if (step.empty() || step == ".") continue;
    dir /= step;
    if (const std::optional<int64_t> n = limit(dir); n && (!smallest || *n < *smallest))
      smallest = n;
  }
  return smallest;
}

}  // namespace

int cgroup_cpu_limit(const fs::path& root) {
  Hierarchy v1, v2;
  try {
    std::ifstream cgroups(root / "proc/self/cgroup");
    for (std::string line; std::getline(cgroups, line);) {
      // "id:controllers:path"; the path may itself hold ':'.
      const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b == std::string::npos) continue;
      const std::string_view id = std::string_view(line).substr(0, a);
      const std::string_view controllers = std::string_view(line).substr(a + 1, b - a - 1);
      if (id == "0" && controllers.empty())
        v2.cgroup = line.substr(b + 1);
      else if (has_token(controllers, "cpu"))
        v1.cgroup = line.substr(b + 1);
    }
    std::ifstream mounts(root / "proc/self/mountinfo");
    for (std::string line; std::getline(mounts, line);) {
      // "id parent major:minor root mount-point options [optional ...] - fstype source options"
      const std::vector<std::string_view> f = split(line, ' ');
      const auto dash = std::find(f.begin() + std::min<size_t>(f.size(), 6), f.end(), "-");
      if (dash == f.end() || f.end() - dash < 4) continue;
      const std::string_view fstype = dash[1], super_options = dash[3];
      Hierarchy* h = fstype == "cgroup2"                                     ? &v2
                     : fstype == "cgroup" && has_token(super_options, "cpu") ? &v1
                                                                             : nullptr;
      if (!h || h->mounted || !h->cgroup) continue;
      if (std::optional<fs::path> steps = below_mount(*h->cgroup, unescape(f[3]))) {
        h->top = root / fs::path(unescape(f[4])).relative_path();
        h->steps = std::move(*steps);
        h->mounted = true;
      }
    }
    const std::optional<int64_t> a = smallest_limit(v1, limit_v1);
    const std::optional<int64_t> b = smallest_limit(v2, limit_v2);
    if (a && b) return static_cast<int>(std::min(*a, *b));
    return static_cast<int>(a ? *a : b ? *b : 0);
  } catch (...) {  // a path the filesystem library rejects, or out of memory: no limit known
    return 0;
  }
}

}  // namespace ag::detail
