#include "worker/cgroup_fs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "base/unique_fd.h"

namespace geysir::worker::cgroupfs {

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path, errno == ENOENT ? Code::kNotFound : Code::kInternal);
  std::string out;
  char buf[4096];
  while (out.size() < 64 * 1024) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Sys(errno, "read " + path);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status WriteFile(const std::string& path, const std::string& value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path, errno == ENOENT ? Code::kNotFound : Code::kInternal);
  ssize_t n;
  do {
    n = write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Sys(errno, "write '" + value + "' to " + path);
  return Status::Ok();
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return std::nullopt;
  const char* s = text->c_str();
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || errno != 0) return std::nullopt;
  return static_cast<uint64_t>(v);
}

std::optional<uint64_t> ReadKeyed(const std::string& path, const std::string& key) {
  auto text = ReadFile(path);
  if (!text.ok()) return std::nullopt;
  std::istringstream in(*text);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::vector<pid_t> ReadPids(const std::string& procs_path) {
  std::vector<pid_t> pids;
  auto text = ReadFile(procs_path);
  if (!text.ok()) return pids;
  std::istringstream in(*text);
  long p;
  while (in >> p) pids.push_back(static_cast<pid_t>(p));
  return pids;
}

bool V1Hierarchy::Has(const std::string& controller) const {
  for (const auto& c : controllers) {
    if (c == controller) return true;
  }
  return false;
}

namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

// Lines of /proc/self/cgroup: "<id>:<controllers>:<path>" (controllers empty for v2).
std::vector<std::pair<std::string, std::string>> OwnCgroups() {
  std::vector<std::pair<std::string, std::string>> out;
  auto text = ReadFile("/proc/self/cgroup");
  if (!text.ok()) return out;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    if (a == std::string::npos) continue;
    size_t b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    out.emplace_back(line.substr(a + 1, b - a - 1), line.substr(b + 1));
  }
  return out;
}

struct MountEntry {
  std::string mount_point;
  std::string fstype;
  std::string super_options;
};

std::vector<MountEntry> CgroupMounts() {
  std::vector<MountEntry> out;
  auto text = ReadFile("/proc/self/mountinfo");
  if (!text.ok()) return out;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, dev, root, mount_point;
    head >> id >> parent >> dev >> root >> mount_point;
    std::istringstream tail(line.substr(dash + 3));
    MountEntry e;
    std::string source;
    tail >> e.fstype >> source >> e.super_options;
    if (e.fstype != "cgroup" && e.fstype != "cgroup2") continue;
    e.mount_point = mount_point;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::vector<V1Hierarchy> ListV1Hierarchies() {
  std::vector<V1Hierarchy> out;
  auto own = OwnCgroups();
  for (const auto& m : CgroupMounts()) {
    if (m.fstype != "cgroup") continue;
    V1Hierarchy h;
    h.mount = m.mount_point;
    for (const auto& opt : Split(m.super_options, ',')) {
      if (opt == "rw" || opt == "ro" || opt.find('=') != std::string::npos || opt.empty()) continue;
      if (opt == "nosuid" || opt == "nodev" || opt == "noexec" || opt == "relatime" || opt == "clone_children") continue;
      h.controllers.push_back(opt);
    }
    if (h.controllers.empty()) continue;  // e.g. name=systemd
    h.own = std::string(1, '/');  // not = "/": GCC 12 -O3 warns a false -Wrestrict on that
    for (const auto& [ctrls, path] : own) {
      auto names = Split(ctrls, ',');
      bool match = false;
      for (const auto& n : names) {
        if (h.Has(n)) match = true;
      }
      if (match) h.own = path;
    }
    out.push_back(std::move(h));
  }
  return out;
}

std::optional<V2Mount> FindV2Mount() {
  for (const auto& m : CgroupMounts()) {
    if (m.fstype != "cgroup2") continue;
    V2Mount v{m.mount_point, "/"};
    for (const auto& [ctrls, path] : OwnCgroups()) {
      if (ctrls.empty()) v.own = path;
    }
    return v;
  }
  return std::nullopt;
}

bool IsCgroup2(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (b.empty() || b == "/") return a;
  if (a.empty()) return b;
  bool a_slash = a.back() == '/';
  bool b_slash = b.front() == '/';
  if (a_slash && b_slash) return a + b.substr(1);
  if (!a_slash && !b_slash) return a + "/" + b;
  return a + b;
}

}  // namespace geysir::worker::cgroupfs
