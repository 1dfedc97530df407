// S3Service: Amazon S3's REST API (rest-xml, signing name "s3") on control's endpoint.
//
// Addressing: path-style (/BUCKET/KEY) and virtual-hosted-style, recognised from the Host
// header (port ignored): BUCKET.localhost, BUCKET.s3.localhost and BUCKET.s3.<any domain>
// name BUCKET and the path is the key. Any other host (an IP, "localhost", "s3.localhost",
// "s3.example.org") is path-style.
//
// Operations: ListBuckets, CreateBucket (LocationConstraint body), HeadBucket, DeleteBucket,
// GetBucketLocation, Put/Get/DeleteBucketTagging, PutObject, GetObject (Range, If-Match,
// If-None-Match, response-* overrides), HeadObject, CopyObject, DeleteObject, DeleteObjects,
// ListObjectsV2 and ListObjects (prefix, delimiter, continuation, encoding-type=url),
// CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
// AbortMultipartUpload, ListParts, ListMultipartUploads. Bodies in aws-chunked encoding are
// decoded with every chunk signature verified (s3_chunked.h); Content-MD5 and
// x-amz-checksum-* (headers or trailers) are verified before anything is stored.
// Errors are S3's XML (<Error><Code>NoSuchKey</Code><Message>...</Message>...).
//
// Storage: S3ObjectStore (s3_store.h). Other services read objects through the ObjectSource
// this service is (s3_objects.h).
//
// Thread safety: control's loop thread only.
#pragma once

#include <memory>
#include <optional>

#include "control/service.h"
#include "control/services/s3/s3_objects.h"
#include "control/services/s3/s3_store.h"

namespace geysir::control {

class S3Service final : public Service, public ObjectSource {
 public:
  explicit S3Service(ServiceHost& host);
  ~S3Service() override;

  std::string_view signing_name() const override { return "s3"; }
  Status Start() override;
  Status Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) override;
  net::HttpResponse ErrorResponse(const AwsError& error, const std::string& request_id) const override;
  std::span<const ErrorStatus> error_statuses() const override;

  // The object store (valid after Start()).
  s3::S3ObjectStore& objects() { return *objects_; }

  // ObjectSource.
  Result<std::string> ReadObject(std::string_view bucket, std::string_view key, uint64_t max_bytes) override;

 private:
  struct Call;
  // The response to `c`, or the S3 error it gets.
  Result<net::HttpResponse> Route(Call& c);

  ServiceHost& host_;
  std::optional<s3::S3ObjectStore> objects_;
};

}  // namespace geysir::control
