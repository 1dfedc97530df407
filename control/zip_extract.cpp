// Safe zip extraction; the threat list and the guarantees are in zip_extract.h.
//
// Order of work: (1) cheap checks on the whole archive (size, libzip's consistency check, a
// raw scan of the central directory for NUL bytes in names, which libzip would silently turn
// into spaces), (2) every entry's metadata validated and the path set built, before a single
// byte is written, (3) streaming decompression with actual byte counts, (4) permissions made
// read-only bottom-up. Any failure removes the destination.
#include "control/zip_extract.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "base/unique_fd.h"

namespace geysir::control {
namespace {

constexpr const char* kUnzipFailed = "Could not unzip uploaded file. Please check your file, then try to upload again.";

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }  // read-only: never write anything back
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
struct ZipSourceCloser {
  void operator()(zip_source_t* s) const { zip_source_free(s); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;
using ZipSourcePtr = std::unique_ptr<zip_source_t, ZipSourceCloser>;

// A refusal already in Lambda's words ("Could not unzip uploaded file. …", "Unzipped size must
// be smaller than …"): the API answers it as it stands.
Status Hostile(const std::string& why) { return Status::Invalid(why); }
// One of Geysir's own refusals ("Refusing the zip: …"), introduced as Lambda introduces an
// unusable upload, so every message of this file reaches the client unchanged.
Status Refuse(const std::string& why) { return Status::Invalid("Could not unzip uploaded file: " + why); }

uint16_t Le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// libzip replaces NUL bytes inside stored names with spaces, which would quietly turn a hostile
// "a\0.py" into a different, legal name. Scan the central directory ourselves and refuse such
// names. Archives we cannot walk here (zip64, prepended data) are left to libzip's checks.
Status ScanRawNames(std::string_view zip) {
  const auto* d = reinterpret_cast<const unsigned char*>(zip.data());
  const size_t n = zip.size();
  if (n < 22) return Status::Ok();
  const size_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (size_t eocd = n - 22 + 1; eocd-- > lowest;) {
    if (Le32(d + eocd) != 0x06054b50) continue;
    const uint16_t entries = Le16(d + eocd + 10);
    const uint32_t cd_offset = Le32(d + eocd + 16);
    if (entries == 0xffff || cd_offset == 0xffffffff) return Status::Ok();  // zip64
    size_t p = cd_offset;
    for (uint32_t i = 0; i < entries; ++i) {
      if (p + 46 > n || Le32(d + p) != 0x02014b50) return Status::Ok();
      const size_t name_len = Le16(d + p + 28), extra = Le16(d + p + 30), comment = Le16(d + p + 32);
      if (p + 46 + name_len > n) return Status::Ok();
      if (std::memchr(d + p + 46, 0, name_len) != nullptr) {
        return Refuse("Refusing the zip: an entry name contains a NUL byte");
      }
      p += 46 + name_len + extra + comment;
    }
    return Status::Ok();
  }
  return Status::Ok();
}

enum class Kind { kFile, kDir };

struct Entry {
  zip_uint64_t index;
  std::string path;  // normalised, relative, no trailing slash
  Kind kind;
  bool exec = false;
  uint64_t comp_size = 0;
};

// Validates one entry name and returns its normalised relative path (may be "" for "./").
Result<std::string> NormaliseName(const std::string& name) {
  auto quoted = [&] {
    std::string q;
    for (char c : name.substr(0, 200)) q.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
    return "\"" + q + "\"";
  };
  if (name.empty()) return Refuse("Refusing the zip: an entry has an empty name");
  if (name.size() > 4096) return Refuse("Refusing the zip: an entry name is longer than 4096 bytes");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\\') return Refuse("Refusing the zip: entry " + quoted() + " contains a backslash");
    if (u < 0x20 || u == 0x7f) return Refuse("Refusing the zip: entry " + quoted() + " contains a control character");
  }
  if (name[0] == '/') return Refuse("Refusing the zip: entry " + quoted() + " has an absolute path");
  std::string out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    std::string comp = name.substr(start, end - start);
    start = end + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return Refuse("Refusing the zip: entry " + quoted() + " contains a \"..\" path component");
    if (comp.size() > 255) return Refuse("Refusing the zip: entry " + quoted() + " has a path component over 255 bytes");
    if (!out.empty()) out.push_back('/');
    out += comp;
  }
  return out;
}

std::string LibzipError(zip_t* z) { return zip_strerror(z); }

int MkdirIfMissing(const std::string& p) {
  if (::mkdir(p.c_str(), 0700) == 0) return 0;
  if (errno == EEXIST) {
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    errno = EEXIST;
  }
  return -1;
}

Status Extract(std::string_view zip, const std::string& dest, const ZipLimits& limits, ExtractStats& stats) {
  if (zip.size() > limits.max_zip_bytes) {
    return Status::Error(Code::kResourceExhausted, "Zipped size must be smaller than " +
                                                       std::to_string(limits.max_zip_bytes) + " bytes");
  }
  GEYSIR_RETURN_IF_ERROR(ScanRawNames(zip));

  zip_error_t zerr;
  zip_error_init(&zerr);
  ZipSourcePtr src(zip_source_buffer_create(zip.data(), zip.size(), 0, &zerr));
  if (!src) {
    zip_error_fini(&zerr);
    return Status::Internal("zip_source_buffer_create failed");
  }
  ZipPtr za(zip_open_from_source(src.get(), ZIP_RDONLY | ZIP_CHECKCONS, &zerr));
  if (!za) {
    const bool duplicate = zip_error_code_zip(&zerr) == ZIP_ER_EXISTS;
    std::string why = zip_error_strerror(&zerr);
    zip_error_fini(&zerr);
    // libzip itself refuses an archive listing one name twice.
    if (duplicate) return Refuse("Refusing the zip: it contains a duplicate entry name");
    return Hostile(std::string(kUnzipFailed) + " (" + why + ")");
  }
  (void)src.release();  // the archive owns the source now
  zip_error_fini(&zerr);

  const zip_int64_t count = zip_get_num_entries(za.get(), 0);
  if (count < 0) return Hostile(std::string(kUnzipFailed) + " (" + LibzipError(za.get()) + ")");
  if (count == 0) return Hostile(std::string(kUnzipFailed) + " (the archive is empty)");
  if (static_cast<uint64_t>(count) > limits.max_entries) {
    return Refuse("Refusing the zip: it has " + std::to_string(count) + " entries; at most " +
                   std::to_string(limits.max_entries) + " are allowed");
  }

  // ---- pass 1: metadata only ----
  std::vector<Entry> entries;
  std::map<std::string, Kind> paths;  // every path, explicit or implied by a parent, and its kind
  std::map<std::string, bool> explicit_seen;
  uint64_t declared_total = 0;
  for (zip_int64_t i = 0; i < count; ++i) {
    const auto idx = static_cast<zip_uint64_t>(i);
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(za.get(), idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_NAME)) {
      return Hostile(std::string(kUnzipFailed) + " (" + LibzipError(za.get()) + ")");
    }
    const std::string raw = zs.name;
    auto norm = NormaliseName(raw);
    if (!norm.ok()) return norm.status();

    zip_uint8_t opsys = 0;
    zip_uint32_t attr = 0;
    if (zip_file_get_external_attributes(za.get(), idx, 0, &opsys, &attr) != 0) {
      return Hostile(std::string(kUnzipFailed) + " (" + LibzipError(za.get()) + ")");
    }
    Kind kind = (!raw.empty() && raw.back() == '/') ? Kind::kDir : Kind::kFile;
    bool exec = false;
    if (opsys == ZIP_OPSYS_UNIX) {
      const mode_t mode = static_cast<mode_t>(attr >> 16);
      switch (mode & S_IFMT) {
        case 0:  // no type recorded: trust the trailing slash
          break;
        case S_IFREG:
          if (kind == Kind::kDir) return Refuse("Refusing the zip: entry \"" + raw + "\" is marked both file and directory");
          break;
        case S_IFDIR:
          kind = Kind::kDir;
          break;
        case S_IFLNK:
          return Refuse("Refusing the zip: entry \"" + raw +
                         "\" is a symbolic link; symlinks are not supported in deployment packages");
        default:
          return Refuse("Refusing the zip: entry \"" + raw + "\" is a device, FIFO or socket, not a regular file");
      }
      exec = (mode & 0111) != 0;
    }
    if ((zs.valid & ZIP_STAT_ENCRYPTION_METHOD) && zs.encryption_method != ZIP_EM_NONE) {
      return Refuse("Refusing the zip: entry \"" + raw + "\" is encrypted");
    }
    if ((zs.valid & ZIP_STAT_COMP_METHOD) && !zip_compression_method_supported(zs.comp_method, 0)) {
      return Refuse("Refusing the zip: entry \"" + raw + "\" uses an unsupported compression method");
    }
    const std::string& path = norm.value();
    if (path.empty()) {
      if (kind == Kind::kDir) continue;  // "./" names the root itself
      return Refuse("Refusing the zip: entry \"" + raw + "\" names no file");
    }
    // Parents are implied directories; a parent that is a file, or a path listed twice, is an
    // ambiguity we refuse rather than resolve by "last one wins".
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
      auto [it, inserted] = paths.emplace(path.substr(0, slash), Kind::kDir);
      if (!inserted && it->second != Kind::kDir) {
        return Refuse("Refusing the zip: \"" + it->first + "\" is both a file and a directory");
      }
    }
    if (explicit_seen.count(path)) return Refuse("Refusing the zip: duplicate entry \"" + path + "\"");
    explicit_seen[path] = true;
    auto [it, inserted] = paths.emplace(path, kind);
    if (!inserted && (it->second != kind || kind == Kind::kFile)) {
      return Refuse("Refusing the zip: \"" + path + "\" is both a file and a directory");
    }
    if (kind == Kind::kFile && (zs.valid & ZIP_STAT_SIZE)) {
      declared_total += zs.size;
      if (declared_total > limits.max_unzipped_bytes) {
        return Hostile("Unzipped size must be smaller than " + std::to_string(limits.max_unzipped_bytes) + " bytes");
      }
    }
    entries.push_back(Entry{idx, path, kind, exec, (zs.valid & ZIP_STAT_COMP_SIZE) ? zs.comp_size : 0});
  }

  // ---- pass 2: write ----
  if (::mkdir(dest.c_str(), 0700) != 0) return Status::Sys(errno, "mkdir " + dest);
  const bool as_root = ::geteuid() == 0;
  for (const auto& [path, kind] : paths) {  // std::map order puts parents before children
    if (kind != Kind::kDir) continue;
    if (MkdirIfMissing(dest + "/" + path) != 0) return Status::Sys(errno, "mkdir " + dest + "/" + path);
  }
  std::vector<char> buf(1 << 16);
  for (const Entry& e : entries) {
    if (e.kind != Kind::kFile) continue;
    const std::string out = dest + "/" + e.path;
    UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return Status::Sys(errno, "create " + out);
    ZipFilePtr zf(zip_fopen_index(za.get(), e.index, 0));
    if (!zf) return Hostile(std::string(kUnzipFailed) + " (" + e.path + ": " + LibzipError(za.get()) + ")");
    uint64_t written = 0;
    for (;;) {
      const zip_int64_t r = zip_fread(zf.get(), buf.data(), buf.size());
      if (r < 0) return Hostile(std::string(kUnzipFailed) + " (" + e.path + ": " + zip_file_strerror(zf.get()) + ")");
      if (r == 0) break;
      written += static_cast<uint64_t>(r);
      stats.bytes += static_cast<uint64_t>(r);
      if (stats.bytes > limits.max_unzipped_bytes) {
        return Hostile("Unzipped size must be smaller than " + std::to_string(limits.max_unzipped_bytes) + " bytes");
      }
      if (written > limits.ratio_floor_bytes && written / std::max<uint64_t>(e.comp_size, 1) > limits.max_ratio) {
        return Refuse("Refusing the zip: entry \"" + e.path + "\" expands more than " +
                       std::to_string(limits.max_ratio) + " times (a zip bomb?)");
      }
      const char* p = buf.data();
      size_t left = static_cast<size_t>(r);
      while (left > 0) {
        ssize_t w = ::write(fd.get(), p, left);
        if (w < 0) {
          if (errno == EINTR) continue;
          return Status::Sys(errno, "write " + out);
        }
        p += w;
        left -= static_cast<size_t>(w);
      }
    }
    // zip_fclose reports a CRC mismatch detected at end of stream.
    const int close_err = zip_fclose(zf.release());
    if (close_err != 0) {
      zip_error_t ze;
      zip_error_init_with_code(&ze, close_err);
      std::string why = zip_error_strerror(&ze);
      zip_error_fini(&ze);
      return Hostile(std::string(kUnzipFailed) + " (" + e.path + ": " + why + ")");
    }
    if (as_root && ::fchown(fd.get(), 0, 0) != 0) return Status::Sys(errno, "chown " + out);
    if (::fchmod(fd.get(), e.exec ? 0555 : 0444) != 0) return Status::Sys(errno, "chmod " + out);
    if (::close(fd.Release()) != 0) return Status::Sys(errno, "close " + out);
    stats.files++;
  }

  // ---- pass 3: directories read-only, deepest first so we can still create inside until the end ----
  std::vector<std::string> dirs;
  for (const auto& [path, kind] : paths) {
    if (kind == Kind::kDir) dirs.push_back(dest + "/" + path);
  }
  std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  dirs.push_back(dest);
  for (const std::string& d : dirs) {
    if (as_root && ::lchown(d.c_str(), 0, 0) != 0) return Status::Sys(errno, "chown " + d);
    if (::chmod(d.c_str(), 0555) != 0) return Status::Sys(errno, "chmod " + d);
  }
  stats.dirs = dirs.size() - 1;
  return Status::Ok();
}

