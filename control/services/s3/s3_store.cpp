// S3ObjectStore: see s3_store.h. Also implements the C++ API of s3_objects.h.
#include "control/services/s3/s3_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include <nlohmann/json.hpp>

#include "control/service.h"
#include "control/services/s3/s3_objects.h"
#include "control/store.h"
#include "net/http_server.h"
#include "base/random.h"
#include "base/strings.h"
#include "base/unique_fd.h"

namespace geysir::control::s3 {
namespace {

using nlohmann::json;

const std::vector<Migration> kSteps = {
    {1, "s3: buckets, objects, multipart uploads and parts",
     "CREATE TABLE s3_buckets ("
     "  name TEXT PRIMARY KEY,"
     "  region TEXT NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  tags TEXT"  // JSON [[key, value], ...]; NULL when no tag set was ever put
     ");"
     "CREATE TABLE s3_objects ("
     "  bucket TEXT NOT NULL REFERENCES s3_buckets(name),"
     "  key TEXT NOT NULL,"
     "  sha256 TEXT NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  etag TEXT NOT NULL,"
     "  last_modified_ms INTEGER NOT NULL,"
     "  parts_count INTEGER NOT NULL DEFAULT 0,"
     "  meta TEXT NOT NULL,"  // JSON {content_type, headers, checksums}
     "  PRIMARY KEY (bucket, key)"
     ") WITHOUT ROWID;"
     "CREATE INDEX s3_objects_by_blob ON s3_objects(sha256);"
     "CREATE TABLE s3_uploads ("
     "  upload_id TEXT PRIMARY KEY,"
     "  bucket TEXT NOT NULL REFERENCES s3_buckets(name),"
     "  key TEXT NOT NULL,"
     "  initiated_ms INTEGER NOT NULL,"
     "  checksum_algorithm TEXT NOT NULL,"
     "  meta TEXT NOT NULL"
     ");"
     "CREATE TABLE s3_parts ("
     "  upload_id TEXT NOT NULL REFERENCES s3_uploads(upload_id) ON DELETE CASCADE,"
     "  part_number INTEGER NOT NULL,"
     "  sha256 TEXT NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  etag TEXT NOT NULL,"
     "  last_modified_ms INTEGER NOT NULL,"
     "  checksums TEXT NOT NULL,"
     "  PRIMARY KEY (upload_id, part_number)"
     ");"
     "CREATE INDEX s3_parts_by_blob ON s3_parts(sha256);"},
};

constexpr uint64_t kMinPartSize = 5ull * 1024 * 1024;  // S3's minimum for all but the last part


// SHA-256 and MD5 of a stream, fed in pieces.
class Digests {
 public:
  Digests() : sha_(EVP_MD_CTX_new()), md5_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
    EVP_DigestInit_ex(md5_, EVP_md5(), nullptr);
  }
  ~Digests() {
    EVP_MD_CTX_free(sha_);
    EVP_MD_CTX_free(md5_);
  }
  Digests(const Digests&) = delete;
  Digests& operator=(const Digests&) = delete;
  void Update(std::string_view data) {
    EVP_DigestUpdate(sha_, data.data(), data.size());
    EVP_DigestUpdate(md5_, data.data(), data.size());
    size_ += data.size();
  }
  Blob Finish() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    Blob b;
    EVP_DigestFinal_ex(sha_, d, &n);
    b.sha256 = HexEncode(d, n);
    EVP_DigestFinal_ex(md5_, d, &n);
    b.md5_hex = HexEncode(d, n);
    b.size = size_;
    return b;
  }

 private:
  EVP_MD_CTX* sha_;
  EVP_MD_CTX* md5_;
  uint64_t size_ = 0;
};

Status MkdirIfMissing(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + path);
  return Status::Ok();
}

