#include "tests/support/skip.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace geysir::testing {

bool SkipsMustFail() {
  const char* ci = std::getenv("CI");
  const char* require_all = std::getenv("GEYSIR_REQUIRE_ALL");
  return (ci != nullptr && std::strcmp(ci, "true") == 0) ||
         (require_all != nullptr && std::strcmp(require_all, "1") == 0);
}

void RecordSkip(const std::string& test, const std::string& why) {
  const std::string line = test + ": skipped: " + why + "\n";
  std::cerr << line << std::flush;
  const char* log = std::getenv("GEYSIR_SKIP_LOG");
  if (log == nullptr || *log == '\0') return;
  // O_APPEND with one write per line: ctest runs test binaries in parallel into the same file.
  const int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)!write(fd, line.data(), line.size());
  close(fd);
}

}  // namespace geysir::testing
