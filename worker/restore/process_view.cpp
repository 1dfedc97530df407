#include "worker/restore/process_view.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "base/unique_fd.h"

namespace geysir::worker::restore {

namespace {

std::string Proc(pid_t pid, const char* what) { return "/proc/" + std::to_string(pid) + "/" + what; }

uint64_t Hex(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v, 16);
  return v;
}

// The next space-separated field of `line` from `pos` on.
// The first line of `rest` (without its '\n'); `rest` moves past it.
std::string_view NextLine(std::string_view& rest) {
  const size_t nl = rest.find('\n');
  const std::string_view line = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return line;
}

std::string_view Field(std::string_view line, size_t& pos) {
  while (pos < line.size() && line[pos] == ' ') ++pos;
  const size_t start = pos;
  while (pos < line.size() && line[pos] != ' ') ++pos;
  return line.substr(start, pos - start);
}

Result<std::string> ReadLink(const std::string& path) {
  char buf[4096];
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return Status::Sys(errno, "readlink " + path);
  return std::string(buf, static_cast<size_t>(n));
}

// The names in a directory, sorted, joined by '\n' ("." and ".." left out).
Result<std::string> ListDir(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return Status::Sys(errno, "opendir " + path);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += n + "\n";
  return out;
}

}  // namespace

int Mapping::prot() const {
  return (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) | (perms[2] == 'x' ? PROT_EXEC : 0);
}

bool Mapping::SameKind(const Mapping& o) const {
  return std::memcmp(perms, o.perms, sizeof perms) == 0 && inode == o.inode && path == o.path;
}

