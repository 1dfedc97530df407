#include "cli/package.h"

#include <sys/stat.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

namespace geysir::cli {
namespace {

namespace fs = std::filesystem;

// Every entry gets this modification time (2020-01-01T00:00:00Z) so zipping is reproducible.
constexpr time_t kFixedMtime = 1577836800;
constexpr size_t kMaxFiles = 100'000;

struct ZipDiscard {
  void operator()(zip_t* z) const { zip_discard(z); }
};
using ZipArchive = std::unique_ptr<zip_t, ZipDiscard>;

// zip_source_t is reference counted; this owner holds one reference.
struct ZipSourceFree {
  void operator()(zip_source_t* s) const { zip_source_free(s); }
};
using ZipSource = std::unique_ptr<zip_source_t, ZipSourceFree>;

struct ZipErrorFini {
  void operator()(zip_error_t* e) const { zip_error_fini(e); }
};

std::string ZipError(zip_t* z) { return zip_strerror(z); }

struct Entry {
  std::string relative;  // "pkg/mod.py"
  fs::path full;
  mode_t mode;
  uint64_t size;
};

Status Collect(const fs::path& root, std::vector<Entry>* out) {
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return Status::Sys(ec.value(), "read directory " + root.string(), Code::kInvalidArgument);
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status::Sys(ec.value(), "read directory under " + root.string(), Code::kInvalidArgument);
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    bool is_dir = it->is_directory(ec);
    if (is_dir) {
      if (name == "__pycache__" || name == ".git") it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) {
      // A dangling symlink: nothing to package, and the server would refuse the link anyway.
      if (errno == ENOENT && it->is_symlink(ec)) continue;
      return Status::Sys(errno, "stat " + p.string(), Code::kInvalidArgument);
    }
    if (!S_ISREG(st.st_mode)) continue;  // sockets, fifos, devices
    if (out->size() >= kMaxFiles) {
      return Status::Error(Code::kResourceExhausted, root.string() + " holds more than " +
                                                         std::to_string(kMaxFiles) + " files");
    }
    // lexically: fs::relative would resolve symlinks and name a link after its target.
    out->push_back(Entry{p.lexically_relative(root).generic_string(), p, st.st_mode & 07777,
                         static_cast<uint64_t>(st.st_size)});
  }
  std::sort(out->begin(), out->end(), [](const Entry& a, const Entry& b) { return a.relative < b.relative; });
  return Status::Ok();
}

}  // namespace

std::string HumanBytes(uint64_t n) {
  char buf[32];
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else if (n < 1024ull * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(n) / 1024);
  } else if (n < 1024ull * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1024 * 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(n) / (1024.0 * 1024 * 1024));
  }
  return buf;
}

