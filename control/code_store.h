// CodeStore: content-addressed storage of deployment packages under <data>/code.
//
//   <data>/code/blobs/<sha256-hex>.zip   the uploaded zip, 0600 (served for GetFunction's
//                                        Code.Location)
//   <data>/code/<sha256-hex>/            the unpacked tree, read-only (0555 dirs, 0444 files)
//   <data>/tmp/                          staging; emptied at Open
//
// Put() is atomic and idempotent: the zip is hashed; if both the blob and the tree of that hash
// exist it returns them unchanged. Otherwise it extracts into a fresh staging directory in
// <data>/tmp (control/zip_extract.h: hostile archives are refused there, leaving nothing),
// writes the blob beside it in tmp/, makes both durable with one syncfs(2) of the file
// system (one journal commit instead of one fsync per file), renames the blob into
// code/blobs and fsyncs that directory, then renames the tree into code/<hex> and fsyncs code/. A crash at any point
// leaves either no trace in code/ (only tmp leftovers, removed at next Open) or a complete
// tree. So once Put() returns, a function row pointing at <hex> never points at missing or
// half-written code.
//
// Error policy: returns Status / Result<T>, never throws. Codes: kInvalidArgument (hostile or
// broken zip; the message is meant for the client), kResourceExhausted (zip over 50 MB),
// kNotFound (unknown hash), kInternal (I/O).
//
// Thread safety: none; one thread (control's loop) owns a CodeStore.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "control/zip_extract.h"
#include "base/base64.h"
#include "base/status.h"

namespace geysir::control {

struct StoredCode {
  std::string sha256_hex;     // lower-case hex: the key
  std::string sha256_b64;     // base64 of the raw digest: Lambda's CodeSha256
  uint64_t size = 0;          // bytes of the zip: Lambda's CodeSize
  std::string dir;            // absolute path of the unpacked tree
  std::string blob_path;      // absolute path of the zip
  bool reused = false;        // true when this hash was already stored
};

class CodeStore {
 public:
  // Creates <data_dir>/code, code/blobs (0700 for blobs, 0755 for code so sandboxed workers can
  // traverse to their tree) and tmp (0700) if missing, and removes everything inside tmp.
  static Result<CodeStore> Open(const std::string& data_dir, ZipLimits limits = {});

  Result<StoredCode> Put(std::string_view zip);

  // Paths for a hash (no existence check).
  std::string DirFor(const std::string& hex) const;
  std::string BlobPathFor(const std::string& hex) const;
  // True when both the tree and the blob of `hex` exist.
  bool Has(const std::string& hex) const;
  // The blob path of an existing hash; kNotFound otherwise (also for a malformed hex).
  Result<std::string> BlobPath(const std::string& hex) const;
  // The zip bytes of an existing hash (for a Code.Location download); kNotFound otherwise.
  Result<std::string> ReadBlob(const std::string& hex) const;

  // Removes the tree and blob of every stored hash not in `referenced`; returns how many
  // hashes were removed. The caller takes `referenced` from Store::ReferencedCodeHexes().
  Result<size_t> CollectGarbage(const std::set<std::string>& referenced);
  // Removes one hash (tree then blob). OK if absent.
  Status Remove(const std::string& hex);
  // Every stored hash (a directory code/<hex> with a valid 64-char hex name).
  Result<std::set<std::string>> List() const;

  const std::string& data_dir() const { return data_dir_; }
  const std::string& code_root() const { return code_root_; }  // <data>/code
  const std::string& tmp_dir() const { return tmp_dir_; }      // <data>/tmp

 private:
  CodeStore() = default;
  std::string data_dir_, code_root_, blobs_dir_, tmp_dir_;
  ZipLimits limits_;
  uint64_t staging_seq_ = 0;
};

// Lower-case hex and base64 (standard alphabet, padded) of SHA-256(data). Encoding other bytes
// is base/base64.h's and base/strings.h's.
std::string Sha256Hex(std::string_view data);
std::string Sha256Base64(std::string_view data);

}  // namespace geysir::control