Status FsyncDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  if (::fsync(fd.get()) != 0) return Status::Sys(errno, "fsync " + path);
  return Status::Ok();
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Sys(errno, "write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

json MetaToJson(const ObjectMeta& m) {
  return json{{"content_type", m.content_type}, {"headers", m.headers}, {"checksums", m.checksums}};
}

ObjectMeta MetaFromJson(const std::string& text) {
  ObjectMeta m;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return m;
  m.content_type = j.value("content_type", m.content_type);
  if (j.contains("headers") && j["headers"].is_object()) m.headers = j["headers"].get<std::map<std::string, std::string>>();
  if (j.contains("checksums") && j["checksums"].is_object()) {
    m.checksums = j["checksums"].get<std::map<std::string, std::string>>();
  }
  return m;
}

constexpr const char* kObjectColumns = "bucket, key, sha256, size, etag, last_modified_ms, parts_count, meta";

Object ObjectFromRow(const Statement& s) {
  Object o;
  o.bucket = s.Text(0);
  o.key = s.Text(1);
  o.sha256 = s.Text(2);
  o.size = static_cast<uint64_t>(s.Int(3));
  o.etag = s.Text(4);
  o.last_modified_ms = s.Int(5);
  o.parts_count = static_cast<int>(s.Int(6));
  o.meta = MetaFromJson(s.Text(7));
  return o;
}

std::string StripQuotes(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return std::string(etag);
}

Result<std::string> NewUploadId() {
  return RandomHex(24);
}

// An S3 error: `code` S3's, `kind` the Code whose status FromStatus gives S3's.
Status S3Status(Code kind, const char* code, std::string message) {
  return Status::Error(kind, std::move(message)).WithAwsType(code);
}

Status NoSuchBucket() { return S3Status(Code::kNotFound, "NoSuchBucket", "The specified bucket does not exist"); }

// SQLite's DbError and nlohmann's exceptions (a malformed stored value) are this file's
// exception edges: each public operation converts them here, once, into kInternal worded as
// control's API boundary worded them when they escaped to it (S3 answers InternalError).
template <typename F>
auto Guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("internal error: ") + e.what());
  }
}

// The first key after every key that starts with `prefix` (for skipping a common prefix).
std::string PrefixSuccessor(std::string prefix) {
  while (!prefix.empty()) {
    auto c = static_cast<unsigned char>(prefix.back());
    if (c < 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;  // "" here means "no successor": the caller stops
}

}  // namespace

AwsError S3Error(int http_status, std::string code, std::string message) {
  return MakeAwsError(http_status, std::move(code), std::move(message));
}

Result<S3ObjectStore> S3ObjectStore::Open(Db& db, const std::string& data_dir) {
  try {
    db.MigrateTrack("s3", kSteps);
  } catch (const DbError& e) {
    return Status::Internal(std::string("S3's schema: ") + e.what());
  }
  std::string root = data_dir + "/s3";
  GEYSIR_RETURN_IF_ERROR(MkdirIfMissing(root, 0700));
  GEYSIR_RETURN_IF_ERROR(MkdirIfMissing(root + "/blobs", 0700));
  GEYSIR_RETURN_IF_ERROR(MkdirIfMissing(root + "/tmp", 0700));
  S3ObjectStore store(db, root + "/blobs", root + "/tmp");
  // Leftovers of writes a crash interrupted.
  if (DIR* d = ::opendir(store.tmp_dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") ::unlink((store.tmp_dir_ + "/" + name).c_str());
    }
    ::closedir(d);
  }
  GEYSIR_RETURN_IF_ERROR(Guarded([&] { return store.SweepBlobs(); }));
  return store;
}

// Removes blobs no row names: a crash between a blob's rename and its row's commit, or
// between a commit and the unlink of the blob it orphaned.
Status S3ObjectStore::SweepBlobs() {
  std::set<std::string> referenced;
  for (const char* sql : {"SELECT DISTINCT sha256 FROM s3_objects", "SELECT DISTINCT sha256 FROM s3_parts"}) {
    Statement s = db_->Prepare(sql);
    while (s.Step()) referenced.insert(s.Text(0));
  }
  DIR* d = ::opendir(blobs_dir_.c_str());
  if (d == nullptr) return Status::Sys(errno, "opendir " + blobs_dir_);
  std::vector<std::string> orphans;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (IsHex64(name) && !referenced.count(name)) orphans.push_back(name);
  }
  ::closedir(d);
  for (const auto& name : orphans) ::unlink((blobs_dir_ + "/" + name).c_str());
  return Status::Ok();
}

