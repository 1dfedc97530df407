#include "control/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "base/random.h"
#include "net/sigv4.h"
#include "base/unique_fd.h"

namespace geysir::control {

namespace sigv4 = net::sigv4;

Authenticator::Authenticator(SecretLookup lookup, std::function<int64_t()> now_s, std::string region)
    : lookup_(std::move(lookup)), now_s_(std::move(now_s)), region_(std::move(region)) {}

std::optional<AwsError> Authenticator::Check(const net::HttpRequest& request, std::string_view service,
                                             std::string* access_key_id) const {
  sigv4::VerifyError error{sigv4::Failure::kMissingAuthentication, "Missing Authentication Token"};
  std::optional<sigv4::Credential> cred = sigv4::ParseCredential(request, &error);
  if (!cred) return FromVerifyError(error);
  // The scope first (AWS's wording): no key lookup for a request this endpoint cannot serve.
  if (!service.empty() && cred->service != service) {
    return FromVerifyError({sigv4::Failure::kSignatureMismatch,
                            "Credential should be scoped to correct service: '" + std::string(service) + "'. "});
  }
  // IAM is global: AWS signs it for us-east-1 whatever the client's region, so that is
  // accepted for it besides this endpoint's own region.
  if (cred->region != region_ && !(service == "iam" && cred->region == "us-east-1")) {
    return FromVerifyError({sigv4::Failure::kSignatureMismatch,
                            "Credential should be scoped to a valid region, not '" + cred->region.substr(0, 64) +
                                "'. This endpoint serves '" + region_ + "'."});
  }
  Result<std::string> secret = lookup_(cred->access_key_id);
  if (!secret.ok()) {
    if (secret.status().code() == Code::kNotFound) {
      return FromVerifyError({sigv4::Failure::kUnknownAccessKey, "The security token included in the request is invalid."});
    }
    return ServiceError("could not look up the access key: " + secret.status().message());
  }
  if (auto failed = sigv4::Verify(request, *cred, *secret, now_s_())) return FromVerifyError(*failed);
  if (access_key_id) *access_key_id = cred->access_key_id;
  return std::nullopt;
}

CodeUrlSigner::CodeUrlSigner(std::string key) : key_(std::move(key)) {}

std::string CodeUrlSigner::Mac(const std::string& hex, int64_t expires_s) const {
  return HexEncode(sigv4::HmacSha256(key_, "geysir-code-v1\n" + hex + "\n" + std::to_string(expires_s)));
}

std::string CodeUrlSigner::PathFor(const std::string& hex, int64_t expires_s) const {
  return "/geysir/v1/code/" + hex + ".zip?expires=" + std::to_string(expires_s) + "&signature=" + Mac(hex, expires_s);
}

bool CodeUrlSigner::Verify(const std::string& hex, const std::map<std::string, std::string>& query,
                           int64_t now_s) const {
  auto e = query.find("expires");
  auto s = query.find("signature");
  if (e == query.end() || s == query.end()) return false;
  int64_t expires = 0;
  auto [ptr, ec] = std::from_chars(e->second.data(), e->second.data() + e->second.size(), expires);
  if (ec != std::errc() || ptr != e->second.data() + e->second.size()) return false;
  if (expires < now_s) return false;
  std::string want = Mac(hex, expires);
  return s->second.size() == want.size() && CRYPTO_memcmp(s->second.data(), want.data(), want.size()) == 0;
}

Result<std::string> LoadOrCreateSecretFile(const std::string& path) {
  constexpr size_t kLen = 32;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd) {
    std::string key(kLen, '\0');
    ssize_t n = ::read(fd.get(), key.data(), kLen);
    if (n == static_cast<ssize_t>(kLen)) return key;
    return Status::Internal(path + " is truncated; remove it and restart to make a new one");
  }
  if (errno != ENOENT) return Status::Sys(errno, "open " + path);
  std::string key(kLen, '\0');
  RandomBytes(key.data(), kLen);
  std::string tmp = path + ".tmp";
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out) return Status::Sys(errno, "create " + tmp);
  if (::write(out.get(), key.data(), kLen) != static_cast<ssize_t>(kLen)) return Status::Sys(errno, "write " + tmp);
  if (::fsync(out.get()) != 0) return Status::Sys(errno, "fsync " + tmp);
  out.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::Sys(errno, "rename " + tmp);
  return key;
}

}  // namespace geysir::control
