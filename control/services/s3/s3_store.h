// S3ObjectStore: where Geysir's S3 keeps buckets, objects and multipart uploads.
//
// Content is content-addressed: every object body and every uploaded part is one file
// <data>/s3/blobs/<sha256-hex> (0600), written once, shared by every object with the same
// bytes (a CopyObject is a new row pointing at the same blob: no data is copied). Metadata is
// in SQLite, schema track "s3" (tables s3_buckets, s3_objects, s3_uploads, s3_parts).
//
// Durability: a blob is written to <data>/s3/tmp, fsync'ed, renamed into blobs/ and the
// directory fsync'ed before the row that names it is committed (WAL, synchronous=FULL); only
// then does the API answer 200. A crash in between leaves an unreferenced blob, which the
// sweep at Open removes. A blob is unlinked once no object and no part names it any more
// (after the commit that dropped the last reference).
//
// Error policy: nothing throws. Every operation returns a Status or Result whose AWS type is
// S3's error code (Status::aws_type(): NoSuchBucket, NoSuchKey, NoSuchUpload, BucketNotEmpty,
// MalformedXML, InvalidPartOrder, InvalidPart, EntityTooSmall, InternalError) and whose Code
// gives S3's status through control/aws_error.h's FromStatus (kNotFound 404, kConflict 409,
// kInvalidArgument 400, kInternal 500). SQLite's DbError and a malformed stored JSON value are
// caught in each operation and become kInternal "internal error: ..." (S3's InternalError), the
// words control's API boundary used when they escaped to it.
//
// Thread safety: none; control's loop thread owns it (it shares the store's connection).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/aws_error.h"
#include "control/db.h"
#include "base/status.h"

namespace geysir::control::s3 {

// An S3 error in S3's vocabulary: `code` is the <Code> of the XML error body.
AwsError S3Error(int http_status, std::string code, std::string message);

struct Bucket {
  std::string name;
  std::string region;
  int64_t created_ms = 0;
  std::optional<std::vector<std::pair<std::string, std::string>>> tags;  // nullopt: never set
};

// What is kept of an object besides its bytes.
struct ObjectMeta {
  std::string content_type = "binary/octet-stream";  // S3's default
  // Headers returned on GET/HEAD as stored: content-encoding, content-disposition,
  // content-language, cache-control, expires, x-amz-meta-* (lower-case names).
  std::map<std::string, std::string> headers;
  // Checksums by algorithm ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"), base64 as on
  // the wire.
  std::map<std::string, std::string> checksums;
};

struct Object {
  std::string bucket, key;
  std::string sha256;       // blob name
  uint64_t size = 0;
  std::string etag;         // quoted
  int64_t last_modified_ms = 0;
  int parts_count = 0;      // > 0 for an object made by CompleteMultipartUpload
  ObjectMeta meta;
};

struct Upload {
  std::string upload_id, bucket, key;
  int64_t initiated_ms = 0;
  ObjectMeta meta;
  std::string checksum_algorithm;  // "" or e.g. "CRC32" (x-amz-checksum-algorithm at create)
};

struct Part {
  int part_number = 0;
  std::string sha256;
  uint64_t size = 0;
  std::string etag;         // quoted
  int64_t last_modified_ms = 0;
  std::map<std::string, std::string> checksums;
};

struct ListQuery {
  std::string prefix, delimiter;
  std::string after;        // exclusive: a key, or a common prefix already returned
  int max_keys = 1000;
};

struct ListPage {
  std::vector<Object> objects;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string last;         // the last key or common prefix returned (for continuation)
};

// One part as CompleteMultipartUpload names it.
struct CompletedPart {
  int part_number = 0;
  std::string etag;         // as the client sent it (quotes optional)
};

// A blob written and made durable, not yet referenced.
struct Blob {
  std::string sha256, md5_hex;
  uint64_t size = 0;
};

class S3ObjectStore {
 public:
  // Creates the tables (track "s3") and <data>/s3/{blobs,tmp}, empties tmp and removes
  // blobs nothing references.
  static Result<S3ObjectStore> Open(Db& db, const std::string& data_dir);

