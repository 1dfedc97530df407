// Unit tests for S3's wire pieces: aws-chunked decoding against AWS's published example,
// checksums against their standard check values, the XML reader, object URLs, and the object
// store's listing (delimiters, continuation) and blob collection on a real SQLite file.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "control/db.h"
#include "control/services/s3/s3_chunked.h"
#include "control/services/s3/s3_objects.h"
#include "control/services/s3/s3_store.h"
#include "control/services/s3/s3_xml.h"
#include "tests/unit/control/store_test_util.h"

using namespace geysir::control;
using namespace geysir::control::s3;
using geysir::Code;
using geysir::Status;

namespace {

// AWS's "Example: PUT Object" for SigV4 streaming: 65536 + 1024 bytes of 'a'.
const char* kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const char* kSeed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const char* kSig1 = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
const char* kSig2 = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
const char* kSig3 = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";

ChunkSigning AwsExampleSigning() {
  ChunkSigning s;
  s.signing_key = SigningKey(kSecret, "20130524", "us-east-1", "s3");
  s.amz_date = "20130524T000000Z";
  s.scope = "20130524/us-east-1/s3/aws4_request";
  s.seed_signature = kSeed;
  return s;
}

std::string AwsExampleBody(const char* sig1 = kSig1) {
  return std::string("10000;chunk-signature=") + sig1 + "\r\n" + std::string(65536, 'a') + "\r\n" +
         "400;chunk-signature=" + kSig2 + "\r\n" + std::string(1024, 'a') + "\r\n" + "0;chunk-signature=" + kSig3 +
         "\r\n\r\n";
}

}  // namespace

TEST_CASE("aws-chunked: AWS's streaming example decodes and verifies") {
  ChunkSigning signing = AwsExampleSigning();
  DecodedBody out;
  REQUIRE_FALSE(DecodeAwsChunked(AwsExampleBody(), &signing, false, &out));
  CHECK(out.data == std::string(66560, 'a'));
  CHECK(out.trailers.empty());
}

TEST_CASE("aws-chunked: a changed byte, a reordered chain or a missing final chunk is refused") {
  ChunkSigning signing = AwsExampleSigning();
  DecodedBody out;
  std::string body = AwsExampleBody();
  std::string flipped = body;
  flipped[100] = 'b';
  auto err = DecodeAwsChunked(flipped, &signing, false, &out);
  REQUIRE(err);
  CHECK(err->signature);
  // The first chunk's signature given where the second's belongs.
  err = DecodeAwsChunked(AwsExampleBody(kSig2), &signing, false, &out);
  REQUIRE(err);
  CHECK(err->signature);
  // Truncated before the final zero-length chunk.
  err = DecodeAwsChunked(body.substr(0, body.find("0;chunk-signature")), &signing, false, &out);
  REQUIRE(err);
  CHECK_FALSE(err->signature);
  // A wrong secret fails the first chunk.
  ChunkSigning wrong = signing;
  wrong.signing_key = SigningKey("not the secret", "20130524", "us-east-1", "s3");
  err = DecodeAwsChunked(body, &wrong, false, &out);
  REQUIRE(err);
  CHECK(err->signature);
  // Unsigned chunks where signed ones are required.
  err = DecodeAwsChunked("3\r\nabc\r\n0\r\n\r\n", &signing, false, &out);
  REQUIRE(err);
  CHECK(err->signature);
}

TEST_CASE("aws-chunked: unsigned body with trailing checksum") {
  DecodedBody out;
  std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
  REQUIRE_FALSE(DecodeAwsChunked(body, nullptr, true, &out));
  CHECK(out.data == "hello world");
  REQUIRE(out.trailers.size() == 1);
  CHECK(out.trailers[0].first == "x-amz-checksum-crc32");
  CHECK(out.trailers[0].second == "DUoRhQ==");
  CHECK(*Checksum("CRC32", "hello world") == "DUoRhQ==");
  // Malformed shapes.
  for (const char* bad : {"zz\r\nabc\r\n0\r\n\r\n", "10\r\nabc\r\n0\r\n\r\n", "3\r\nabcX\r\n0\r\n\r\n",
                          "3\r\nabc\r\n0\r\n\r\ntrailing"}) {
    auto err = DecodeAwsChunked(bad, nullptr, false, &out);
    REQUIRE(err);
    CHECK_FALSE(err->signature);
  }
}

