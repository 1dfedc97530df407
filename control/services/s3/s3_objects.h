// The C++ face of Geysir's S3 for the rest of control: other services read objects that
// clients uploaded through the S3 API without speaking HTTP to themselves.
//
//   - Lambda's CreateFunction / UpdateFunctionCode with Code.S3Bucket + S3Key copy the zip
//     synchronously (Zappa deletes the object as soon as the call returns):
//       Result<std::string> zip = objects.ReadObject(bucket, key, max_bytes);
//   - CloudFormation resolves TemplateURL "https://s3.amazonaws.com/BUCKET/KEY":
//       if (auto ref = s3::ParseObjectUrl(url)) body = objects.ReadObject(ref->bucket, ref->key, max_bytes);
// Both are handed the S3 service as an ObjectSource when the registry builds them
// (control/services/registry.cpp), so neither can exist without it.
//
// Objects live in control's data directory (<data>/s3/blobs/<sha256>) with their metadata in
// SQLite (schema track "s3"); see control/services/s3/s3_store.h. These functions read both
// directly, so they work whenever the S3 service has started (it is registered by default).
//
// Errors: kNotFound naming S3's error code as its AWS type (Status::aws_type()) —
// "NoSuchBucket" with "The specified bucket does not exist: BUCKET", or "NoSuchKey" with
// "The specified key does not exist: KEY" — so a caller can quote S3 as AWS does
// (Lambda: "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: ...").
// kResourceExhausted when the object is larger than `max_bytes`; kInternal for I/O failures.
//
// Thread safety: call on control's loop thread (they use the store's SQLite connection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace geysir::control {

class ServiceHost;

// What a service that reads S3 objects is given: S3Service is one. Errors as s3::ReadObject.
class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  virtual Result<std::string> ReadObject(std::string_view bucket, std::string_view key, uint64_t max_bytes) = 0;
};

namespace s3 {

struct ObjectRef {
  std::string bucket;
  std::string key;  // decoded ("a b.zip", not "a%20b.zip")
};

// The bucket and key an S3 object URL names, in any of the forms AWS accepts:
//   https://s3.amazonaws.com/BUCKET/KEY            (what Zappa's TemplateURL always is)
//   https://s3.REGION.amazonaws.com/BUCKET/KEY, https://s3-REGION.amazonaws.com/BUCKET/KEY
//   https://BUCKET.s3.amazonaws.com/KEY, https://BUCKET.s3.REGION.amazonaws.com/KEY
//   s3://BUCKET/KEY
// and Geysir's own endpoint, path-style (http://HOST:PORT/BUCKET/KEY) or virtual-hosted
// (http://BUCKET.s3.localhost:PORT/KEY). A query string is ignored. nullopt when the URL names
// no bucket and key.
std::optional<ObjectRef> ParseObjectUrl(std::string_view url);

// The whole content of one object.
Result<std::string> ReadObject(ServiceHost& host, std::string_view bucket, std::string_view key,
                               uint64_t max_bytes = 256ull * 1024 * 1024);

struct ObjectInfo {
  uint64_t size = 0;
  std::string etag;          // with its quotes, as S3 returns it: "\"d41d8cd9...\""
  std::string sha256_hex;    // of the content
  int64_t last_modified_ms = 0;
  std::string content_type;
};

// Metadata of one object (no content read). Errors as ReadObject.
Result<ObjectInfo> StatObject(ServiceHost& host, std::string_view bucket, std::string_view key);

}  // namespace s3
}  // namespace geysir::control
