// S3Service: see s3.h. Route() picks the operation from method, bucket, key and the query's
// sub-resources (?uploads, ?uploadId, ?tagging, ?delete, ?location, list-type=2), the way S3
// itself does; each handler returns the whole response or a Status naming S3's error code.
#include "control/services/s3/s3.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <map>

#include "control/services/lambda/lambda_api.h"
#include "control/services/protocol.h"
#include "control/services/s3/s3_chunked.h"
#include "control/services/s3/s3_xml.h"
#include "control/store.h"
#include "base/base64.h"
#include "base/log.h"
#include "net/sigv4.h"

namespace geysir::control {
namespace {

using net::HttpRequest;
using net::HttpResponse;
using s3::S3Error;

constexpr std::string_view kXmlns = "http://s3.amazonaws.com/doc/2006-03-01/";

// S3's answers whose HTTP status is not the one their Status code gives.
constexpr ErrorStatus kS3ErrorStatuses[] = {
    {"MethodNotAllowed", 405},
    {"InvalidRange", 416},
    {"NotImplemented", 501},
    {"ServiceUnavailable", 503},
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// RFC 7231 date for Last-Modified.
std::string HttpDate(int64_t ms) {
  time_t s = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&s, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// S3's encoding-type=url: every byte but unreserved ones and '/' as %XX (botocore decodes
// with unquote_plus, so '+' must be escaped too).
std::string UrlEncodeKey(std::string_view in) { return net::PercentEncode(in, "/"); }

// The bucket a virtual-hosted request names (see s3.h), or "".
std::string VirtualHostBucket(const HttpRequest& req) {
  const std::string* host_header = req.Header("Host");
  if (host_header == nullptr) return {};
  std::string host = Lower(*host_header);
  if (!host.empty() && host.front() == '[') return {};  // IPv6 literal
  if (size_t colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
  if (EndsWith(host, ".localhost")) {
    std::string rest = host.substr(0, host.size() - std::string_view(".localhost").size());
    if (EndsWith(rest, ".s3")) rest.resize(rest.size() - 3);
    return rest == "s3" ? std::string() : rest;
  }
  for (std::string_view marker : {".s3.", ".s3-"}) {
    size_t at = host.rfind(marker);
    if (at != std::string::npos && at > 0) return host.substr(0, at);
  }
  return {};
}

bool ValidBucketName(std::string_view n) {
  if (n.size() < 3 || n.size() > 63) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return alnum(n.front()) && alnum(n.back()) && n.find("..") == std::string_view::npos;
}

// Headers kept with an object and returned on GET/HEAD.
bool IsStoredHeader(std::string_view lower) {
  return lower == "content-disposition" || lower == "content-language" || lower == "cache-control" ||
         lower == "expires" || lower == "content-encoding" || StartsWith(lower, "x-amz-meta-");
}

s3::ObjectMeta MetaFromHeaders(const HttpRequest& req) {
  s3::ObjectMeta m;
  if (const std::string* ct = req.Header("Content-Type"); ct != nullptr && !ct->empty()) m.content_type = *ct;
  for (const auto& [name, value] : req.headers) {
    std::string lower = Lower(name);
    if (!IsStoredHeader(lower)) continue;
    if (lower == "content-encoding") {
      // aws-chunked is how the body travelled, not what the object is.
      std::string kept;
      size_t pos = 0;
      while (pos <= value.size()) {
        size_t comma = value.find(',', pos);
        if (comma == std::string::npos) comma = value.size();
        std::string token(value.substr(pos, comma - pos));
        token.erase(0, token.find_first_not_of(' '));
        token.erase(token.find_last_not_of(' ') + 1);
        if (!token.empty() && Lower(token) != "aws-chunked") kept += (kept.empty() ? "" : ",") + token;
        pos = comma + 1;
      }
      if (!kept.empty()) m.headers[lower] = kept;
      continue;
    }
    m.headers[lower] = value;
  }
  return m;
}

struct Range {
  uint64_t first = 0, last = 0;  // inclusive
};

// A single "bytes=a-b" / "bytes=a-" / "bytes=-n" range. nullopt: no range (or one S3 ignores);
// InvalidRange when it cannot be satisfied.
Result<std::optional<Range>> ParseRange(const std::string* header, uint64_t size) {
  const std::optional<Range> no_range;
  if (header == nullptr) return no_range;
  std::string_view v = *header;
  if (!StartsWith(v, "bytes=")) return no_range;
  v.remove_prefix(6);
  if (v.find(',') != std::string_view::npos) return no_range;
  size_t dash = v.find('-');
  if (dash == std::string_view::npos) return no_range;
  auto num = [](std::string_view s, uint64_t* out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size();
  };
  std::string_view a = v.substr(0, dash), b = v.substr(dash + 1);
  Range r;
  auto unsatisfiable = [&]() {
    return AwsStatus(Code::kInvalidArgument, "InvalidRange", "The requested range is not satisfiable");
  };

  if (a.empty()) {
    uint64_t n = 0;
    if (!num(b, &n)) return no_range;
    if (n == 0 || size == 0) return unsatisfiable();
    r.first = n >= size ? 0 : size - n;
    r.last = size - 1;
    return std::optional<Range>(r);
  }
  if (!num(a, &r.first)) return no_range;
  if (b.empty()) {
    r.last = size == 0 ? 0 : size - 1;
  } else if (!num(b, &r.last) || r.last < r.first) {
    return no_range;
  }
  if (r.first >= size) return unsatisfiable();
  r.last = std::min(r.last, size - 1);
  return std::optional<Range>(r);
}

std::string Quoted(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"') return std::string(etag);
  return "\"" + std::string(etag) + "\"";
}

bool EtagMatches(const std::string& condition, const std::string& etag) {
  if (condition == "*") return true;
  size_t pos = 0;
  while (pos <= condition.size()) {
    size_t comma = condition.find(',', pos);
    if (comma == std::string::npos) comma = condition.size();
    std::string t = condition.substr(pos, comma - pos);
    t.erase(0, t.find_first_not_of(' '));
    t.erase(t.find_last_not_of(' ') + 1);
    if (StartsWith(t, "W/")) t = t.substr(2);
    if (Quoted(t) == etag) return true;
    pos = comma + 1;
  }
  return false;
}

HttpResponse Xml(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "application/xml"}};
  r.body = std::move(body);
  return r;
}

HttpResponse Empty(int status) {
  HttpResponse r;
  r.status = status;
  return r;
}

std::optional<int64_t> ParseInt(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<s3::XmlNode> ParseBody(const std::string& body, std::string_view root) {
  std::string error;
  auto node = s3::ParseXml(body, &error);
  if (!node || node->name != root) {
    return AwsStatus(Code::kInvalidArgument, "MalformedXML",
                     "The XML you provided was not well-formed or did not validate against our published schema" +
                     (error.empty() ? std::string(": expected <") + std::string(root) + ">" : ": " + error));
  }
  return std::move(*node);
}

}  // namespace

// One request, decoded.
struct S3Service::Call {
  HttpRequest& req;
  const RequestInfo& info;
  std::string bucket;
  std::string key;
  std::map<std::string, std::string> query;

  bool Has(std::string_view q) const { return query.count(std::string(q)) > 0; }
  std::string Q(std::string_view q) const {
    auto it = query.find(std::string(q));
    return it == query.end() ? std::string() : it->second;
  }
  std::string H(std::string_view h) const {
    const std::string* v = req.Header(h);
    return v ? *v : std::string();
  }
};

namespace {

// The object body of a PUT (or UploadPart): decoded from aws-chunked when it is, with every
// chunk signature checked; then Content-MD5 and x-amz-checksum-* verified. Fills `checksums`
// with the verified (or requested and computed) checksums.
Result<std::string> ReadPayload(ServiceHost& host, HttpRequest& req, const RequestInfo& info,
                                std::map<std::string, std::string>* checksums) {
  std::string sha = req.Header("x-amz-content-sha256") ? *req.Header("x-amz-content-sha256") : "";
  std::string encoding = Lower(req.Header("Content-Encoding") ? *req.Header("Content-Encoding") : "");
  std::string data;
  std::vector<std::pair<std::string, std::string>> trailers;
  if (StartsWith(sha, "STREAMING-") || encoding.find("aws-chunked") != std::string::npos) {
    if (StartsWith(sha, "STREAMING-AWS4-ECDSA")) {
      return AwsStatus(Code::kUnimplemented, "NotImplemented", "SigV4a (ECDSA) streaming signatures are not supported by Geysir.");
    }
    bool signed_chunks = StartsWith(sha, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    bool trailer = EndsWith(sha, "-TRAILER");
    s3::ChunkSigning signing;
    if (signed_chunks) {
      net::sigv4::VerifyError ignored;
      auto cred = net::sigv4::ParseCredential(req, &ignored);
      Result<AccessKey> key = host.store().GetAccessKey(info.access_key_id);
      if (!cred || !key.ok()) return AwsStatus(Code::kUnauthenticated, "AccessDenied", "Cannot verify the chunk signatures of this request.");
      signing.signing_key = s3::SigningKey(key->secret_access_key, cred->date, cred->region, cred->service);
      signing.amz_date = cred->amz_date;
      signing.scope = cred->date + "/" + cred->region + "/" + cred->service + "/aws4_request";
      signing.seed_signature = cred->signature;
    }
    s3::DecodedBody decoded;
    if (auto err = s3::DecodeAwsChunked(req.body, signed_chunks ? &signing : nullptr, trailer, &decoded)) {
      if (err->signature) return AwsStatus(Code::kUnauthenticated, "SignatureDoesNotMatch", err->message);
      return AwsStatus(Code::kInvalidArgument, "IncompleteBody", "The request body is not valid aws-chunked encoding: " + err->message);
    }
    if (const std::string* dl = req.Header("x-amz-decoded-content-length")) {
      auto n = ParseInt(*dl);
      if (!n || static_cast<uint64_t>(*n) != decoded.data.size()) {
        return AwsStatus(Code::kInvalidArgument, "IncompleteBody", "You did not provide the number of bytes specified by the "
                         "x-amz-decoded-content-length header (" + *dl + "); the body decodes to " +
                         std::to_string(decoded.data.size()) + " bytes.");
      }
    }
    data = std::move(decoded.data);
    trailers = std::move(decoded.trailers);
    req.body.clear();
  } else {
    data = std::move(req.body);
  }

  if (const std::string* md5 = req.Header("Content-MD5")) {
    auto raw = DecodeBase64(*md5);
    if (!raw || raw->size() != 16) return AwsStatus(Code::kInvalidArgument, "InvalidDigest", "The Content-MD5 you specified was invalid.");
    if (s3::Md5Base64(data) != *md5) {
      return AwsStatus(Code::kInvalidArgument, "BadDigest", "The Content-MD5 you specified did not match what we received.");
    }
  }
  std::string requested = req.Header("x-amz-sdk-checksum-algorithm") ? *req.Header("x-amz-sdk-checksum-algorithm")
                          : req.Header("x-amz-checksum-algorithm") ? *req.Header("x-amz-checksum-algorithm")
                                                                     : "";
  for (const auto& alg : s3::ChecksumAlgorithms()) {
    std::string name = "x-amz-checksum-" + Lower(alg);
    std::optional<std::string> given;
    if (const std::string* h = req.Header(name)) given = *h;
    for (const auto& [k, v] : trailers) {
      if (k == name) given = v;
    }
    bool wanted = Lower(requested) == Lower(alg);
    if (!given && !wanted) continue;
    std::string computed = *s3::Checksum(alg, data);
    if (given && *given != computed) {
      return AwsStatus(Code::kInvalidArgument, "BadDigest", "The " + alg + " you specified did not match the calculated checksum.");
    }
    (*checksums)[alg] = computed;
  }
  return data;
}

void AddObjectHeaders(HttpResponse& r, const s3::Object& o, bool with_checksums) {
  r.headers.emplace_back("Content-Type", o.meta.content_type);
  r.headers.emplace_back("ETag", o.etag);
  r.headers.emplace_back("Last-Modified", HttpDate(o.last_modified_ms));
  r.headers.emplace_back("Accept-Ranges", "bytes");
  for (const auto& [k, v] : o.meta.headers) r.headers.emplace_back(k, v);
  if (o.parts_count > 0) r.headers.emplace_back("x-amz-mp-parts-count", std::to_string(o.parts_count));
  if (with_checksums) {
    for (const auto& [alg, v] : o.meta.checksums) r.headers.emplace_back("x-amz-checksum-" + Lower(alg), v);
  }
}

std::string EncodeToken(const std::string& last) {
  std::string out;
  AppendBase64(out, "v1:" + last);
  return out;
}

Result<std::string> DecodeToken(const std::string& token) {
  auto raw = DecodeBase64(token);
  if (!raw || !StartsWith(*raw, "v1:")) {
    return AwsStatus(Code::kInvalidArgument, "InvalidArgument", "The continuation token provided is incorrect");
  }
  return raw->substr(3);
}

}  // namespace

S3Service::S3Service(ServiceHost& host) : host_(host) {}
S3Service::~S3Service() = default;

Result<std::string> S3Service::ReadObject(std::string_view bucket, std::string_view key, uint64_t max_bytes) {
  return s3::ReadObject(host_, bucket, key, max_bytes);
}

Status S3Service::Start() {
  Result<s3::S3ObjectStore> store = s3::S3ObjectStore::Open(host_.store().db(), host_.data_dir());
  if (!store.ok()) return store.status();
  objects_.emplace(std::move(store).value());
  return Status::Ok();
}

HttpResponse S3Service::ErrorResponse(const AwsError& error, const std::string& request_id) const {
  std::string code = error.type;
  int status = error.http_status;
  // Authentication failures come worded for Lambda (control/aws_error.h); S3 names them so.
  if (code == "InvalidSignatureException") {
    using net::sigv4::Failure;
    if (error.signature_failure == Failure::kPresignExpired) {
      code = "AccessDenied";
    } else if (error.signature_failure == Failure::kRequestExpired) {
      code = "RequestTimeTooSkewed";
    } else {
      code = "SignatureDoesNotMatch";
    }
  } else if (code == "UnrecognizedClientException") {
    code = "InvalidAccessKeyId";
  } else if (code == "MissingAuthenticationTokenException") {
    code = "AccessDenied";
  } else if (code == "IncompleteSignatureException") {
    code = "AuthorizationHeaderMalformed";
    status = 400;
  } else if (code == "ServiceException" || code.empty()) {
    code = "InternalError";
  } else if (code == "RequestEntityTooLargeException" || code == "RequestTooLargeException") {
    code = "EntityTooLarge";
    status = 400;
  }
  XmlWriter x;
  x.Declaration();
  x.Open("Error");
  x.Leaf("Code", code);
  x.Leaf("Message", error.message);
  x.Leaf("RequestId", request_id);
  x.Close("Error");
  HttpResponse r = Xml(status, x.Take());
  r.headers.emplace_back("x-amz-request-id", request_id);
  return r;
}

std::span<const ErrorStatus> S3Service::error_statuses() const { return kS3ErrorStatuses; }

Status S3Service::Handle(HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  if (!objects_) return AwsStatus(Code::kUnavailable, "ServiceUnavailable", "S3 has not started");
  Call c{req, info, {}, {}, ParseQuery(req.query, /*plus_is_space=*/false)};
  std::string vhost = VirtualHostBucket(req);
  std::string_view path = req.path;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (!vhost.empty()) {
    c.bucket = vhost;
    c.key = net::PercentDecode(path, false);
  } else {
    size_t slash = path.find('/');
    c.bucket = net::PercentDecode(path.substr(0, slash), false);
    if (slash != std::string_view::npos) c.key = net::PercentDecode(path.substr(slash + 1), false);
  }
  GEYSIR_ASSIGN_OR_RETURN(HttpResponse r, Route(c));
  r.headers.emplace_back("x-amz-request-id", info.request_id);
  r.headers.emplace_back("x-amz-id-2", info.request_id);
  resp->Send(std::move(r));
  return Status::Ok();
}

Result<HttpResponse> S3Service::Route(Call& c) {
  s3::S3ObjectStore& st = *objects_;
  const std::string& m = c.req.method;
  const int64_t now = host_.NowMs();

  // ---- the service: ListBuckets ----
  if (c.bucket.empty()) {
    if (m != "GET") return AwsStatus(Code::kUnimplemented, "MethodNotAllowed", "The specified method is not allowed against this resource.");
    XmlWriter x;
    x.Declaration();
    x.Open("ListAllMyBucketsResult", kXmlns);
    x.Open("Owner");
    x.Leaf("ID", host_.api().account_id);
    x.Leaf("DisplayName", "geysir");
    x.Close("Owner");
    x.Open("Buckets");
    GEYSIR_ASSIGN_OR_RETURN(const auto buckets, st.ListBuckets());
    for (const auto& b : buckets) {
      x.Open("Bucket");
      x.Leaf("Name", b.name);
      x.Leaf("CreationDate", IsoTimestamp(b.created_ms));
      x.Close("Bucket");
    }
    x.Close("Buckets");
    x.Close("ListAllMyBucketsResult");
    return Xml(200, x.Take());
  }

  // ---- bucket operations ----
  if (c.key.empty()) {
    if (m == "PUT" && c.Has("tagging")) {
      GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
      GEYSIR_ASSIGN_OR_RETURN(s3::XmlNode root, ParseBody(c.req.body, "Tagging"));
      std::vector<std::pair<std::string, std::string>> tags;
      if (const s3::XmlNode* set = root.Child("TagSet")) {
        for (const s3::XmlNode* t : set->Children("Tag")) {
          auto k = t->ChildText("Key");
          if (!k || k->empty()) return AwsStatus(Code::kInvalidArgument, "InvalidTag", "A tag needs a non-empty Key.");
          for (const auto& [ek, ev] : tags) {
            if (ek == *k) return AwsStatus(Code::kInvalidArgument, "InvalidTag", "Cannot provide multiple Tags with the same key: " + *k);
          }
          tags.emplace_back(*k, t->ChildText("Value").value_or(""));
        }
      }
      if (tags.size() > 50) return AwsStatus(Code::kInvalidArgument, "BadRequest", "Object tags cannot be greater than 50");
      GEYSIR_RETURN_IF_ERROR(st.SetBucketTags(c.bucket, std::move(tags)));
      return Empty(204);
    }
    if (m == "GET" && c.Has("tagging")) {
      GEYSIR_ASSIGN_OR_RETURN(s3::Bucket b, st.RequireBucket(c.bucket));
      if (!b.tags) return AwsStatus(Code::kNotFound, "NoSuchTagSet", "The TagSet does not exist");
      XmlWriter x;
      x.Declaration();
      x.Open("Tagging", kXmlns);
      x.Open("TagSet");
      for (const auto& [k, v] : *b.tags) {
        x.Open("Tag");
        x.Leaf("Key", k);
        x.Leaf("Value", v);
        x.Close("Tag");
      }
      x.Close("TagSet");
      x.Close("Tagging");
      return Xml(200, x.Take());
    }
    if (m == "DELETE" && c.Has("tagging")) {
      GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
      GEYSIR_RETURN_IF_ERROR(st.SetBucketTags(c.bucket, std::nullopt));
      return Empty(204);
    }
    if (m == "GET" && c.Has("location")) {
      GEYSIR_ASSIGN_OR_RETURN(s3::Bucket b, st.RequireBucket(c.bucket));
      XmlWriter x;
      x.Declaration();
      x.Open("LocationConstraint", kXmlns);
      if (b.region != "us-east-1") x.Raw(XmlEscape(b.region));
      x.Close("LocationConstraint");
      return Xml(200, x.Take());
    }
    if (m == "GET" && c.Has("uploads")) {
      GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
      XmlWriter x;
      x.Declaration();
      x.Open("ListMultipartUploadsResult", kXmlns);
      x.Leaf("Bucket", c.bucket);
      x.Leaf("MaxUploads", "1000");
      x.Leaf("IsTruncated", "false");
      GEYSIR_ASSIGN_OR_RETURN(const auto uploads, st.ListUploads(c.bucket));
      for (const auto& u : uploads) {
        x.Open("Upload");
        x.Leaf("Key", u.key);
        x.Leaf("UploadId", u.upload_id);
        x.Leaf("Initiated", IsoTimestamp(u.initiated_ms));
        x.Leaf("StorageClass", "STANDARD");
        x.Close("Upload");
      }
      x.Close("ListMultipartUploadsResult");
      return Xml(200, x.Take());
    }
    if (m == "POST" && c.Has("delete")) {
      GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
      std::map<std::string, std::string> ignored;
      GEYSIR_ASSIGN_OR_RETURN(std::string body, ReadPayload(host_, c.req, c.info, &ignored));
      GEYSIR_ASSIGN_OR_RETURN(s3::XmlNode root, ParseBody(body, "Delete"));
      bool quiet = Lower(root.ChildText("Quiet").value_or("false")) == "true";
      auto objects = root.Children("Object");
      if (objects.size() > 1000) {
        return AwsStatus(Code::kInvalidArgument, "MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                         "published schema: at most 1000 objects per DeleteObjects.");
      }
      XmlWriter x;
      x.Declaration();
      x.Open("DeleteResult", kXmlns);
      for (const s3::XmlNode* o : objects) {
        std::string key = o->ChildText("Key").value_or("");
        if (key.empty()) {
          x.Open("Error");
          x.Leaf("Key", key);
          x.Leaf("Code", "InvalidArgument");
          x.Leaf("Message", "An object key must not be empty.");
          x.Close("Error");
          continue;
        }
        GEYSIR_RETURN_IF_ERROR(st.DeleteObject(c.bucket, key).status());
        if (!quiet) {
          x.Open("Deleted");
          x.Leaf("Key", key);
          x.Close("Deleted");
        }
      }
      x.Close("DeleteResult");
      return Xml(200, x.Take());
    }
    if (m == "PUT") {
      if (!ValidBucketName(c.bucket)) {
        return AwsStatus(Code::kInvalidArgument, "InvalidBucketName", "The specified bucket is not valid: " + c.bucket +
                         " (3-63 characters of a-z, 0-9, '.' and '-', starting and ending "
                         "with a letter or digit).");
      }
      std::string region = "us-east-1";
      if (!c.req.body.empty()) {
        GEYSIR_ASSIGN_OR_RETURN(s3::XmlNode root, ParseBody(c.req.body, "CreateBucketConfiguration"));
        if (auto lc = root.ChildText("LocationConstraint"); lc && !lc->empty()) region = *lc;
      }
      GEYSIR_ASSIGN_OR_RETURN(const bool created, st.CreateBucket(c.bucket, region, now));
      if (!created) {
        GEYSIR_ASSIGN_OR_RETURN(const auto existing, st.GetBucket(c.bucket));
        const s3::Bucket& b = *existing;
        // us-east-1 answers 200 to its owner re-creating a bucket; other regions say so.
        if (b.region != "us-east-1" || region != "us-east-1") {
          return AwsStatus(Code::kAlreadyExists, "BucketAlreadyOwnedByYou",
                           "Your previous request to create the named bucket succeeded and you already own it.");
        }
      }
      HttpResponse r = Empty(200);
      r.headers.emplace_back("Location", "/" + c.bucket);
      return r;
    }
    if (m == "HEAD") {
      GEYSIR_ASSIGN_OR_RETURN(s3::Bucket b, st.RequireBucket(c.bucket));
      HttpResponse r = Empty(200);
      r.headers.emplace_back("x-amz-bucket-region", b.region);
      return r;
    }
    if (m == "DELETE") {
      GEYSIR_RETURN_IF_ERROR(st.DeleteBucket(c.bucket));
      return Empty(204);
    }
    if (m == "GET") {
      GEYSIR_ASSIGN_OR_RETURN(s3::Bucket b, st.RequireBucket(c.bucket));
      bool v2 = c.Q("list-type") == "2";
      bool url = c.Q("encoding-type") == "url";
      auto enc = [&](const std::string& s) { return url ? UrlEncodeKey(s) : s; };
      s3::ListQuery q;
      q.prefix = c.Q("prefix");
      q.delimiter = c.Q("delimiter");
      if (c.Has("max-keys")) {
        auto mk = ParseInt(c.Q("max-keys"));
        if (!mk || *mk < 0) return AwsStatus(Code::kInvalidArgument, "InvalidArgument", "Provided max-keys not an integer or within integer range");
        q.max_keys = static_cast<int>(std::min<int64_t>(*mk, 1000));
      }
      if (v2) {
        if (c.Has("continuation-token")) {
          GEYSIR_ASSIGN_OR_RETURN(q.after, DecodeToken(c.Q("continuation-token")));
        } else {
          q.after = c.Q("start-after");
        }
      } else {
        q.after = c.Q("marker");
      }
      GEYSIR_ASSIGN_OR_RETURN(s3::ListPage page, st.List(c.bucket, q));
      XmlWriter x;
      x.Declaration();
      x.Open("ListBucketResult", kXmlns);
      x.Leaf("Name", b.name);
      x.Leaf("Prefix", enc(q.prefix));
      if (!v2) {
        x.Leaf("Marker", enc(c.Q("marker")));
        if (page.truncated && !q.delimiter.empty()) x.Leaf("NextMarker", enc(page.last));
      }
      if (!q.delimiter.empty()) x.Leaf("Delimiter", enc(q.delimiter));
      x.Leaf("MaxKeys", std::to_string(q.max_keys));
      if (url) x.Leaf("EncodingType", "url");
      if (v2) {
        x.Leaf("KeyCount", std::to_string(page.objects.size() + page.common_prefixes.size()));
        if (c.Has("continuation-token")) x.Leaf("ContinuationToken", c.Q("continuation-token"));
        if (page.truncated) x.Leaf("NextContinuationToken", EncodeToken(page.last));
        if (c.Has("start-after")) x.Leaf("StartAfter", enc(c.Q("start-after")));
      }
      x.Leaf("IsTruncated", page.truncated ? "true" : "false");
      for (const auto& o : page.objects) {
        x.Open("Contents");
        x.Leaf("Key", enc(o.key));
        x.Leaf("LastModified", IsoTimestamp(o.last_modified_ms));
        x.Leaf("ETag", o.etag);
        x.Leaf("Size", std::to_string(o.size));
        if (!v2 || c.Q("fetch-owner") == "true") {
          x.Open("Owner");
          x.Leaf("ID", host_.api().account_id);
          x.Leaf("DisplayName", "geysir");
          x.Close("Owner");
        }
        x.Leaf("StorageClass", "STANDARD");
        x.Close("Contents");
      }
      for (const auto& p : page.common_prefixes) {
        x.Open("CommonPrefixes");
        x.Leaf("Prefix", enc(p));
        x.Close("CommonPrefixes");
      }
      x.Close("ListBucketResult");
      return Xml(200, x.Take());
    }
    return AwsStatus(Code::kUnimplemented, "MethodNotAllowed", "The specified method is not allowed against this resource.");
  }

  // ---- object operations ----
  if (c.Has("tagging") || c.Has("acl") || c.Has("retention") || c.Has("legal-hold") || c.Has("attributes")) {
    return AwsStatus(Code::kUnimplemented, "NotImplemented", "Geysir's S3 does not implement object tagging, ACLs, retention or attributes.");
  }

  if (m == "POST" && c.Has("uploads")) {
    GEYSIR_ASSIGN_OR_RETURN(s3::Upload u, st.CreateUpload(c.bucket, c.key, MetaFromHeaders(c.req), c.H("x-amz-checksum-algorithm"), now));
    XmlWriter x;
    x.Declaration();
    x.Open("InitiateMultipartUploadResult", kXmlns);
    x.Leaf("Bucket", u.bucket);
    x.Leaf("Key", u.key);
    x.Leaf("UploadId", u.upload_id);
    x.Close("InitiateMultipartUploadResult");
    HttpResponse r = Xml(200, x.Take());
    if (!u.checksum_algorithm.empty()) r.headers.emplace_back("x-amz-checksum-algorithm", u.checksum_algorithm);
    return r;
  }
  if (m == "POST" && c.Has("uploadId")) {
    GEYSIR_ASSIGN_OR_RETURN(s3::Upload u, st.RequireUpload(c.bucket, c.key, c.Q("uploadId")));
    GEYSIR_ASSIGN_OR_RETURN(s3::XmlNode root, ParseBody(c.req.body, "CompleteMultipartUpload"));
    std::vector<s3::CompletedPart> parts;
    for (const s3::XmlNode* p : root.Children("Part")) {
      auto n = ParseInt(p->ChildText("PartNumber").value_or(""));
      if (!n || *n < 1 || *n > 10000) {
        return AwsStatus(Code::kInvalidArgument, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive");
      }
      parts.push_back({static_cast<int>(*n), p->ChildText("ETag").value_or("")});
    }
    GEYSIR_ASSIGN_OR_RETURN(s3::Object o, st.CompleteUpload(u, parts, now));
    XmlWriter x;
    x.Declaration();
    x.Open("CompleteMultipartUploadResult", kXmlns);
    const std::string* host = c.req.Header("Host");
    x.Leaf("Location", "http://" + (host ? *host : std::string("localhost")) + "/" + o.bucket + "/" +
                           UrlEncodeKey(o.key));
    x.Leaf("Bucket", o.bucket);
    x.Leaf("Key", o.key);
    x.Leaf("ETag", o.etag);
    x.Close("CompleteMultipartUploadResult");
    return Xml(200, x.Take());
  }
  if (m == "DELETE" && c.Has("uploadId")) {
    GEYSIR_ASSIGN_OR_RETURN(s3::Upload u, st.RequireUpload(c.bucket, c.key, c.Q("uploadId")));
    GEYSIR_RETURN_IF_ERROR(st.AbortUpload(u));
    return Empty(204);
  }
  if (m == "GET" && c.Has("uploadId")) {
    GEYSIR_ASSIGN_OR_RETURN(s3::Upload u, st.RequireUpload(c.bucket, c.key, c.Q("uploadId")));
    XmlWriter x;
    x.Declaration();
    x.Open("ListPartsResult", kXmlns);
    x.Leaf("Bucket", u.bucket);
    x.Leaf("Key", u.key);
    x.Leaf("UploadId", u.upload_id);
    x.Leaf("StorageClass", "STANDARD");
    x.Leaf("MaxParts", "1000");
    x.Leaf("IsTruncated", "false");
    if (!u.checksum_algorithm.empty()) x.Leaf("ChecksumAlgorithm", u.checksum_algorithm);
    GEYSIR_ASSIGN_OR_RETURN(const auto listed_parts, st.ListParts(u.upload_id));
    for (const auto& p : listed_parts) {
      x.Open("Part");
      x.Leaf("PartNumber", std::to_string(p.part_number));
      x.Leaf("LastModified", IsoTimestamp(p.last_modified_ms));
      x.Leaf("ETag", p.etag);
      x.Leaf("Size", std::to_string(p.size));
      for (const auto& [alg, v] : p.checksums) x.Leaf("Checksum" + alg, v);
      x.Close("Part");
    }
    x.Close("ListPartsResult");
    return Xml(200, x.Take());
  }

  if (m == "PUT" && c.Has("uploadId")) {
    auto n = ParseInt(c.Q("partNumber"));
    if (!n || *n < 1 || *n > 10000) {
      return AwsStatus(Code::kInvalidArgument, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive");
    }
    GEYSIR_ASSIGN_OR_RETURN(s3::Upload u, st.RequireUpload(c.bucket, c.key, c.Q("uploadId")));
    std::map<std::string, std::string> checksums;
    std::string data;
    bool copy = c.req.Header("x-amz-copy-source") != nullptr;
    if (copy) {
      // UploadPartCopy: a range of an existing object becomes the part.
      std::string src = net::PercentDecode(c.H("x-amz-copy-source"), false);
      if (!src.empty() && src.front() == '/') src.erase(0, 1);
      if (size_t q = src.find("?versionId="); q != std::string::npos) src.resize(q);
      size_t slash = src.find('/');
      if (slash == std::string::npos) return AwsStatus(Code::kInvalidArgument, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
      GEYSIR_ASSIGN_OR_RETURN(s3::Object so, st.RequireObject(src.substr(0, slash), src.substr(slash + 1)));
      std::string range_header = c.H("x-amz-copy-source-range");
      GEYSIR_ASSIGN_OR_RETURN(const std::optional<Range> range, ParseRange(range_header.empty() ? nullptr : &range_header, so.size));
      Result<std::string> bytes = range ? st.ReadBlob(so.sha256, range->first, range->last - range->first + 1)
                                        : st.ReadBlob(so.sha256);
      if (!bytes.ok()) return AwsStatus(Code::kInternal, "InternalError", bytes.status().message());
      data = std::move(bytes).value();
    } else {
      GEYSIR_ASSIGN_OR_RETURN(data, ReadPayload(host_, c.req, c.info, &checksums));
    }
    Result<s3::Blob> blob = st.WriteBlob(data);
    if (!blob.ok()) return AwsStatus(Code::kInternal, "InternalError", blob.status().message());
    s3::Part p;
    p.part_number = static_cast<int>(*n);
    p.sha256 = blob->sha256;
    p.size = blob->size;
    p.etag = "\"" + blob->md5_hex + "\"";
    p.last_modified_ms = now;
    p.checksums = checksums;
    GEYSIR_RETURN_IF_ERROR(st.PutPart(u.upload_id, p));
    if (copy) {
      XmlWriter x;
      x.Declaration();
      x.Open("CopyPartResult", kXmlns);
      x.Leaf("LastModified", IsoTimestamp(now));
      x.Leaf("ETag", p.etag);
      x.Close("CopyPartResult");
      return Xml(200, x.Take());
    }
    HttpResponse r = Empty(200);
    r.headers.emplace_back("ETag", p.etag);
    for (const auto& [alg, v] : checksums) r.headers.emplace_back("x-amz-checksum-" + Lower(alg), v);
    return r;
  }

  if (m == "PUT" && c.req.Header("x-amz-copy-source") != nullptr) {
    std::string src = net::PercentDecode(c.H("x-amz-copy-source"), false);
    if (!src.empty() && src.front() == '/') src.erase(0, 1);
    if (size_t q = src.find("?versionId="); q != std::string::npos) src.resize(q);
    size_t slash = src.find('/');
    if (slash == std::string::npos || slash + 1 == src.size()) {
      return AwsStatus(Code::kInvalidArgument, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
    }
    GEYSIR_ASSIGN_OR_RETURN(s3::Object so, st.RequireObject(src.substr(0, slash), src.substr(slash + 1)));
    GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
    bool replace = c.H("x-amz-metadata-directive") == "REPLACE";
    if (!replace && so.bucket == c.bucket && so.key == c.key) {
      return AwsStatus(Code::kInvalidArgument, "InvalidRequest",
                       "This copy request is illegal because it is trying to copy an object to itself without changing the "
                       "object's metadata, storage class, website redirect location or encryption attributes.");
    }
    s3::Object o = so;
    o.bucket = c.bucket;
    o.key = c.key;
    o.last_modified_ms = now;
    if (replace) {
      o.meta = MetaFromHeaders(c.req);
      o.meta.checksums = so.meta.checksums;
    }
    GEYSIR_RETURN_IF_ERROR(st.PutObject(o));
    XmlWriter x;
    x.Declaration();
    x.Open("CopyObjectResult", kXmlns);
    x.Leaf("LastModified", IsoTimestamp(now));
    x.Leaf("ETag", o.etag);
    x.Close("CopyObjectResult");
    return Xml(200, x.Take());
  }

  if (m == "PUT") {
    GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
    std::map<std::string, std::string> checksums;
    s3::ObjectMeta meta = MetaFromHeaders(c.req);
    GEYSIR_ASSIGN_OR_RETURN(std::string data, ReadPayload(host_, c.req, c.info, &checksums));
    Result<s3::Blob> blob = st.WriteBlob(data);
    if (!blob.ok()) return AwsStatus(Code::kInternal, "InternalError", blob.status().message());
    s3::Object o;
    o.bucket = c.bucket;
    o.key = c.key;
    o.sha256 = blob->sha256;
    o.size = blob->size;
    o.etag = "\"" + blob->md5_hex + "\"";
    o.last_modified_ms = now;
    o.meta = std::move(meta);
    o.meta.checksums = checksums;
    GEYSIR_RETURN_IF_ERROR(st.PutObject(o));
    HttpResponse r = Empty(200);
    r.headers.emplace_back("ETag", o.etag);
    for (const auto& [alg, v] : checksums) r.headers.emplace_back("x-amz-checksum-" + Lower(alg), v);
    return r;
  }

  if (m == "DELETE") {
    GEYSIR_RETURN_IF_ERROR(st.RequireBucket(c.bucket).status());
    GEYSIR_RETURN_IF_ERROR(st.DeleteObject(c.bucket, c.key).status());
    return Empty(204);
  }

  if (m == "GET" || m == "HEAD") {
    GEYSIR_ASSIGN_OR_RETURN(s3::Object o, st.RequireObject(c.bucket, c.key));
    std::string if_match = c.H("If-Match");
    if (!if_match.empty() && !EtagMatches(if_match, o.etag)) {
      return AwsStatus(Code::kFailedPrecondition, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
    }
    std::string if_none = c.H("If-None-Match");
    if (!if_none.empty() && EtagMatches(if_none, o.etag)) {
      HttpResponse r = Empty(304);
      r.headers.emplace_back("ETag", o.etag);
      r.headers.emplace_back("Last-Modified", HttpDate(o.last_modified_ms));
      return r;
    }
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<Range> range, ParseRange(c.req.Header("Range"), o.size));
    bool checksums = Lower(c.H("x-amz-checksum-mode")) == "enabled" && !range;
    HttpResponse r = Empty(range ? 206 : 200);
    AddObjectHeaders(r, o, checksums);
    // Presigned links may override response headers (response-content-type=...).
    static const std::pair<const char*, const char*> kOverrides[] = {
        {"response-content-type", "Content-Type"},
        {"response-content-disposition", "content-disposition"},
        {"response-content-encoding", "content-encoding"},
        {"response-content-language", "content-language"},
        {"response-cache-control", "cache-control"},
        {"response-expires", "expires"}};
    for (const auto& [param, header] : kOverrides) {
      if (!c.Has(param)) continue;
      const std::string lower = Lower(header);  // a local: Clang 14 cannot capture a structured binding
      std::erase_if(r.headers, [&](const auto& h) { return Lower(h.first) == lower; });
      r.headers.emplace_back(header, c.Q(param));
    }
    if (range) {
      r.headers.emplace_back("Content-Range", "bytes " + std::to_string(range->first) + "-" +
                                                  std::to_string(range->last) + "/" + std::to_string(o.size));
    }
    // HEAD reads the body too: the HTTP server derives Content-Length from it and drops the
    // bytes (no streaming yet).
    Result<std::string> body =
        range ? st.ReadBlob(o.sha256, range->first, range->last - range->first + 1) : st.ReadBlob(o.sha256);
    if (!body.ok()) return AwsStatus(Code::kInternal, "InternalError", body.status().message());
    r.body = std::move(body).value();
    return r;
  }
  return AwsStatus(Code::kUnimplemented, "MethodNotAllowed", "The specified method is not allowed against this resource.");
}

}  // namespace geysir::control
