// Content-addressed code store; layout, atomicity and error policy are described in code_store.h.
#include "control/code_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "base/base64.h"
#include "base/log.h"
#include "base/random.h"
#include "base/strings.h"
#include "base/unique_fd.h"

namespace geysir::control {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status MkdirMode(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + path);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::Sys(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return Status::Error(Code::kInternal, path + " exists and is not a directory");
  // mkdir applies the umask; set the mode we mean.
  if ((st.st_mode & 07777) != mode && ::chmod(path.c_str(), mode) != 0) return Status::Sys(errno, "chmod " + path);
  return Status::Ok();
}

Status FsyncPath(const std::string& path, bool directory) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (directory ? O_DIRECTORY : 0)));
  if (!fd) return Status::Sys(errno, "open " + path + " for fsync");
  if (::fsync(fd.get()) != 0) return Status::Sys(errno, "fsync " + path);
  return Status::Ok();
}

// nftw has no user-data pointer; the first failure of a walk is kept here. The code store is
// used from one thread (see the header), so a thread_local is plenty.
thread_local int g_fsync_errno = 0;

int FsyncOne(const char* path, const struct stat*, int type, struct FTW*) {
  const bool dir = type == FTW_D || type == FTW_DP;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (dir ? O_DIRECTORY : 0));
  if (fd < 0 || ::fsync(fd) != 0) {
    g_fsync_errno = errno;
    if (fd >= 0) ::close(fd);
    return 1;  // stop the walk
  }
  ::close(fd);
  return 0;
}

// Makes the whole staged tree durable. One syncfs(2) on the file system holding it writes back
// every dirty file and directory in a single journal commit; fsync'ing 500 files one by one
// costs one commit each (measured: seconds instead of tens of milliseconds for a 500-file
// package on ext4). Since Linux 5.8 syncfs reports write-back errors, like fsync. Falls back
// to per-file fsync where syncfs is unavailable.
Status FsyncTree(const std::string& root) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + root);
  if (::syncfs(fd.get()) == 0) return Status::Ok();
  if (errno != ENOSYS) return Status::Sys(errno, "syncfs " + root);
  g_fsync_errno = 0;
  int rc = ::nftw(root.c_str(), FsyncOne, 32, FTW_PHYS | FTW_DEPTH);
  if (rc != 0) return Status::Sys(g_fsync_errno ? g_fsync_errno : errno, "fsync tree " + root);
  return Status::Ok();
}

// Writes without fsync; the caller syncs (FsyncTree) before the file is renamed into place.
Status WriteFile(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return Status::Sys(errno, "create " + path);
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t w = ::write(fd.get(), p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::Sys(errno, "write " + path);
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::close(fd.Release()) != 0) return Status::Sys(errno, "close " + path);
  return Status::Ok();
}

