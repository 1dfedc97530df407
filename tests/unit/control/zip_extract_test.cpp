#include "control/zip_extract.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "store_test_util.h"

using namespace geysir;
using namespace geysir::control;
using namespace geysir::control::testing;

namespace {

// Extracts and requires a refusal whose message contains `needle`, with nothing left behind.
void RequireRefused(const std::string& zip, const std::string& needle, const ZipLimits& limits = {},
                    Code code = Code::kInvalidArgument) {
  TempDir dir;
  const std::string dest = dir / "out";
  auto r = ExtractZip(zip, dest, limits);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().ToString());
  CHECK(r.status().code() == code);
  CHECK_THAT(r.status().message(), Catch::Contains(needle));
  CHECK_FALSE(Exists(dest));
  CHECK(ListDir(dir.path()).empty());
}

}  // namespace

TEST_CASE("a normal package extracts read-only with exec bits kept", "[zip]") {
  ZipBuilder b;
  b.File("app.py", "def handler(e, c):\n    return 1\n")
      .File("pkg/__init__.py", "")
      .File("pkg/sub/mod.py", "X = 1\n")
      .File("bin/tool", "#!/bin/sh\necho hi\n", S_IFREG | 0755)
      .Dir("empty/")
      .File("./dot/x.txt", "x", 0, ZIP_CM_STORE);
  std::string zip = b.Bytes();
  TempDir dir;
  const std::string dest = dir / "out";
  auto r = ExtractZip(zip, dest);
  REQUIRE(r.ok());
  CHECK(r->files == 5);
  CHECK(ReadFile(dest + "/app.py") == "def handler(e, c):\n    return 1\n");
  CHECK(ReadFile(dest + "/pkg/sub/mod.py") == "X = 1\n");
  CHECK(ReadFile(dest + "/dot/x.txt") == "x");
  CHECK(ModeOf(dest) == 0555);
  CHECK(ModeOf(dest + "/pkg") == 0555);
  CHECK(ModeOf(dest + "/pkg/sub") == 0555);
  CHECK(ModeOf(dest + "/empty") == 0555);
  CHECK(ModeOf(dest + "/app.py") == 0444);
  CHECK(ModeOf(dest + "/bin/tool") == 0555);
  if (::geteuid() == 0) {
    struct stat st;
    REQUIRE(::stat((dest + "/app.py").c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
    CHECK(st.st_gid == 0);
  }
}

TEST_CASE("hostile names are refused and leave nothing", "[zip]") {
  SECTION("path traversal") {
    ZipBuilder b;
    b.File("ok.py", "1").File("../evil", "x");
    RequireRefused(b.Bytes(), "\"..\" path component");
  }
  SECTION("traversal in the middle") {
    ZipBuilder b;
    b.File("a/../../evil", "x");
    RequireRefused(b.Bytes(), "\"..\"");
  }
  SECTION("absolute path") {
    ZipBuilder b;
    b.File("/etc/x", "x");
    RequireRefused(b.Bytes(), "absolute path");
  }
  SECTION("backslash") {
    ZipBuilder b;
    b.File("..\\evil", "x");
    RequireRefused(b.Bytes(), "backslash");
  }
  SECTION("NUL byte in a name (written raw)") {
    ZipBuilder b;
    b.File("okQfile.py", "x");
    RequireRefused(PatchAll(b.Bytes(), "okQfile.py", std::string("ok\0file.py", 10)), "NUL");
  }
  SECTION("control character") {
    ZipBuilder b;
    b.File("a\nb", "x");
    RequireRefused(b.Bytes(), "control character");
  }
  SECTION("duplicate names (written raw)") {
    ZipBuilder b;
    b.File("a.py", "1").File("b.py", "2");
    RequireRefused(PatchAll(b.Bytes(), "b.py", "a.py"), "duplicate entry name");
  }
  SECTION("duplicates after normalisation") {
    ZipBuilder b;
    b.File("a/b.py", "1").File("a//b.py", "2");
    RequireRefused(b.Bytes(), "duplicate entry");
  }
  SECTION("a file used as a directory") {
    ZipBuilder b;
    b.File("a", "1").File("a/b.py", "2");
    RequireRefused(b.Bytes(), "both a file and a directory");
  }
}

TEST_CASE("every refusal is worded for the API as it stands", "[zip]") {
  // Lambda's own words for an unusable upload stand first; Geysir's reasons follow them.
  TempDir dir;
  ZipBuilder b;
  b.File("ok.py", "1").File("../evil", "x");
  auto ours = ExtractZip(b.Bytes(), dir / "a");
  REQUIRE_FALSE(ours.ok());
  CHECK(ours.status().message().rfind("Could not unzip uploaded file: Refusing the zip: ", 0) == 0);
  auto lambdas = ExtractZip("not a zip", dir / "b");
  REQUIRE_FALSE(lambdas.ok());
  CHECK(lambdas.status().message().rfind("Could not unzip uploaded file. Please check your file", 0) == 0);
}

TEST_CASE("symlinks, devices and FIFOs are refused", "[zip]") {
  SECTION("symlink out of the tree") {
    ZipBuilder b;
    b.File("app.py", "1").Symlink("link", "/etc/passwd");
    RequireRefused(b.Bytes(), "symbolic link");
  }
  SECTION("even a harmless relative symlink") {
    ZipBuilder b;
    b.Symlink("link", "app.py").File("app.py", "1");
    RequireRefused(b.Bytes(), "symbolic link");
  }
  SECTION("character device") {
    ZipBuilder b;
    b.File("dev", "", S_IFCHR | 0644);
    RequireRefused(b.Bytes(), "device, FIFO or socket");
  }
  SECTION("fifo") {
    ZipBuilder b;
    b.File("fifo", "", S_IFIFO | 0644);
    RequireRefused(b.Bytes(), "device, FIFO or socket");
  }
}

TEST_CASE("corrupt archives are refused", "[zip]") {
  SECTION("not a zip") { RequireRefused("this is not a zip file at all, just text", "Could not unzip"); }
  SECTION("empty input") { RequireRefused("", "Could not unzip"); }
  SECTION("truncated") {
    ZipBuilder b;
    b.File("app.py", std::string(1000, 'a'));
    std::string z = b.Bytes();
    RequireRefused(z.substr(0, z.size() / 2), "Could not unzip");
  }
  SECTION("CRC mismatch: one flipped content byte") {
    ZipBuilder b;
    const std::string content = "print('the quick brown fox jumps over the lazy dog')\n";
    b.File("ok.py", "fine").File("app.py", content, 0, ZIP_CM_STORE);
    std::string z = b.Bytes();
    size_t at = z.find("quick");
    REQUIRE(at != std::string::npos);
    z[at] = 'Q';
    RequireRefused(z, "CRC");
  }
  SECTION("an empty archive") {
    ZipBuilder b;
    b.Dir("only/");
    std::string z = b.Bytes();
    TempDir dir;
    // Only a directory: allowed (it is a valid if useless package).
    CHECK(ExtractZip(z, dir / "out").ok());
  }
}

TEST_CASE("zip bombs are refused by actual decompressed bytes", "[zip]") {
  SECTION("300 MB of zeros in one entry (declared honestly)") {
    const std::string& z = BombZip();
    CHECK(z.size() < 2u << 20);
    RequireRefused(z, "Unzipped size must be smaller than 262144000 bytes");
  }
  SECTION("declared size lies: counted while decompressing") {
    ZipBuilder b;
    b.Stream("zeros.bin", 8u << 20, '\0');
    std::string z = b.Bytes();
    // Rewrite the declared uncompressed size (8 MiB = 0x00800000) to 1000 bytes in the local and
    // central headers, so only counting real output can catch it.
    z = PatchAll(z, std::string("\x00\x00\x80\x00", 4), std::string("\xe8\x03\x00\x00", 4));
    ZipLimits limits;
    limits.max_unzipped_bytes = 2u << 20;
    limits.max_ratio = 1u << 30;  // isolate the byte count from the ratio check
    TempDir dir;
    auto r = ExtractZip(z, dir / "out", limits);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().ToString());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_FALSE(Exists(dir / "out"));
  }
  SECTION("compression ratio") {
    ZipBuilder b;
    b.Stream("zeros.bin", 4u << 20, '\0');
    RequireRefused(b.Bytes(), "expands more than 200 times");
  }
  SECTION("too many entries") {
    ZipBuilder b;
    for (int i = 0; i < 2001; ++i) b.File("f" + std::to_string(i), "", 0, ZIP_CM_STORE);
    ZipLimits limits;
    limits.max_entries = 2000;
    RequireRefused(b.Bytes(), "2001 entries; at most 2000", limits);
  }
  SECTION("zip over 50 MB") {
    ZipLimits limits;
    limits.max_zip_bytes = 100;
    ZipBuilder b;
    b.File("a", std::string(200, 'x'), 0, ZIP_CM_STORE);
    RequireRefused(b.Bytes(), "Zipped size must be smaller than 100 bytes", limits, Code::kResourceExhausted);
  }
}

TEST_CASE("extraction never touches an existing destination", "[zip]") {
  TempDir dir;
  REQUIRE(::mkdir((dir / "out").c_str(), 0700) == 0);
  ZipBuilder b;
  b.File("../evil", "x");
  auto r = ExtractZip(b.Bytes(), dir / "out");
  REQUIRE_FALSE(r.ok());
  CHECK(Exists(dir / "out"));
}