std::optional<Bucket> S3ObjectStore::FindBucket(std::string_view name) const {
  Statement s = db_->Prepare("SELECT name, region, created_ms, tags FROM s3_buckets WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) return std::nullopt;
  Bucket b;
  b.name = s.Text(0);
  b.region = s.Text(1);
  b.created_ms = s.Int(2);
  if (auto tags = s.OptText(3)) {
    json j = json::parse(*tags, nullptr, false);
    std::vector<std::pair<std::string, std::string>> list;
    if (j.is_array()) {
      for (const auto& t : j) {
        if (t.is_array() && t.size() == 2) list.emplace_back(t[0].get<std::string>(), t[1].get<std::string>());
      }
    }
    b.tags = std::move(list);
  }
  return b;
}

Result<std::optional<Bucket>> S3ObjectStore::GetBucket(std::string_view name) const {
  return Guarded([&]() -> Result<std::optional<Bucket>> { return FindBucket(name); });
}

Result<Bucket> S3ObjectStore::RequireBucket(std::string_view name) const {
  return Guarded([&]() -> Result<Bucket> {
    auto b = FindBucket(name);
    if (!b) return NoSuchBucket();
    return *b;
  });
}

Result<std::vector<Bucket>> S3ObjectStore::ListBuckets() const {
  return Guarded([&]() -> Result<std::vector<Bucket>> {
    std::vector<Bucket> out;
    Statement s = db_->Prepare("SELECT name FROM s3_buckets ORDER BY name");
    while (s.Step()) {
      if (auto b = FindBucket(s.Text(0))) out.push_back(std::move(*b));
    }
    return out;
  });
}

Result<bool> S3ObjectStore::CreateBucket(const std::string& name, const std::string& region, int64_t now_ms) {
  return Guarded([&]() -> Result<bool> {
    Statement s = db_->Prepare("INSERT OR IGNORE INTO s3_buckets (name, region, created_ms) VALUES (?, ?, ?)");
    s.BindAll(name, region, now_ms);
    return s.Run() == 1;
  });
}

Status S3ObjectStore::DeleteBucket(std::string_view name) {
  return Guarded([&]() -> Status {
    if (!FindBucket(name)) return NoSuchBucket();
    Statement any = db_->Prepare("SELECT 1 FROM s3_objects WHERE bucket = ? LIMIT 1");
    any.Bind(1, name);
    if (any.Step()) return S3Status(Code::kConflict, "BucketNotEmpty", "The bucket you tried to delete is not empty");
    std::vector<std::string> blobs;
    {
      Transaction tx(*db_);
      Statement parts = db_->Prepare(
          "SELECT p.sha256 FROM s3_parts p JOIN s3_uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ?");
      parts.Bind(1, name);
      while (parts.Step()) blobs.push_back(parts.Text(0));
      db_->Prepare("DELETE FROM s3_uploads WHERE bucket = ?").Bind(1, name).Run();
      db_->Prepare("DELETE FROM s3_buckets WHERE name = ?").Bind(1, name).Run();
      tx.Commit();
    }
    for (const auto& b : blobs) CollectBlob(b);
    return Status::Ok();
  });
}

Status S3ObjectStore::SetBucketTags(std::string_view name,
                                    std::optional<std::vector<std::pair<std::string, std::string>>> tags) {
  return Guarded([&]() -> Status {
    std::optional<std::string> text;
    if (tags) {
      json j = json::array();
      for (const auto& [k, v] : *tags) j.push_back({k, v});
      text = j.dump();
    }
    Statement s = db_->Prepare("UPDATE s3_buckets SET tags = ? WHERE name = ?");
    s.Bind(1, text);
    s.Bind(2, name);
    if (s.Run() == 0) return NoSuchBucket();
    return Status::Ok();
  });
}

Result<Blob> S3ObjectStore::WriteBlob(std::string_view data) {
  Digests d;
  d.Update(data);
  Blob blob = d.Finish();
  std::string final_path = blobs_dir_ + "/" + blob.sha256;
  struct stat st {};
  if (::stat(final_path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == blob.size) return blob;
  std::string tmp = tmp_dir_ + "/" + std::to_string(::getpid()) + "-" + std::to_string(++tmp_seq_);
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return Status::Sys(errno, "create " + tmp);
    Status w = WriteAll(fd.get(), data, tmp);
    if (w.ok() && ::fsync(fd.get()) != 0) w = Status::Sys(errno, "fsync " + tmp);
    if (!w.ok()) {
      ::unlink(tmp.c_str());
      return w;
    }
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    Status s = Status::Sys(errno, "rename " + tmp + " to " + final_path);
    ::unlink(tmp.c_str());
    return s;
  }
  GEYSIR_RETURN_IF_ERROR(FsyncDir(blobs_dir_));
  return blob;
}

Result<Blob> S3ObjectStore::WriteBlobFrom(const std::vector<std::string>& part_paths) {
  std::string tmp = tmp_dir_ + "/" + std::to_string(::getpid()) + "-" + std::to_string(++tmp_seq_);
  Digests d;
  {
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!out) return Status::Sys(errno, "create " + tmp);
    std::string buf(1 << 20, '\0');
    for (const auto& path : part_paths) {
      UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!in) {
        Status s = Status::Sys(errno, "open " + path);
        ::unlink(tmp.c_str());
        return s;
      }
      while (true) {
        ssize_t n = ::read(in.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          Status s = Status::Sys(errno, "read " + path);
          ::unlink(tmp.c_str());
          return s;
        }
        if (n == 0) break;
        std::string_view chunk(buf.data(), static_cast<size_t>(n));
        d.Update(chunk);
        Status w = WriteAll(out.get(), chunk, tmp);
        if (!w.ok()) {
          ::unlink(tmp.c_str());
          return w;
        }
      }
    }
    if (::fsync(out.get()) != 0) {
      Status s = Status::Sys(errno, "fsync " + tmp);
      ::unlink(tmp.c_str());
      return s;
    }
  }
  Blob blob = d.Finish();
  std::string final_path = blobs_dir_ + "/" + blob.sha256;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    Status s = Status::Sys(errno, "rename " + tmp + " to " + final_path);
    ::unlink(tmp.c_str());
    return s;
  }
  GEYSIR_RETURN_IF_ERROR(FsyncDir(blobs_dir_));
  return blob;
}

