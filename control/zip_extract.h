// Safe extraction of an uploaded Lambda deployment package (a zip held in memory) with libzip.
//
// The archive is untrusted. Before anything is written, every entry is checked; while writing,
// the actual decompressed bytes are counted (declared sizes are not trusted). Refused, with a
// message in Lambda's words, ready for an InvalidParameterValueException as it stands (Geysir's
// own reasons, "Refusing the zip: …", follow "Could not unzip uploaded file: "):
//   - a zip over ZipLimits::max_zip_bytes (Code::kResourceExhausted -> the API's 413
//     RequestEntityTooLargeException);
//   - corrupt archives, unsupported compression/encryption, CRC mismatch;
//   - names that are empty, absolute ("/etc/x"), contain a ".." component, a backslash, a NUL or
//     another control character, or are longer than 4096 bytes / a component over 255;
//   - duplicate names (after normalising "a//b" and "./a"), or a file and a directory of the
//     same path;
//   - symlinks (every symlink entry is refused: the simplest honest rule; Lambda's own packages
//     rarely need them), device nodes, FIFOs, sockets (from the unix mode in the external
//     attributes);
//   - more than max_entries entries; total decompressed bytes over max_unzipped_bytes
//     (Lambda's message: "Unzipped size must be smaller than 262144000 bytes"); an entry whose
//     decompressed size exceeds max_ratio times its compressed size once past ratio_floor_bytes.
// All of these are Code::kInvalidArgument except the zip-size limit above. I/O failures while
// writing (ENOSPC, EIO) are kInternal.
//
// On any failure `dest_dir` is removed completely: nothing is left behind. On success the
// tree is read-only: directories 0555, files 0444 (0555 when the entry's unix mode had any exec
// bit), owned by root when running as root. Nothing is fsync'ed here (the code store does that
// once over the finished tree).
//
// Thread safety: pure functions; concurrent calls on different destinations are fine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace geysir::control {

struct ZipLimits {
  uint64_t max_zip_bytes = 52428800;        // Lambda's direct-upload limit (50 MB)
  uint64_t max_unzipped_bytes = 262144000;  // Lambda's unzipped limit (250 MB)
  uint64_t max_entries = 20000;
  uint64_t max_ratio = 200;                 // decompressed / compressed, per entry
  uint64_t ratio_floor_bytes = 1 << 20;     // the ratio is only judged past this many bytes
};

struct ExtractStats {
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t bytes = 0;                       // decompressed bytes written
};

// Extracts `zip` into `dest_dir`, which must not exist yet (its parent must). See above.
Result<ExtractStats> ExtractZip(std::string_view zip, const std::string& dest_dir,
                                const ZipLimits& limits = {});

// Removes `path` and everything below it, first making read-only directories writable so a
// non-root caller can delete them too. A missing path is OK. Does not follow symlinks.
Status RemoveTree(const std::string& path);

}  // namespace geysir::control
