// TempDir: a fresh directory under /tmp that a test owns, removed with everything in it when the
// object goes. Mode 0755, so a function's uid (the worker and scheduler tests switch to one) can
// read code written there.
//
// Thread behaviour: none of its own; one owner, like a std::string.
#pragma once

#include <sys/types.h>

#include <string>

namespace geysir::testing {

class TempDir {
 public:
  // `prefix` names the directory (/tmp/<prefix>-XXXXXX) so a leftover says which test left it.
  // Throws std::runtime_error if no directory can be made: Catch2 reports that as the failure.
  explicit TempDir(const std::string& prefix = "geysir-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `relative` inside the directory.
  std::string operator/(const std::string& relative) const { return path_ + "/" + relative; }

  // Writes `relative` (making its parent directories, 0755) with `content` and `mode`. Throws
  // std::runtime_error if the file cannot be written.
  void Write(const std::string& relative, const std::string& content, mode_t mode = 0644) const;

 private:
  std::string path_;
};

}  // namespace geysir::testing