int MakeWritable(const char* path, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_D || type == FTW_DNR) ::chmod(path, (st->st_mode & 07777) | 0700);
  return 0;
}

int RemoveOne(const char* path, const struct stat*, int type, struct FTW*) {
  int rc = (type == FTW_DP || type == FTW_D || type == FTW_DNR) ? ::rmdir(path) : ::unlink(path);
  return rc == 0 || errno == ENOENT ? 0 : errno;
}

}  // namespace

Result<ExtractStats> ExtractZip(std::string_view zip, const std::string& dest_dir, const ZipLimits& limits) {
  struct stat st;
  // Checked up front so that a failure below never deletes a directory we did not create.
  if (::lstat(dest_dir.c_str(), &st) == 0) return Status::Error(Code::kAlreadyExists, "extract: " + dest_dir + " exists");
  ExtractStats stats;
  Status s = Extract(zip, dest_dir, limits, stats);
  if (!s.ok()) {
    Status rm = RemoveTree(dest_dir);
    if (!rm.ok()) return s.Wrap("(cleanup also failed: " + rm.message() + ")");
    return s;
  }
  return stats;
}

Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Sys(errno, "stat " + path);
  }
  if (S_ISDIR(st.st_mode)) {
    // Pre-order pass first: a read-only directory must become writable before its entries can
    // be unlinked (root does not need it, a non-root test run does).
    ::nftw(path.c_str(), MakeWritable, 32, FTW_PHYS);
    int rc = ::nftw(path.c_str(), RemoveOne, 32, FTW_PHYS | FTW_DEPTH);
    if (rc != 0) return Status::Sys(rc > 0 ? rc : errno, "remove " + path);
    return Status::Ok();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::Sys(errno, "unlink " + path);
  return Status::Ok();
}

}  // namespace geysir::control