  // Buckets.
  Result<std::optional<Bucket>> GetBucket(std::string_view name) const;
  Result<Bucket> RequireBucket(std::string_view name) const;  // NoSuchBucket
  Result<std::vector<Bucket>> ListBuckets() const;
  // False when it already exists.
  Result<bool> CreateBucket(const std::string& name, const std::string& region, int64_t now_ms);
  Status DeleteBucket(std::string_view name);  // NoSuchBucket, BucketNotEmpty
  Status SetBucketTags(std::string_view name, std::optional<std::vector<std::pair<std::string, std::string>>> tags);

  // Blobs: hashes `data` and makes it durable under blobs/ (unless already there).
  Result<Blob> WriteBlob(std::string_view data);
  // Reads [offset, offset+length) of a blob (length = UINT64_MAX: to the end).
  Result<std::string> ReadBlob(const std::string& sha256, uint64_t offset = 0, uint64_t length = UINT64_MAX) const;

  // Objects.
  Result<std::optional<Object>> GetObject(std::string_view bucket, std::string_view key) const;
  Result<Object> RequireObject(std::string_view bucket, std::string_view key) const;  // NoSuchBucket / NoSuchKey
  // Inserts or replaces (bucket must exist; checked by the caller). Commits, then collects
  // the replaced blob if nothing else uses it.
  Status PutObject(const Object& object);
  // True when something was deleted (S3 answers 204 either way).
  Result<bool> DeleteObject(std::string_view bucket, std::string_view key);
  Result<ListPage> List(std::string_view bucket, const ListQuery& query) const;
  Result<bool> BucketIsEmpty(std::string_view bucket) const;

  // Multipart uploads.
  Result<Upload> CreateUpload(const std::string& bucket, const std::string& key, const ObjectMeta& meta,
                              const std::string& checksum_algorithm, int64_t now_ms);  // NoSuchBucket
  Result<Upload> RequireUpload(std::string_view bucket, std::string_view key,
                               std::string_view upload_id) const;  // NoSuchBucket, NoSuchUpload
  Status PutPart(const std::string& upload_id, const Part& part);
  Result<std::vector<Part>> ListParts(const std::string& upload_id) const;
  Result<std::vector<Upload>> ListUploads(std::string_view bucket) const;
  // Validates the list (MalformedXML, InvalidPartOrder, InvalidPart, EntityTooSmall),
  // concatenates the parts into one blob, commits the object and drops the upload. Returns the
  // object.
  Result<Object> CompleteUpload(const Upload& upload, const std::vector<CompletedPart>& parts, int64_t now_ms);
  Status AbortUpload(const Upload& upload);

  const std::string& blobs_dir() const { return blobs_dir_; }

 private:
  S3ObjectStore(Db& db, std::string blobs_dir, std::string tmp_dir)
      : db_(&db), blobs_dir_(std::move(blobs_dir)), tmp_dir_(std::move(tmp_dir)) {}
  // The helpers below throw DbError; the public operations above catch it.
  std::optional<Bucket> FindBucket(std::string_view name) const;
  std::optional<Object> FindObject(std::string_view bucket, std::string_view key) const;
  std::vector<Part> PartsOf(const std::string& upload_id) const;
  void CollectBlob(const std::string& sha256);
  // INSERT OR REPLACE of the object's row, inside the caller's transaction; returns the blob the
  // row pointed to before (for CollectBlob after the commit), if any.
  std::optional<std::string> WriteObjectRow(const Object& object);
  Status SweepBlobs();
  Result<Blob> WriteBlobFrom(const std::vector<std::string>& part_paths);

  Db* db_;
  std::string blobs_dir_, tmp_dir_;
  uint64_t tmp_seq_ = 0;
};

}  // namespace geysir::control::s3
