// Helpers shared by the control persistence tests: file inspection and a
// ZipBuilder that writes real archives with libzip (plus raw byte patches for the hostile
// shapes libzip refuses to write).
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <list>
#include <algorithm>
#include <cstring>

#include "control/zip_extract.h"
#include "tests/support/temp_dir.h"

namespace geysir::control::testing {

// The shared temporary directory (tests/support/temp_dir.h).
using geysir::testing::TempDir;

inline bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

inline mode_t ModeOf(const std::string& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Names in a directory, without "." and "..".
inline std::vector<std::string> ListDir(const std::string& p) {
  std::vector<std::string> out;
  DIR* d = ::opendir(p.c_str());
  if (!d) return out;
  while (dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

inline std::string ReadFile(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Builds a zip archive in a temp file with libzip and returns its bytes.
class ZipBuilder {
 public:
  ZipBuilder() {
    char tmpl[] = "/tmp/geysir-zip-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp");
    ::close(fd);
    path_ = tmpl;
    int err = 0;
    za_ = zip_open(path_.c_str(), ZIP_TRUNCATE | ZIP_CREATE, &err);
    if (!za_) throw std::runtime_error("zip_open failed");
  }
  ~ZipBuilder() {
    if (za_) zip_discard(za_);
    ::unlink(path_.c_str());
  }

  // Adds a file; `unix_mode` (e.g. S_IFREG | 0755) goes into the external attributes when set.
  ZipBuilder& File(const std::string& name, const std::string& content, mode_t unix_mode = 0,
                   int32_t method = ZIP_CM_DEFLATE) {
    contents_.push_back(content);  // libzip reads the buffer at zip_close time
    zip_source_t* s = zip_source_buffer(za_, contents_.back().data(), contents_.back().size(), 0);
    return AddSource(name, s, unix_mode, method, /*level=*/1);  // fast: tests build many zips
  }
  ZipBuilder& Dir(const std::string& name) {
    if (zip_dir_add(za_, name.c_str(), ZIP_FL_ENC_UTF_8) < 0) throw std::runtime_error(zip_strerror(za_));
    return *this;
  }
  // An entry whose data is produced by a callback, `size` bytes of `fill`, never held in memory.
  ZipBuilder& Stream(const std::string& name, uint64_t size, char fill, int32_t method = ZIP_CM_DEFLATE) {
    auto* st = new StreamState{size, 0, fill};
    zip_source_t* s = zip_source_function(za_, &StreamCallback, st);
    if (!s) throw std::runtime_error("zip_source_function");
    return AddSource(name, s, 0, method, /*level=*/1);
  }
  ZipBuilder& Symlink(const std::string& name, const std::string& target) {
    return File(name, target, S_IFLNK | 0777, ZIP_CM_STORE);
  }

  std::string Bytes() {
    if (zip_close(za_) != 0) throw std::runtime_error(std::string("zip_close: ") + zip_strerror(za_));
    za_ = nullptr;
    return ReadFile(path_);
  }

 private:
  struct StreamState {
    uint64_t size, done;
    char fill;
  };
  static zip_int64_t StreamCallback(void* ud, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
    auto* st = static_cast<StreamState*>(ud);
    switch (cmd) {
      case ZIP_SOURCE_OPEN:
        st->done = 0;
        return 0;
      case ZIP_SOURCE_READ: {
        uint64_t n = std::min<uint64_t>(len, st->size - st->done);
        std::memset(data, st->fill, n);
        st->done += n;
        return static_cast<zip_int64_t>(n);
      }
      case ZIP_SOURCE_CLOSE:
        return 0;
      case ZIP_SOURCE_STAT: {
        auto* zs = static_cast<zip_stat_t*>(data);
        zip_stat_init(zs);
        zs->size = st->size;
        zs->valid |= ZIP_STAT_SIZE;
        return sizeof(zip_stat_t);
      }
      case ZIP_SOURCE_ERROR:
        return 2 * sizeof(int);
      case ZIP_SOURCE_FREE:
        delete st;
        return 0;
      case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                              ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
      default:
        return -1;
    }
  }

  ZipBuilder& AddSource(const std::string& name, zip_source_t* s, mode_t unix_mode, int32_t method,
                        uint32_t level = 0) {
    if (!s) throw std::runtime_error("zip source");
    zip_int64_t idx = zip_file_add(za_, name.c_str(), s, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(s);
      throw std::runtime_error(std::string("zip_file_add ") + name + ": " + zip_strerror(za_));
    }
    zip_set_file_compression(za_, static_cast<zip_uint64_t>(idx), method, level);
    if (unix_mode != 0) {
      zip_file_set_external_attributes(za_, static_cast<zip_uint64_t>(idx), 0, ZIP_OPSYS_UNIX,
                                       static_cast<zip_uint32_t>(unix_mode) << 16);
    }
    return *this;
  }

  std::string path_;
  zip_t* za_ = nullptr;
  std::list<std::string> contents_;  // stable addresses: libzip reads them at zip_close
};

// Replaces every occurrence of `from` with `to` (same length) in raw archive bytes: how the
// tests make names libzip will not write (duplicates, NUL bytes).
inline std::string PatchAll(std::string bytes, const std::string& from, const std::string& to) {
  if (from.size() != to.size()) throw std::logic_error("PatchAll needs equal lengths");
  for (size_t p = bytes.find(from); p != std::string::npos; p = bytes.find(from, p + to.size())) {
    bytes.replace(p, from.size(), to);
  }
  return bytes;
}

// A small package with a 300 MB entry of zeros (about 300 KB compressed), built once per test
// run and streamed through a source callback so the test never holds 300 MB in memory.
inline const std::string& BombZip() {
  static const std::string zip = [] {
    ZipBuilder b;
    b.File("app.py", "1").Stream("zeros.bin", 300ull << 20, '\0');
    return b.Bytes();
  }();
  return zip;
}

}  // namespace geysir::control::testing
