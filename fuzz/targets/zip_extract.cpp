// Zip extraction (control/zip_extract.h): every deploy unpacks a zip a client sent. Whatever
// the archive holds, extraction either fails with a Status or writes only under its
// destination; the destination is removed again after each input.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "control/zip_extract.h"

namespace {

// One scratch directory per fuzzing process, under TMPDIR.
const std::string& ScratchRoot() {
  static const std::string root = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/geysir-fuzz-zip-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    return pattern;
  }();
  return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir::control;
  const std::string& root = ScratchRoot();
  const std::string dest = root + "/out";
  ZipLimits limits;
  limits.max_unzipped_bytes = 8 << 20;  // keep one input's disk use small
  limits.max_entries = 512;
  (void)ExtractZip(std::string_view(reinterpret_cast<const char*>(data), size), dest, limits);
  // Nothing may have been written beside the destination (a path escaping it would land here).
  (void)RemoveTree(dest);
  if (rmdir(root.c_str()) != 0) __builtin_trap();  // not empty: something escaped `dest`
  if (mkdir(root.c_str(), 0700) != 0) std::abort();
  return 0;
}