TEST_CASE("checksums match the algorithms' standard check values") {
  // The check value of each CRC is its CRC of "123456789", as base64 of the big-endian bytes.
  auto b64 = [](std::initializer_list<unsigned char> bytes) {
    std::string raw(bytes.begin(), bytes.end());
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < raw.size(); i += 3) {
      uint32_t n = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8) | uint8_t(raw[i + 2]);
      for (int k = 3; k >= 0; --k) out += kAlphabet[(n >> (6 * k)) & 63];
    }
    if (raw.size() - i == 1) {
      uint32_t n = uint8_t(raw[i]) << 16;
      out += std::string{kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
    } else if (raw.size() - i == 2) {
      uint32_t n = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8);
      out += std::string{kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], '='};
    }
    return out;
  };
  CHECK(*Checksum("CRC32", "123456789") == b64({0xCB, 0xF4, 0x39, 0x26}));
  CHECK(*Checksum("crc32c", "123456789") == b64({0xE3, 0x06, 0x92, 0x83}));
  CHECK(*Checksum("CRC64NVME", "123456789") == b64({0xAE, 0x8B, 0x14, 0x86, 0x0A, 0x79, 0x98, 0x88}));
  CHECK(*Checksum("SHA256", "") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  CHECK(*Checksum("SHA1", "") == "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
  CHECK_FALSE(Checksum("MD4", "x"));
  CHECK(Md5Hex("") == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("XML: namespaces dropped, text and children kept, DTDs refused") {
  std::string error;
  auto n = ParseXml(
      "<?xml version=\"1.0\"?><Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet>"
      "<Tag><Key>a&amp;b</Key><Value>1</Value></Tag><Tag><Key>c</Key><Value></Value></Tag></TagSet></Tagging>",
      &error);
  REQUIRE(n);
  CHECK(n->name == "Tagging");
  auto tags = n->Child("TagSet")->Children("Tag");
  REQUIRE(tags.size() == 2);
  CHECK(*tags[0]->ChildText("Key") == "a&b");
  CHECK(*tags[1]->ChildText("Value") == "");
  CHECK_FALSE(ParseXml("<a><b></a>", &error));
  CHECK_FALSE(ParseXml("", &error));
  CHECK_FALSE(ParseXml("<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>", &error));
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<d>";
  for (int i = 0; i < 100; ++i) deep += "</d>";
  CHECK_FALSE(ParseXml(deep, &error));
  CHECK(error.find("deeply") != std::string::npos);
}

TEST_CASE("object URLs in every form AWS accepts, and Geysir's own") {
  auto check = [](const char* url, const char* bucket, const char* key) {
    auto r = ParseObjectUrl(url);
    INFO(url);
    REQUIRE(r);
    CHECK(r->bucket == bucket);
    CHECK(r->key == key);
  };
  check("https://s3.amazonaws.com/zappa-deploys/tinyapp-dev-template-1.json", "zappa-deploys",
        "tinyapp-dev-template-1.json");
  check("https://s3.eu-west-1.amazonaws.com/b/dir/k%20x.json", "b", "dir/k x.json");
  check("https://s3-eu-west-1.amazonaws.com/b/k", "b", "k");
  check("https://my.bucket.s3.amazonaws.com/k?versionId=1", "my.bucket", "k");
  check("https://b.s3.us-east-2.amazonaws.com/a/b/c", "b", "a/b/c");
  check("s3://b/k/l", "b", "k/l");
  check("http://127.0.0.1:9000/b/k", "b", "k");
  check("http://b.s3.localhost:9000/k", "b", "k");
  CHECK_FALSE(ParseObjectUrl("https://s3.amazonaws.com/bucket-only"));
  CHECK_FALSE(ParseObjectUrl("ftp://x/y/z"));
  CHECK_FALSE(ParseObjectUrl("https://s3.amazonaws.com/"));
}

namespace {

struct StoreFixture {
  testing::TempDir dir;
  Db db = Open();
  Db Open() {
    auto r = Db::Open(dir / "s.db", {});
    REQUIRE(r.ok());
    return std::move(r).value();
  }
  S3ObjectStore Store() {
    auto r = S3ObjectStore::Open(db, dir.path());
    REQUIRE(r.ok());
    return std::move(r).value();
  }
  void Put(S3ObjectStore& st, const std::string& key, const std::string& data) {
    auto blob = st.WriteBlob(data);
    REQUIRE(blob.ok());
    Object o;
    o.bucket = "b";
    o.key = key;
    o.sha256 = blob->sha256;
    o.size = blob->size;
    o.etag = "\"" + blob->md5_hex + "\"";
    REQUIRE(st.PutObject(o).ok());
  }
};

std::vector<std::string> Names(const ListPage& p) {
  std::vector<std::string> out;
  for (const auto& o : p.objects) out.push_back(o.key);
  for (const auto& c : p.common_prefixes) out.push_back(c);
  return out;
}

}  // namespace

TEST_CASE("object store: listing with prefix, delimiter and continuation") {
  StoreFixture f;
  S3ObjectStore st = f.Store();
  REQUIRE(*st.CreateBucket("b", "us-east-1", 1));
  CHECK_FALSE(*st.CreateBucket("b", "us-east-1", 2));
  for (const char* k : {"a/1", "a/2", "a/b/3", "b/4", "c", "d/"}) f.Put(st, k, k);
  ListQuery q;
  q.delimiter = "/";
  ListPage p = *st.List("b", q);
  CHECK(Names(p) == std::vector<std::string>{"c", "a/", "b/", "d/"});
  CHECK_FALSE(p.truncated);
  q.max_keys = 2;
  p = *st.List("b", q);
  CHECK(Names(p) == std::vector<std::string>{"a/", "b/"});
  CHECK(p.truncated);
  q.after = p.last;
  p = *st.List("b", q);
  CHECK(Names(p) == std::vector<std::string>{"c", "d/"});
  CHECK_FALSE(p.truncated);
  ListQuery pre;
  pre.prefix = "a/";
  CHECK(Names(*st.List("b", pre)) == std::vector<std::string>{"a/1", "a/2", "a/b/3"});
  pre.delimiter = "/";
  CHECK(Names(*st.List("b", pre)) == std::vector<std::string>{"a/1", "a/2", "a/b/"});
  ListQuery zero;
  zero.max_keys = 0;
  p = *st.List("b", zero);
  CHECK(Names(p).empty());
  CHECK(p.truncated);
}

TEST_CASE("object store: blobs are shared, collected when unreferenced, swept at open") {
  StoreFixture f;
  std::string blob_path;
  {
    S3ObjectStore st = f.Store();
    REQUIRE(*st.CreateBucket("b", "us-east-1", 1));
    f.Put(st, "x", "same bytes");
    f.Put(st, "y", "same bytes");
    Object x = *st.RequireObject("b", "x");
    blob_path = st.blobs_dir() + "/" + x.sha256;
    struct stat sb {};
    REQUIRE(::stat(blob_path.c_str(), &sb) == 0);
    CHECK(*st.DeleteObject("b", "x"));
    CHECK(::stat(blob_path.c_str(), &sb) == 0);  // "y" still uses it
    CHECK(*st.DeleteObject("b", "y"));
    CHECK(::stat(blob_path.c_str(), &sb) != 0);
    CHECK_FALSE(*st.DeleteObject("b", "y"));
    // A blob written but never committed (a crash before the row) is swept at the next open.
    auto orphan = st.WriteBlob("orphan");
    REQUIRE(orphan.ok());
    blob_path = st.blobs_dir() + "/" + orphan->sha256;
    REQUIRE(::stat(blob_path.c_str(), &sb) == 0);
  }
  S3ObjectStore again = f.Store();
  struct stat sb {};
  CHECK(::stat(blob_path.c_str(), &sb) != 0);
  Status missing = again.DeleteBucket("missing");
  CHECK(missing.code() == Code::kNotFound);
  CHECK(missing.aws_type() == "NoSuchBucket");
  CHECK(FromStatus(missing).http_status == 404);
}

TEST_CASE("object store: multipart completion concatenates and checks parts") {
  StoreFixture f;
  S3ObjectStore st = f.Store();
  REQUIRE(*st.CreateBucket("b", "us-east-1", 1));
  Upload u = *st.CreateUpload("b", "k", {}, "", 5);
  std::string big(5 * 1024 * 1024, 'x');
  auto add = [&](int n, const std::string& data) {
    auto blob = st.WriteBlob(data);
    REQUIRE(blob.ok());
    Part p;
    p.part_number = n;
    p.sha256 = blob->sha256;
    p.size = blob->size;
    p.etag = "\"" + blob->md5_hex + "\"";
    REQUIRE(st.PutPart(u.upload_id, p).ok());
    return p.etag;
  };
  std::string e1 = add(1, big), e2 = add(2, "end");
  Object o = *st.CompleteUpload(u, {{1, e1}, {2, e2}}, 9);
  CHECK(o.size == big.size() + 3);
  CHECK(o.etag.size() == 2 + 32 + 2);
  CHECK(o.etag.substr(33) == "-2\"");
  auto bytes = st.ReadBlob(o.sha256, big.size() - 1);
  REQUIRE(bytes.ok());
  CHECK(*bytes == "xend");
  CHECK(st.ListParts(u.upload_id)->empty());
  auto gone = st.RequireUpload("b", "k", u.upload_id);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.status().aws_type() == "NoSuchUpload");
  CHECK(FromStatus(gone.status()).http_status == 404);
}