Result<std::string> ReadWholeFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  std::string out;
  size_t used = 0;
  out.resize(16384);
  for (;;) {
    if (used == out.size()) out.resize(out.size() * 2);
    const ssize_t n = read(fd.get(), out.data() + used, out.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Sys(errno, "read " + path);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  out.resize(used);
  return out;
}

Result<std::vector<Mapping>> ReadMappings(pid_t pid) {
  auto text = ReadWholeFile(Proc(pid, "maps"));
  if (!text.ok()) return text.status();
  std::vector<Mapping> out;
  std::string_view all = *text;
  while (!all.empty()) {
    const std::string_view line = NextLine(all);
    if (line.empty()) continue;
    size_t pos = 0;
    std::string_view range = Field(line, pos);
    std::string_view perms = Field(line, pos);
    std::string_view offset = Field(line, pos);
    Field(line, pos);  // device
    std::string_view inode = Field(line, pos);
    while (pos < line.size() && line[pos] == ' ') ++pos;
    const size_t dash = range.find('-');
    if (dash == std::string_view::npos || perms.size() != 4) {
      return Status::Internal("unexpected line in /proc/" + std::to_string(pid) + "/maps: " + std::string(line));
    }
    Mapping m;
    m.start = Hex(range.substr(0, dash));
    m.end = Hex(range.substr(dash + 1));
    std::memcpy(m.perms, perms.data(), 4);
    m.offset = Hex(offset);
    std::from_chars(inode.data(), inode.data() + inode.size(), m.inode);
    m.path = std::string(line.substr(pos));
    if (!out.empty() && out.back().end == m.start && out.back().SameKind(m) &&
        (m.inode == 0 || out.back().offset + (out.back().end - out.back().start) == m.offset)) {
      out.back().end = m.end;
      continue;
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::string> ReadStateLines(pid_t pid) {
  auto text = ReadWholeFile(Proc(pid, "status"));
  if (!text.ok()) return text.status();
  // Not SigQ: it counts the signals queued for the whole user, which other processes of the same
  // uid change (the worker's own pending signals are SigPnd and ShdPnd).
  static constexpr const char* kKeys[] = {"Name:",   "Umask:",  "Threads:",   "SigPnd:",  "ShdPnd:",
                                          "SigBlk:", "SigIgn:", "SigCgt:",    "NoNewPrivs:", "Seccomp:",
                                          "Seccomp_filters:", "Cpus_allowed:", "Mems_allowed:"};
  std::string out;
  std::string_view all = *text;
  while (!all.empty()) {
    const std::string_view line = NextLine(all);
    for (const char* key : kKeys) {
      if (line.starts_with(key)) {
        out.append(line);
        out.push_back('\n');
      }
    }
  }
  return out;
}

std::string StatusValue(std::string_view lines, std::string_view key) {
  while (!lines.empty()) {
    const std::string_view line = NextLine(lines);
    if (line.size() > key.size() + 1 && line.starts_with(key) && line[key.size()] == ':') {
      std::string_view value = line.substr(key.size() + 1);
      if (value.starts_with('\t')) value.remove_prefix(1);  // one tab; a name may start with blanks
      return std::string(value);
    }
  }
  return {};
}

std::vector<std::string> ChangedKeys(std::string_view was, std::string_view now) {
  std::vector<std::string> out;
  while (!was.empty() || !now.empty()) {
    const std::string_view a = NextLine(was);
    const std::string_view b = NextLine(now);
    if (a != b) {
      const std::string_view line = a.empty() ? b : a;
      out.emplace_back(line.substr(0, line.find(':')));
    }
  }
  return out;
}

Result<std::vector<Descriptor>> ReadDescriptors(pid_t pid) {
  const std::string dir = Proc(pid, "fd");
  auto names = ListDir(dir);
  if (!names.ok()) return names.status();
  std::vector<Descriptor> out;
  std::string_view all = *names;
  while (!all.empty()) {
    const std::string_view name = NextLine(all);
    Descriptor d;
    std::from_chars(name.data(), name.data() + name.size(), d.fd);
    auto target = ReadLink(dir + "/" + std::string(name));
    if (!target.ok()) return target.status();
    d.target = std::move(target).value();
    if (!d.target.empty() && d.target[0] == '/') {
      // A file: where it is read or written next is state too.
      auto info = ReadWholeFile(Proc(pid, "fdinfo/") + std::string(name));
      if (!info.ok()) return info.status();
      if (info->starts_with("pos:")) d.pos = std::atoll(info->c_str() + 4);
    }
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [](const Descriptor& a, const Descriptor& b) { return a.fd < b.fd; });
  return out;
}

Result<OtherState> ReadOtherState(pid_t pid) {
  OtherState s;
  auto cwd = ReadLink(Proc(pid, "cwd"));
  if (!cwd.ok()) return cwd.status();
  s.cwd = std::move(cwd).value();
  auto limits = ReadWholeFile(Proc(pid, "limits"));
  if (!limits.ok()) return limits.status();
  s.limits = std::move(limits).value();
  const std::string tid = std::to_string(pid);
  auto children = ReadWholeFile(Proc(pid, ("task/" + tid + "/children").c_str()));
  if (!children.ok()) return children.status();
  s.children = std::move(children).value();
  auto stat = ReadWholeFile(Proc(pid, "stat"));
  if (!stat.ok()) return stat.status();
  {
    // After the command name (in parentheses, which may hold anything) come the fields from
    // the third on; 18 priority, 19 nice, 40 rt_priority and 41 policy are the scheduling.
    const size_t close = stat->rfind(')');
    std::string_view rest = close == std::string::npos ? std::string_view() : std::string_view(*stat).substr(close + 2);
    size_t pos = 0;
    for (int field = 3; field <= 41 && pos < rest.size(); ++field) {
      std::string_view v = Field(rest, pos);
      if (field == 18 || field == 19 || field == 40 || field == 41) {
        s.scheduling.append(v);
        s.scheduling.push_back(' ');
      }
    }
  }
  auto slack = ReadWholeFile(Proc(pid, "timerslack_ns"));
  if (slack.ok()) s.timer_slack = std::move(slack).value();
  auto timers = ReadWholeFile(Proc(pid, "timers"));  // absent without CONFIG_CHECKPOINT_RESTORE
  if (timers.ok()) s.timers = std::move(timers).value();
  auto tmp = ListDir(Proc(pid, "root/tmp"));
  if (tmp.ok()) s.tmp_entries = std::move(tmp).value();
  return s;
}

namespace {

// The worker's IPC namespace and this thread's, and whether they are one (no sandbox).
struct IpcNamespaces {
  UniqueFd worker;
  UniqueFd own;
  bool shared = false;
};

Result<IpcNamespaces> OpenIpcNamespaces(pid_t pid) {
  IpcNamespaces ns;
  ns.worker = UniqueFd(open(Proc(pid, "ns/ipc").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.worker) return Status::Sys(errno, "open the worker's IPC namespace");
  ns.own = UniqueFd(open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC));
  if (!ns.own) return Status::Sys(errno, "open this thread's IPC namespace");
  struct stat a{}, b{};
  if (fstat(ns.worker.get(), &a) != 0 || fstat(ns.own.get(), &b) != 0) return Status::Sys(errno, "fstat an IPC namespace");
  ns.shared = a.st_ino == b.st_ino && a.st_dev == b.st_dev;
  return ns;
}

// Puts this thread back into its own IPC namespace when it goes out of scope. A thread that
// cannot go back would stay in a worker's namespace, and nothing it did afterwards could be
// trusted: that aborts.
class BackToOwnIpcNamespace {
 public:
  explicit BackToOwnIpcNamespace(int own) : own_(own) {}
  ~BackToOwnIpcNamespace() {
    if (setns(own_, CLONE_NEWIPC) != 0) std::abort();
  }
  BackToOwnIpcNamespace(const BackToOwnIpcNamespace&) = delete;
  BackToOwnIpcNamespace& operator=(const BackToOwnIpcNamespace&) = delete;

 private:
  int own_;
};

}  // namespace

Result<size_t> CountIpcObjects(pid_t pid) {
  auto ns = OpenIpcNamespaces(pid);
  if (!ns.ok()) return ns.status();
  if (ns->shared) return size_t{0};
  if (setns(ns->worker.get(), CLONE_NEWIPC) != 0) return Status::Sys(errno, "setns into the worker's IPC namespace");
  BackToOwnIpcNamespace back(ns->own.get());
  // /proc/sysvipc lists the objects of the reader's IPC namespace: one header line, then one
  // line per object.
  size_t count = 0;
  for (const char* file : {"/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem"}) {
    auto text = ReadWholeFile(file);
    if (!text.ok()) return text.status();
    const size_t lines = static_cast<size_t>(std::count(text->begin(), text->end(), '\n'));
    count += lines > 0 ? lines - 1 : 0;
  }
  return count;
}

Result<UniqueFd> OpenMessageQueues(pid_t pid) {
  auto ns = OpenIpcNamespaces(pid);
  if (!ns.ok()) return ns.status();
  if (ns->shared) return UniqueFd();
  UniqueFd context;
  {
    // The file system context takes the IPC namespace of the thread that opens it.
    if (setns(ns->worker.get(), CLONE_NEWIPC) != 0) return Status::Sys(errno, "setns into the worker's IPC namespace");
    BackToOwnIpcNamespace back(ns->own.get());
    context.Reset(fsopen("mqueue", FSOPEN_CLOEXEC));
    if (!context) return Status::Sys(errno, "fsopen(mqueue)");
  }
  if (fsconfig(context.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return Status::Sys(errno, "fsconfig(mqueue, create)");
  }
  UniqueFd mount(fsmount(context.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSUID));
  if (!mount) return Status::Sys(errno, "fsmount(mqueue)");
  return mount;
}

Result<size_t> CountEntries(int dir) {
  UniqueFd fd(openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open a directory to count its entries");
  DIR* d = fdopendir(fd.Release());
  if (d == nullptr) return Status::Sys(errno, "fdopendir");
  size_t n = 0;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
  }
  closedir(d);
  return n;
}

Result<std::vector<pid_t>> ReadProcs(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  std::vector<pid_t> out;
  const char* p = text->data();
  const char* end = p + text->size();
  while (p < end) {
    pid_t v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc()) {
      ++p;
      continue;
    }
    out.push_back(v);
    p = next;
  }
  return out;
}

}  // namespace geysir::worker::restore
