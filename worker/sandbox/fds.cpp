// Step "fds": only the documented descriptors 0..4 reach the runtime.
#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

Status CloseInheritedFds(int last_kept) {
  if (close_range(static_cast<unsigned>(last_kept) + 1, ~0U, 0) == 0) return Status::Ok();
  if (errno != ENOSYS) return Status::Sys(errno, "close_range");
  // Kernels before 5.9: walk /proc/self/fd (collect first: closing while iterating the
  // directory would close the directory's own descriptor under it).
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return Status::Sys(errno, "opendir /proc/self/fd");
  std::vector<int> fds;
  while (dirent* e = readdir(dir)) {
    int fd = std::atoi(e->d_name);
    if (e->d_name[0] != '.' && fd > last_kept && fd != dirfd(dir)) fds.push_back(fd);
  }
  closedir(dir);
  for (int fd : fds) close(fd);
  return Status::Ok();
}

}  // namespace geysir::worker::sandbox