Result<std::string> S3ObjectStore::ReadBlob(const std::string& sha256, uint64_t offset, uint64_t length) const {
  if (!IsHex64(sha256)) return Status::Internal("malformed blob name " + sha256);
  std::string path = blobs_dir_ + "/" + sha256;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::Sys(errno, "stat " + path);
  auto size = static_cast<uint64_t>(st.st_size);
  if (offset > size) offset = size;
  uint64_t n = std::min(length, size - offset);
  std::string out(n, '\0');
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd.get(), out.data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Sys(errno, "read " + path);
    if (r == 0) return Status::Internal(path + " is shorter than its metadata says");
    done += static_cast<uint64_t>(r);
  }
  return out;
}

void S3ObjectStore::CollectBlob(const std::string& sha256) {
  Statement s = db_->Prepare(
      "SELECT 1 FROM s3_objects WHERE sha256 = ?1 UNION ALL SELECT 1 FROM s3_parts WHERE sha256 = ?1 LIMIT 1");
  s.Bind(1, sha256);
  if (s.Step()) return;
  if (IsHex64(sha256)) ::unlink((blobs_dir_ + "/" + sha256).c_str());
}

std::optional<Object> S3ObjectStore::FindObject(std::string_view bucket, std::string_view key) const {
  Statement s = db_->Prepare(std::string("SELECT ") + kObjectColumns + " FROM s3_objects WHERE bucket = ? AND key = ?");
  s.Bind(1, bucket);
  s.Bind(2, key);
  if (!s.Step()) return std::nullopt;
  return ObjectFromRow(s);
}

Result<std::optional<Object>> S3ObjectStore::GetObject(std::string_view bucket, std::string_view key) const {
  return Guarded([&]() -> Result<std::optional<Object>> { return FindObject(bucket, key); });
}

Result<Object> S3ObjectStore::RequireObject(std::string_view bucket, std::string_view key) const {
  return Guarded([&]() -> Result<Object> {
    if (auto o = FindObject(bucket, key)) return *o;
    if (!FindBucket(bucket)) return NoSuchBucket();
    return S3Status(Code::kNotFound, "NoSuchKey", "The specified key does not exist.");
  });
}

