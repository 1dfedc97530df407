// Packaging a function's code for upload: a directory zipped in memory, or a .zip read as is.
//
// Zipping keeps paths relative to the directory, in sorted order, with the files' Unix mode
// (so executables stay executable) and a fixed modification time, so the same tree always
// gives the same bytes and the server stores it once (code is content-addressed by sha256).
// __pycache__ and .git directories are skipped; symlinks are followed (the zip holds what they
// point to, as `zip` does without -y), symlinked directories are not descended into.
//
// Thread safety: functions over values and the filesystem; no shared state.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace geysir::cli {

struct Package {
  std::string zip;         // the archive bytes
  size_t file_count = 0;   // entries in the archive
  uint64_t unzipped_bytes = 0;
  bool from_directory = false;
};

// Lambda's limits, checked before upload so the error is immediate and says what to do.
constexpr uint64_t kMaxZippedBytes = 50ull * 1000 * 1000;
constexpr uint64_t kMaxUnzippedBytes = 250ull * 1000 * 1000;

Result<Package> ZipDirectory(const std::string& dir);
Result<Package> ReadZipFile(const std::string& path);
// A directory is zipped; a file must be a zip archive.
Result<Package> PackagePath(const std::string& path);

// "3.4 KiB", "12 B", "1.2 MiB"
std::string HumanBytes(uint64_t n);

}  // namespace geysir::cli