Result<Package> ZipDirectory(const std::string& dir) {
  std::vector<Entry> entries;
  GEYSIR_RETURN_IF_ERROR(Collect(fs::path(dir), &entries));
  if (entries.empty()) return Status::Invalid(dir + " has no files to deploy");

  Package pkg;
  pkg.from_directory = true;
  for (const auto& e : entries) pkg.unzipped_bytes += e.size;
  if (pkg.unzipped_bytes > kMaxUnzippedBytes) {
    return Status::Error(Code::kResourceExhausted,
                         dir + " holds " + HumanBytes(pkg.unzipped_bytes) +
                             "; Lambda's limit for unzipped code is 250 MB");
  }

  zip_error_t err;
  zip_error_init(&err);
  std::unique_ptr<zip_error_t, ZipErrorFini> err_owner(&err);
  ZipSource buffer(zip_source_buffer_create(nullptr, 0, 0, &err));
  if (!buffer) return Status::Internal(std::string("zip buffer: ") + zip_error_strerror(&err));
  // zip_open_from_source takes over one reference on success; keep ours to read the bytes back.
  zip_source_keep(buffer.get());
  ZipArchive archive(zip_open_from_source(buffer.get(), ZIP_TRUNCATE, &err));
  if (!archive) {
    zip_source_free(buffer.get());  // the reference zip_open_from_source did not take
    return Status::Internal(std::string("zip open: ") + zip_error_strerror(&err));
  }

  for (const auto& e : entries) {
    zip_source_t* file = zip_source_file(archive.get(), e.full.c_str(), 0, -1);
    if (file == nullptr) return Status::Internal("zip " + e.full.string() + ": " + ZipError(archive.get()));
    zip_int64_t index = zip_file_add(archive.get(), e.relative.c_str(), file, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(file);
      return Status::Internal("zip add " + e.relative + ": " + ZipError(archive.get()));
    }
    auto idx = static_cast<zip_uint64_t>(index);
    if (zip_file_set_external_attributes(archive.get(), idx, 0, ZIP_OPSYS_UNIX,
                                         static_cast<zip_uint32_t>(S_IFREG | e.mode) << 16) != 0 ||
        zip_file_set_mtime(archive.get(), idx, kFixedMtime, 0) != 0) {
      return Status::Internal("zip attributes " + e.relative + ": " + ZipError(archive.get()));
    }
  }
  // zip_close reads the files and writes the archive into `buffer`; on success it frees the
  // archive, so release our owner first.
  zip_t* raw = archive.release();
  if (zip_close(raw) != 0) {
    std::string why = ZipError(raw);
    zip_discard(raw);
    return Status::Internal("writing the zip: " + why);
  }

  if (zip_source_open(buffer.get()) != 0) return Status::Internal("reading the zip back failed");
  zip_source_seek(buffer.get(), 0, SEEK_END);
  zip_int64_t size = zip_source_tell(buffer.get());
  zip_source_seek(buffer.get(), 0, SEEK_SET);
  if (size < 0) {
    zip_source_close(buffer.get());
    return Status::Internal("reading the zip back failed");
  }
  pkg.zip.resize(static_cast<size_t>(size));
  zip_int64_t got = size == 0 ? 0 : zip_source_read(buffer.get(), pkg.zip.data(), static_cast<zip_uint64_t>(size));
  zip_source_close(buffer.get());
  if (got != size) return Status::Internal("reading the zip back failed");
  pkg.file_count = entries.size();
  if (pkg.zip.size() > kMaxZippedBytes) {
    return Status::Error(Code::kResourceExhausted, dir + " zips to " + HumanBytes(pkg.zip.size()) +
                                                       "; Lambda's limit for a direct upload is 50 MB");
  }
  return pkg;
}

Result<Package> ReadZipFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Sys(errno, "open " + path, Code::kInvalidArgument);
  std::ostringstream ss;
  ss << in.rdbuf();
  Package pkg;
  pkg.zip = ss.str();
  if (pkg.zip.size() > kMaxZippedBytes) {
    return Status::Error(Code::kResourceExhausted,
                         path + " is " + HumanBytes(pkg.zip.size()) + "; Lambda's limit for a direct upload is 50 MB");
  }
  // Open it once to count entries and fail early on something that is not a zip at all.
  zip_error_t err;
  zip_error_init(&err);
  std::unique_ptr<zip_error_t, ZipErrorFini> err_owner(&err);
  ZipSource src(zip_source_buffer_create(pkg.zip.data(), pkg.zip.size(), 0, &err));
  if (!src) return Status::Internal(std::string("zip buffer: ") + zip_error_strerror(&err));
  zip_source_keep(src.get());
  ZipArchive archive(zip_open_from_source(src.get(), ZIP_RDONLY | ZIP_CHECKCONS, &err));
  if (!archive) {
    zip_source_free(src.get());
    return Status::Invalid(path + " is not a valid zip archive: " + zip_error_strerror(&err));
  }
  zip_int64_t n = zip_get_num_entries(archive.get(), 0);
  pkg.file_count = n > 0 ? static_cast<size_t>(n) : 0;
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE))
      pkg.unzipped_bytes += st.size;
  }
  return pkg;
}

Result<Package> PackagePath(const std::string& path) {
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec) return Status::Sys(ec.value(), path, Code::kInvalidArgument);
  if (fs::is_directory(status)) return ZipDirectory(path);
  if (fs::is_regular_file(status)) return ReadZipFile(path);
  return Status::Invalid(path + " is neither a directory nor a .zip file");
}

}  // namespace geysir::cli