std::optional<std::string> S3ObjectStore::WriteObjectRow(const Object& o) {
  std::optional<std::string> replaced;
  if (auto old = FindObject(o.bucket, o.key)) replaced = old->sha256;
  Statement s = db_->Prepare(std::string("INSERT OR REPLACE INTO s3_objects (") + kObjectColumns +
                             ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  s.BindAll(o.bucket, o.key, o.sha256, static_cast<int64_t>(o.size), o.etag, o.last_modified_ms, o.parts_count,
            MetaToJson(o.meta).dump());
  s.Run();
  return replaced;
}

Status S3ObjectStore::PutObject(const Object& o) {
  return Guarded([&]() -> Status {
    std::optional<std::string> replaced;
    {
      Transaction tx(*db_);
      replaced = WriteObjectRow(o);
      tx.Commit();
    }
    if (replaced && *replaced != o.sha256) CollectBlob(*replaced);
    return Status::Ok();
  });
}

Result<bool> S3ObjectStore::DeleteObject(std::string_view bucket, std::string_view key) {
  return Guarded([&]() -> Result<bool> {
    auto old = FindObject(bucket, key);
    if (!old) return false;
    Statement s = db_->Prepare("DELETE FROM s3_objects WHERE bucket = ? AND key = ?");
    s.Bind(1, bucket);
    s.Bind(2, key);
    s.Run();
    CollectBlob(old->sha256);
    return true;
  });
}

Result<bool> S3ObjectStore::BucketIsEmpty(std::string_view bucket) const {
  return Guarded([&]() -> Result<bool> {
    Statement s = db_->Prepare("SELECT 1 FROM s3_objects WHERE bucket = ? LIMIT 1");
    s.Bind(1, bucket);
    return !s.Step();
  });
}

// Keys come in binary order (SQLite's BINARY collation compares UTF-8 bytes, as S3 orders
// keys). With a delimiter, keys sharing a prefix up to the delimiter fold into one common
// prefix, and the scan jumps past them; both kinds count towards max_keys.
Result<ListPage> S3ObjectStore::List(std::string_view bucket, const ListQuery& q) const {
  return Guarded([&]() -> Result<ListPage> {
    ListPage page;
    int max_keys = std::clamp(q.max_keys, 0, 1000);
    std::string from = std::max(q.after, q.prefix);
    bool inclusive = q.after.empty() || q.after < q.prefix;
    // A continuation that stopped at a common prefix resumes after everything under it.
    if (!q.delimiter.empty() && !q.after.empty() && q.after.size() >= q.delimiter.size() &&
        q.after.compare(q.after.size() - q.delimiter.size(), q.delimiter.size(), q.delimiter) == 0 &&
        !inclusive) {
      from = PrefixSuccessor(q.after);
      inclusive = true;
      if (from.empty()) return page;
    }
    int count = 0;
    while (true) {
      Statement s = db_->Prepare(std::string("SELECT ") + kObjectColumns + " FROM s3_objects WHERE bucket = ? AND " +
                                 (inclusive ? "key >= ?" : "key > ?") + " ORDER BY key LIMIT 1000");
      s.Bind(1, bucket);
      s.Bind(2, from);
      bool any = false;
      bool jumped = false;
      while (s.Step()) {
        any = true;
        Object o = ObjectFromRow(s);
        if (o.key.compare(0, q.prefix.size(), q.prefix) != 0) return page;  // past the prefix
        std::string common;
        if (!q.delimiter.empty()) {
          size_t at = o.key.find(q.delimiter, q.prefix.size());
          if (at != std::string::npos) common = o.key.substr(0, at + q.delimiter.size());
        }
        if (count == max_keys) {
          page.truncated = true;
          return page;
        }
        ++count;
        if (!common.empty()) {
          page.common_prefixes.push_back(common);
          page.last = common;
          from = PrefixSuccessor(common);
          inclusive = true;
          jumped = true;
          if (from.empty()) return page;
          break;
        }
        page.last = o.key;
        from = o.key;
        inclusive = false;
        page.objects.push_back(std::move(o));
      }
      if (!any) return page;
      (void)jumped;
    }
  });
}

Result<Upload> S3ObjectStore::CreateUpload(const std::string& bucket, const std::string& key, const ObjectMeta& meta,
                                           const std::string& checksum_algorithm, int64_t now_ms) {
  return Guarded([&]() -> Result<Upload> {
    if (!FindBucket(bucket)) return NoSuchBucket();
    Result<std::string> id = NewUploadId();
    if (!id.ok()) return id.status();
    Upload u;
    u.upload_id = std::move(id).value();
    u.bucket = bucket;
    u.key = key;
    u.initiated_ms = now_ms;
    u.meta = meta;
    u.checksum_algorithm = checksum_algorithm;
    Statement s = db_->Prepare(
        "INSERT INTO s3_uploads (upload_id, bucket, key, initiated_ms, checksum_algorithm, meta) VALUES (?, ?, ?, ?, ?, ?)");
    s.BindAll(u.upload_id, u.bucket, u.key, u.initiated_ms, u.checksum_algorithm, MetaToJson(meta).dump());
    s.Run();
    return u;
  });
}

Result<Upload> S3ObjectStore::RequireUpload(std::string_view bucket, std::string_view key,
                                            std::string_view upload_id) const {
  return Guarded([&]() -> Result<Upload> {
    if (!FindBucket(bucket)) return NoSuchBucket();
    Statement s = db_->Prepare(
        "SELECT upload_id, bucket, key, initiated_ms, checksum_algorithm, meta FROM s3_uploads "
        "WHERE upload_id = ? AND bucket = ? AND key = ?");
    s.Bind(1, upload_id);
    s.Bind(2, bucket);
    s.Bind(3, key);
    if (!s.Step()) {
      return S3Status(Code::kNotFound, "NoSuchUpload",
                      "The specified upload does not exist. The upload ID may be invalid, or the upload "
                      "may have been aborted or completed.");
    }
    Upload u;
    u.upload_id = s.Text(0);
    u.bucket = s.Text(1);
    u.key = s.Text(2);
    u.initiated_ms = s.Int(3);
    u.checksum_algorithm = s.Text(4);
    u.meta = MetaFromJson(s.Text(5));
    return u;
  });
}

Status S3ObjectStore::PutPart(const std::string& upload_id, const Part& p) {
  return Guarded([&]() -> Status {
    std::optional<std::string> replaced;
    {
      Transaction tx(*db_);
      Statement old = db_->Prepare("SELECT sha256 FROM s3_parts WHERE upload_id = ? AND part_number = ?");
      old.BindAll(upload_id, p.part_number);
      if (old.Step()) replaced = old.Text(0);
      Statement s = db_->Prepare(
          "INSERT OR REPLACE INTO s3_parts (upload_id, part_number, sha256, size, etag, last_modified_ms, checksums) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)");
      s.BindAll(upload_id, p.part_number, p.sha256, static_cast<int64_t>(p.size), p.etag, p.last_modified_ms,
                json(p.checksums).dump());
      s.Run();
      tx.Commit();
    }
    if (replaced && *replaced != p.sha256) CollectBlob(*replaced);
    return Status::Ok();
  });
}

Result<std::vector<Part>> S3ObjectStore::ListParts(const std::string& upload_id) const {
  return Guarded([&]() -> Result<std::vector<Part>> { return PartsOf(upload_id); });
}

std::vector<Part> S3ObjectStore::PartsOf(const std::string& upload_id) const {
  std::vector<Part> out;
  Statement s = db_->Prepare(
      "SELECT part_number, sha256, size, etag, last_modified_ms, checksums FROM s3_parts WHERE upload_id = ? "
      "ORDER BY part_number");
  s.Bind(1, upload_id);
  while (s.Step()) {
    Part p;
    p.part_number = static_cast<int>(s.Int(0));
    p.sha256 = s.Text(1);
    p.size = static_cast<uint64_t>(s.Int(2));
    p.etag = s.Text(3);
    p.last_modified_ms = s.Int(4);
    json j = json::parse(s.Text(5), nullptr, false);
    if (j.is_object()) p.checksums = j.get<std::map<std::string, std::string>>();
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<Upload>> S3ObjectStore::ListUploads(std::string_view bucket) const {
  return Guarded([&]() -> Result<std::vector<Upload>> {
    std::vector<Upload> out;
    Statement s = db_->Prepare(
        "SELECT upload_id, key, initiated_ms, checksum_algorithm FROM s3_uploads WHERE bucket = ? "
        "ORDER BY key, initiated_ms LIMIT 1000");
    s.Bind(1, bucket);
    while (s.Step()) {
      Upload u;
      u.upload_id = s.Text(0);
      u.bucket = std::string(bucket);
      u.key = s.Text(1);
      u.initiated_ms = s.Int(2);
      u.checksum_algorithm = s.Text(3);
      out.push_back(std::move(u));
    }
    return out;
  });
}

Result<Object> S3ObjectStore::CompleteUpload(const Upload& upload, const std::vector<CompletedPart>& wanted,
                                             int64_t now_ms) {
  return Guarded([&]() -> Result<Object> {
    if (wanted.empty()) {
      return S3Status(Code::kInvalidArgument, "MalformedXML",
                      "The XML you provided was not well-formed or did not validate against our published "
                      "schema: CompleteMultipartUpload names no part.");
    }
    std::map<int, Part> stored;
    for (auto& p : PartsOf(upload.upload_id)) stored.emplace(p.part_number, std::move(p));
    std::vector<std::string> paths;
    std::string md5s;  // the binary MD5s of the parts, for the multipart ETag
    uint64_t total = 0;
    int previous = 0;
    for (size_t i = 0; i < wanted.size(); ++i) {
      const CompletedPart& w = wanted[i];
      if (w.part_number <= previous) {
        return S3Status(Code::kInvalidArgument, "InvalidPartOrder",
                        "The list of parts was not in ascending order. Parts must be ordered by part number.");
      }
      previous = w.part_number;
      auto it = stored.find(w.part_number);
      if (it == stored.end() || StripQuotes(it->second.etag) != StripQuotes(w.etag)) {
        return S3Status(Code::kInvalidArgument, "InvalidPart",
                        "One or more of the specified parts could not be found. The part may not have been "
                        "uploaded, or the specified entity tag may not match the part's entity tag: part " +
                            std::to_string(w.part_number) + ".");
      }
      const Part& p = it->second;
      if (i + 1 < wanted.size() && p.size < kMinPartSize) {
        return S3Status(Code::kInvalidArgument, "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size: part " +
                            std::to_string(p.part_number) + " has " + std::to_string(p.size) +
                            " bytes; every part but the last must have at least 5 MiB.");
      }
      std::string hex = StripQuotes(p.etag);
      for (size_t k = 0; k + 1 < hex.size(); k += 2) md5s.push_back(static_cast<char>(std::stoi(hex.substr(k, 2), nullptr, 16)));
      paths.push_back(blobs_dir_ + "/" + p.sha256);
      total += p.size;
    }
    Result<Blob> blob = WriteBlobFrom(paths);
    if (!blob.ok()) return S3Status(Code::kInternal, "InternalError", blob.status().message());
    if (blob->size != total) return S3Status(Code::kInternal, "InternalError", "part blobs changed size");

    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(md5s.data(), md5s.size(), d, &n, EVP_md5(), nullptr);
    Object o;
    o.bucket = upload.bucket;
    o.key = upload.key;
    o.sha256 = blob->sha256;
    o.size = blob->size;
    o.etag = "\"" + HexEncode(d, n) + "-" + std::to_string(wanted.size()) + "\"";
    o.last_modified_ms = now_ms;
    o.parts_count = static_cast<int>(wanted.size());
    o.meta = upload.meta;
    o.meta.checksums.clear();

    std::optional<std::string> replaced;
    {
      Transaction tx(*db_);
      replaced = WriteObjectRow(o);
      db_->Prepare("DELETE FROM s3_uploads WHERE upload_id = ?").Bind(1, upload.upload_id).Run();
      tx.Commit();
    }
    if (replaced && *replaced != o.sha256) CollectBlob(*replaced);
    for (const auto& [num, p] : stored) CollectBlob(p.sha256);
    return o;
  });
}

Status S3ObjectStore::AbortUpload(const Upload& upload) {
  return Guarded([&]() -> Status {
    std::vector<Part> parts = PartsOf(upload.upload_id);
    db_->Prepare("DELETE FROM s3_uploads WHERE upload_id = ?").Bind(1, upload.upload_id).Run();
    for (const auto& p : parts) CollectBlob(p.sha256);
    return Status::Ok();
  });
}

// ---- s3_objects.h ----

std::optional<ObjectRef> ParseObjectUrl(std::string_view url) {
  std::string_view rest;
  std::string_view host;
  bool s3_scheme = false;
  if (url.rfind("s3://", 0) == 0) {
    s3_scheme = true;
    rest = url.substr(5);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return std::nullopt;
  }
  if (size_t q = rest.find_first_of("?#"); q != std::string_view::npos) rest = rest.substr(0, q);
  size_t slash = rest.find('/');
  host = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (s3_scheme) {
    if (host.empty() || path.empty()) return std::nullopt;
    return ObjectRef{std::string(host), std::string(path)};
  }
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  // Virtual-hosted: BUCKET.s3.<anything> or BUCKET.s3-REGION.<anything>.
  std::string bucket;
  for (std::string_view marker : {".s3.", ".s3-"}) {
    size_t at = host.rfind(marker);
    if (at != std::string_view::npos && at > 0) {
      bucket = std::string(host.substr(0, at));
      break;
    }
  }
  std::string key_raw;
  if (!bucket.empty()) {
    key_raw = std::string(path);
  } else {
    size_t s = path.find('/');
    if (s == std::string_view::npos) return std::nullopt;
    bucket = std::string(path.substr(0, s));
    key_raw = std::string(path.substr(s + 1));
  }
  if (bucket.empty() || key_raw.empty()) return std::nullopt;
  return ObjectRef{bucket, net::PercentDecode(key_raw, false)};
}

namespace {
Result<Object> FindForApi(ServiceHost& host, std::string_view bucket, std::string_view key) {
  auto no_bucket = [&] {
    return Status::NotFound("The specified bucket does not exist: " + std::string(bucket)).WithAwsType("NoSuchBucket");
  };
  try {
    Db& db = host.store().db();
    // Before the S3 service first starts its schema track has not run: no bucket exists yet.
    if (!db.HasTable("s3_buckets")) return no_bucket();
    Statement b = db.Prepare("SELECT 1 FROM s3_buckets WHERE name = ?");
    b.Bind(1, bucket);
    if (!b.Step()) return no_bucket();
    Statement s = db.Prepare(std::string("SELECT ") + kObjectColumns + " FROM s3_objects WHERE bucket = ? AND key = ?");
    s.Bind(1, bucket);
    s.Bind(2, key);
    if (!s.Step()) {
      return Status::NotFound("The specified key does not exist: " + std::string(key)).WithAwsType("NoSuchKey");
    }
    return ObjectFromRow(s);
  } catch (const DbError& e) {
    return Status::Internal(std::string("reading S3 metadata: ") + e.what());
  }
}
}  // namespace

Result<std::string> ReadObject(ServiceHost& host, std::string_view bucket, std::string_view key, uint64_t max_bytes) {
  Result<Object> o = FindForApi(host, bucket, key);
  if (!o.ok()) return o.status();
  if (o->size > max_bytes) {
    return Status::Error(Code::kResourceExhausted, "the object s3://" + std::string(bucket) + "/" + std::string(key) +
                                                       " has " + std::to_string(o->size) + " bytes, over the limit of " +
                                                       std::to_string(max_bytes));
  }
  std::string path = host.data_dir() + "/s3/blobs/" + o->sha256;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Sys(errno, "open " + path);
  std::string out(o->size, '\0');
  uint64_t done = 0;
  while (done < o->size) {
    ssize_t r = ::pread(fd.get(), out.data() + done, o->size - done, static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Sys(errno, "read " + path);
    if (r == 0) return Status::Internal(path + " is shorter than its metadata says");
    done += static_cast<uint64_t>(r);
  }
  return out;
}

Result<ObjectInfo> StatObject(ServiceHost& host, std::string_view bucket, std::string_view key) {
  Result<Object> o = FindForApi(host, bucket, key);
  if (!o.ok()) return o.status();
  ObjectInfo info;
  info.size = o->size;
  info.etag = o->etag;
  info.sha256_hex = o->sha256;
  info.last_modified_ms = o->last_modified_ms;
  info.content_type = o->meta.content_type;
  return info;
}

}  // namespace geysir::control::s3