std::string Sha256Raw(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace

std::string Sha256Hex(std::string_view data) { return HexEncode(Sha256Raw(data)); }

std::string Sha256Base64(std::string_view data) { return Base64Encode(Sha256Raw(data)); }

Result<CodeStore> CodeStore::Open(const std::string& data_dir, ZipLimits limits) {
  CodeStore cs;
  cs.data_dir_ = data_dir;
  cs.code_root_ = data_dir + "/code";
  cs.blobs_dir_ = cs.code_root_ + "/blobs";
  cs.tmp_dir_ = data_dir + "/tmp";
  cs.limits_ = limits;
  // code/ must be traversable by the unprivileged function uids (they read their own tree);
  // the blobs and staging areas are control's alone.
  GEYSIR_RETURN_IF_ERROR(MkdirMode(cs.code_root_, 0755));
  GEYSIR_RETURN_IF_ERROR(MkdirMode(cs.blobs_dir_, 0700));
  GEYSIR_RETURN_IF_ERROR(MkdirMode(cs.tmp_dir_, 0700));
  // Leftovers of a Put interrupted by a crash: never referenced, safe to drop.
  DirPtr dir(::opendir(cs.tmp_dir_.c_str()));
  if (!dir) return Status::Sys(errno, "opendir " + cs.tmp_dir_);
  std::vector<std::string> leftovers;
  while (struct dirent* de = ::readdir(dir.get())) {
    std::string name = de->d_name;
    if (name != "." && name != "..") leftovers.push_back(cs.tmp_dir_ + "/" + name);
  }
  for (const std::string& p : leftovers) {
    GEYSIR_RETURN_IF_ERROR(RemoveTree(p));
  }
  if (!leftovers.empty()) {
    log::Info("code_store_tmp_cleaned", {{"dir", cs.tmp_dir_}, {"entries", leftovers.size()}});
  }
  return cs;
}

std::string CodeStore::DirFor(const std::string& hex) const { return code_root_ + "/" + hex; }
std::string CodeStore::BlobPathFor(const std::string& hex) const { return blobs_dir_ + "/" + hex + ".zip"; }

bool CodeStore::Has(const std::string& hex) const {
  if (!IsHex64(hex)) return false;
  struct stat st;
  return ::lstat(DirFor(hex).c_str(), &st) == 0 && S_ISDIR(st.st_mode) && ::lstat(BlobPathFor(hex).c_str(), &st) == 0 &&
         S_ISREG(st.st_mode);
}

Result<StoredCode> CodeStore::Put(std::string_view zip) {
  if (zip.size() > limits_.max_zip_bytes) {
    return Status::Error(Code::kResourceExhausted,
                         "Zipped size must be smaller than " + std::to_string(limits_.max_zip_bytes) + " bytes");
  }
  StoredCode out;
  const std::string raw = Sha256Raw(zip);
  out.sha256_hex = Sha256Hex(zip);
  out.sha256_b64 = Base64Encode(raw);
  out.size = zip.size();
  out.dir = DirFor(out.sha256_hex);
  out.blob_path = BlobPathFor(out.sha256_hex);
  if (Has(out.sha256_hex)) {
    out.reused = true;
    return out;
  }

  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++staging_seq_) + "-" + RandomHex(6);
  const std::string staging = tmp_dir_ + "/unpack-" + tag;
  const std::string blob_tmp = tmp_dir_ + "/blob-" + tag;
  // Whatever fails below, nothing may remain in tmp/ (nor, by construction, in code/).
  auto fail = [&](Status s) -> Status {
    Status a = RemoveTree(staging);
    Status b = RemoveTree(blob_tmp);
    if (!a.ok()) log::Warn("code_store_cleanup_failed", {{"path", staging}, {"error", a.ToString()}});
    if (!b.ok()) log::Warn("code_store_cleanup_failed", {{"path", blob_tmp}, {"error", b.ToString()}});
    return s;
  };

  auto stats = ExtractZip(zip, staging, limits_);
  if (!stats.ok()) return fail(stats.status());
  // The blob goes to tmp/ beside the tree so one file-system sync makes both durable.
  if (Status s = WriteFile(blob_tmp, zip, 0600); !s.ok()) return fail(s);
  if (Status s = FsyncTree(tmp_dir_); !s.ok()) return fail(s);

  // The blob is renamed first: once code/<hex> exists (the "committed" marker), its blob must too.
  if (::rename(blob_tmp.c_str(), out.blob_path.c_str()) != 0) return fail(Status::Sys(errno, "rename " + blob_tmp));
  if (Status s = FsyncPath(blobs_dir_, true); !s.ok()) return fail(s);

  // Moving a directory to a new parent rewrites its "..", which needs write permission on it
  // unless we are root; lend it for the rename only.
  const bool as_root = ::geteuid() == 0;
  if (!as_root) ::chmod(staging.c_str(), 0755);
  if (::rename(staging.c_str(), out.dir.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) {
      // Already unpacked (e.g. a tree whose blob was missing): the content is the same by hash.
      out.reused = true;
      (void)fail(Status::Ok());
    } else {
      return fail(Status::Sys(errno, "rename " + staging + " to " + out.dir));
    }
  }
  if (!as_root) ::chmod(out.dir.c_str(), 0555);
  if (Status s = FsyncPath(code_root_, true); !s.ok()) return s;
  log::Info("code_stored", {{"sha256", out.sha256_hex},
                            {"zip_bytes", out.size},
                            {"files", stats->files},
                            {"unzipped_bytes", stats->bytes},
                            {"reused", out.reused}});
  return out;
}

Result<std::string> CodeStore::BlobPath(const std::string& hex) const {
  if (!Has(hex)) return Status::NotFound("no stored code with sha256 " + hex);
  return BlobPathFor(hex);
}

Result<std::string> CodeStore::ReadBlob(const std::string& hex) const {
  if (!Has(hex)) return Status::NotFound("no stored code with sha256 " + hex);
  const std::string path = BlobPathFor(hex);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::Sys(errno, "stat " + path);
  std::string data;
  data.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < data.size()) {
    ssize_t r = ::read(fd.get(), data.data() + got, data.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::Sys(errno, "read " + path);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  data.resize(got);
  return data;
}

Result<std::set<std::string>> CodeStore::List() const {
  DirPtr dir(::opendir(code_root_.c_str()));
  if (!dir) return Status::Sys(errno, "opendir " + code_root_);
  std::set<std::string> out;
  while (struct dirent* de = ::readdir(dir.get())) {
    std::string name = de->d_name;
    if (IsHex64(name)) out.insert(name);
  }
  return out;
}

Status CodeStore::Remove(const std::string& hex) {
  if (!IsHex64(hex)) return Status::Invalid("not a sha256 hex digest: " + hex);
  GEYSIR_RETURN_IF_ERROR(RemoveTree(DirFor(hex)));
  GEYSIR_RETURN_IF_ERROR(RemoveTree(BlobPathFor(hex)));
  return Status::Ok();
}

Result<size_t> CodeStore::CollectGarbage(const std::set<std::string>& referenced) {
  auto trees = List();
  if (!trees.ok()) return trees.status();
  std::set<std::string> all = trees.value();
  // Blobs whose tree is gone (an interrupted Remove) are garbage too.
  DirPtr dir(::opendir(blobs_dir_.c_str()));
  if (!dir) return Status::Sys(errno, "opendir " + blobs_dir_);
  while (struct dirent* de = ::readdir(dir.get())) {
    std::string name = de->d_name;
    if (name.size() == 68 && name.compare(64, 4, ".zip") == 0 && IsHex64(name.substr(0, 64))) all.insert(name.substr(0, 64));
  }
  size_t removed = 0;
  for (const std::string& hex : all) {
    if (referenced.count(hex)) continue;
    GEYSIR_RETURN_IF_ERROR(Remove(hex));
    ++removed;
  }
  if (removed > 0) log::Info("code_store_gc", {{"removed", removed}});
  return removed;
}

}  // namespace geysir::control
