#include "control/code_store.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <random>

#include "store_test_util.h"

using namespace geysir;
using namespace geysir::control;
using namespace geysir::control::testing;

namespace {

// Nothing but the (empty) blobs dir in code/, nothing in tmp/.
void RequireNothingStored(const CodeStore& cs) {
  CHECK(ListDir(cs.tmp_dir()) == std::vector<std::string>{});
  CHECK(ListDir(cs.code_root()) == std::vector<std::string>{"blobs"});
  CHECK(ListDir(cs.code_root() + "/blobs").empty());
}

std::string HelloZip(const std::string& body = "def handler(e, c):\n    return 'hi'\n") {
  ZipBuilder b;
  b.File("app.py", body).File("lib/util.py", "X = 1\n").File("run.sh", "#!/bin/sh\n", S_IFREG | 0755);
  return b.Bytes();
}

}  // namespace

TEST_CASE("sha256 helpers", "[code_store]") {
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256Base64("abc") == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
  CHECK(Base64Encode("") == "");
}

TEST_CASE("code store: put unpacks read-only and is idempotent", "[code_store]") {
  TempDir dir;
  auto cs = CodeStore::Open(dir.path());
  REQUIRE(cs.ok());
  CHECK(ModeOf(dir / "tmp") == 0700);
  CHECK(ModeOf(dir / "code/blobs") == 0700);
  CHECK(ModeOf(dir / "code") == 0755);

  const std::string zip = HelloZip();
  auto put = cs->Put(zip);
  REQUIRE(put.ok());
  CHECK(put->sha256_hex == Sha256Hex(zip));
  CHECK(put->sha256_b64 == Sha256Base64(zip));
  CHECK(put->size == zip.size());
  CHECK_FALSE(put->reused);
  CHECK(put->dir == dir / ("code/" + put->sha256_hex));
  CHECK(put->blob_path == dir / ("code/blobs/" + put->sha256_hex + ".zip"));
  CHECK(ReadFile(put->dir + "/app.py") == "def handler(e, c):\n    return 'hi'\n");
  CHECK(ModeOf(put->dir) == 0555);
  CHECK(ModeOf(put->dir + "/lib") == 0555);
  CHECK(ModeOf(put->dir + "/app.py") == 0444);
  CHECK(ModeOf(put->dir + "/run.sh") == 0555);
  CHECK(ModeOf(put->blob_path) == 0600);
  CHECK(ReadFile(put->blob_path) == zip);
  CHECK(cs->Has(put->sha256_hex));
  CHECK(ListDir(cs->tmp_dir()).empty());

  struct stat before;
  REQUIRE(::stat(put->dir.c_str(), &before) == 0);
  auto again = cs->Put(zip);
  REQUIRE(again.ok());
  CHECK(again->reused);
  CHECK(again->dir == put->dir);
  struct stat after;
  REQUIRE(::stat(put->dir.c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);  // the same tree, not a re-extraction

  // A tree whose blob went missing is healed, the tree reused.
  REQUIRE(::unlink(put->blob_path.c_str()) == 0);
  CHECK_FALSE(cs->Has(put->sha256_hex));
  auto healed = cs->Put(zip);
  REQUIRE(healed.ok());
  CHECK(ReadFile(healed->blob_path) == zip);
  CHECK(ListDir(cs->tmp_dir()).empty());

  auto blob = cs->ReadBlob(put->sha256_hex);
  REQUIRE(blob.ok());
  CHECK(*blob == zip);
  CHECK(cs->BlobPath(std::string(64, '0')).status().code() == Code::kNotFound);
  CHECK(cs->BlobPath("../../etc/passwd").status().code() == Code::kNotFound);
}

TEST_CASE("code store: hostile zips leave nothing in code/ or tmp/", "[code_store]") {
  TempDir dir;
  auto cs = CodeStore::Open(dir.path());
  REQUIRE(cs.ok());
  std::vector<std::pair<std::string, std::string>> cases;
  {
    ZipBuilder b;
    b.File("ok.py", "1").File("../evil", "x");
    cases.emplace_back("traversal", b.Bytes());
  }
  {
    ZipBuilder b;
    b.File("/etc/x", "x");
    cases.emplace_back("absolute", b.Bytes());
  }
  {
    ZipBuilder b;
    b.File("app.py", "1").Symlink("link", "/etc/passwd");
    cases.emplace_back("symlink", b.Bytes());
  }
  {
    ZipBuilder b;
    b.File("a.py", "print('aaaaaaaaaaaaaaaa')", 0, ZIP_CM_STORE).File("b.py", "2");
    std::string z = b.Bytes();
    z[z.find("aaaa")] = 'b';
    cases.emplace_back("crc", z);
  }
  cases.emplace_back("bomb", BombZip());
  {
    ZipBuilder b;
    b.File("a.py", "1").File("b.py", "2");
    cases.emplace_back("duplicate", PatchAll(b.Bytes(), "b.py", "a.py"));
  }
  cases.emplace_back("garbage", std::string(5000, 'Z'));
  for (const auto& [what, zip] : cases) {
    INFO(what);
    auto r = cs->Put(zip);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    RequireNothingStored(*cs);
  }
  ZipLimits small;
  small.max_zip_bytes = 10;
  auto cs_small = CodeStore::Open(dir.path(), small);
  REQUIRE(cs_small.ok());
  auto big = cs_small->Put(HelloZip());
  CHECK(big.status().code() == Code::kResourceExhausted);
  RequireNothingStored(*cs_small);
}

TEST_CASE("code store: open cleans tmp leftovers; GC removes unreferenced code", "[code_store]") {
  TempDir dir;
  std::string keep_hex, drop_hex;
  {
    auto cs = CodeStore::Open(dir.path());
    REQUIRE(cs.ok());
    keep_hex = cs->Put(HelloZip("A = 1\n"))->sha256_hex;
    drop_hex = cs->Put(HelloZip("B = 2\n"))->sha256_hex;
    // Simulate a crash mid-Put: a half-extracted, read-only staging tree and a partial blob.
    REQUIRE(::mkdir((dir / "tmp/unpack-1-1-x").c_str(), 0700) == 0);
    REQUIRE(::mkdir((dir / "tmp/unpack-1-1-x/sub").c_str(), 0555) == 0);
    REQUIRE(::chmod((dir / "tmp/unpack-1-1-x").c_str(), 0555) == 0);
    { std::ofstream(dir / "tmp/blob-1-1-x") << "partial"; }
  }
  auto cs = CodeStore::Open(dir.path());
  REQUIRE(cs.ok());
  CHECK(ListDir(dir / "tmp").empty());
  CHECK(cs->List()->size() == 2);

  auto removed = cs->CollectGarbage({keep_hex});
  REQUIRE(removed.ok());
  CHECK(*removed == 1);
  CHECK(cs->Has(keep_hex));
  CHECK_FALSE(cs->Has(drop_hex));
  CHECK_FALSE(Exists(cs->DirFor(drop_hex)));
  CHECK_FALSE(Exists(cs->BlobPathFor(drop_hex)));
  CHECK(*cs->CollectGarbage({keep_hex}) == 0);
  CHECK(*cs->CollectGarbage({}) == 1);
  RequireNothingStored(*cs);
}

TEST_CASE("code store: time to store and unpack a 5 MB zip of 500 files", "[code_store][perf]") {
  std::mt19937_64 rng(42);
  ZipBuilder b;
  for (int i = 0; i < 500; ++i) {
    std::string content(10 * 1024, '\0');
    for (auto& c : content) c = static_cast<char>('a' + rng() % 26);  // compresses ~1.6x, like source
    b.File("pkg" + std::to_string(i % 20) + "/mod" + std::to_string(i) + ".py", content);
  }
  const std::string zip = b.Bytes();
  TempDir dir;
  auto cs = CodeStore::Open(dir.path());
  REQUIRE(cs.ok());
  auto t0 = std::chrono::steady_clock::now();
  auto put = cs->Put(zip);
  auto t1 = std::chrono::steady_clock::now();
  REQUIRE(put.ok());
  // The same extraction without the code store's syncs, renames and hashing, for comparison.
  auto te0 = std::chrono::steady_clock::now();
  auto plain = ExtractZip(zip, dir / "plain");
  auto te1 = std::chrono::steady_clock::now();
  REQUIRE(plain.ok());
  auto t2 = std::chrono::steady_clock::now();
  auto again = cs->Put(zip);
  auto t3 = std::chrono::steady_clock::now();
  REQUIRE(again.ok());
  CHECK(again->reused);
  const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const double ms_reuse = std::chrono::duration<double, std::milli>(t3 - t2).count();
  const double ms_extract = std::chrono::duration<double, std::milli>(te1 - te0).count();
  WARN("Put of a " << zip.size() / 1024 << " KiB zip with 500 files (5000 KiB unzipped): " << ms
                   << " ms (hash + extract + syncfs + renames); extraction alone: " << ms_extract
                   << " ms; idempotent re-Put: " << ms_reuse << " ms");
  CHECK(ms < 20000);
}
