#include "tests/support/temp_dir.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace geysir::testing {

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  path_ = buf.data();
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  // Depth first, without following symbolic links: a test may leave links that point anywhere.
  nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

void TempDir::Write(const std::string& relative, const std::string& content, mode_t mode) const {
  const std::string full = path_ + "/" + relative;
  for (size_t pos = path_.size() + 1; (pos = full.find('/', pos)) != std::string::npos; ++pos) {
    mkdir(full.substr(0, pos).c_str(), 0755);
  }
  {
    std::ofstream out(full, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("cannot write " + full);
  }
  if (chmod(full.c_str(), mode) != 0) throw std::runtime_error("chmod " + full + ": " + std::strerror(errno));
}

}  // namespace geysir::testing
