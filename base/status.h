// Status and Result<T>: Geysir's one error vocabulary.
//
// A Status is either OK (a null pointer: costs nothing to create, copy or test) or an error
// carrying a Code, the errno of a failed system call when there was one, a message that names
// what failed and, where it helps, what to do, and optionally the AWS error type a client should
// see. Errors are made where the failure happens:
//   return Status::Sys(errno, "mkdir " + path);
//   return Status::NotFound("The specified bucket does not exist").WithAwsType("NoSuchBucket");
// Code decides; the message is for people. No code branches on message text: a decision that
// needs a distinction the codes do not make gets a code (or the AWS type) here.
// Result<T> holds either a T or a non-OK Status. The data plane (gateway, scheduler, worker)
// returns these instead of throwing; control may throw inside and converts at its API boundary.
//
// Thread safety: values; a const Status may be read from many threads at once.
#pragma once

#include <cassert>
#include <memory>
#include <string>
#include <utility>
#include <variant>

namespace geysir {

enum class Code {
  kOk = 0,
  kInvalidArgument,    // the caller's input is wrong; retrying the same call fails again
  kNotFound,
  kAlreadyExists,      // what the call would create exists already
  kPermissionDenied,   // the caller is known but may not do this
  kResourceExhausted,  // a size or capacity limit was hit (too large, out of threads or memory)
  kUnavailable,        // a peer process is down or restarting; retry later
  kDeadlineExceeded,
  kInternal,           // a bug or an unexpected system failure
  kConflict,           // the resource's current state forbids the call (e.g. still referenced)
  kFailedPrecondition, // a condition the caller set does not hold (e.g. a stale revision id)
  kThrottled,          // a rate or concurrency limit: the same call may succeed later
  kUnauthenticated,    // no credentials, or credentials that do not verify
  kUnimplemented,      // no such operation
};

const char* CodeName(Code code);

class Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message);
  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }
  static Status Error(Code code, std::string message) { return Status(code, std::move(message)); }
  static Status Invalid(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }
  static Status NotFound(std::string message) { return Status(Code::kNotFound, std::move(message)); }
  static Status Internal(std::string message) { return Status(Code::kInternal, std::move(message)); }
  static Status Unavailable(std::string message) { return Status(Code::kUnavailable, std::move(message)); }
  static Status Conflict(std::string message) { return Status(Code::kConflict, std::move(message)); }
  // A failed system call: the message gets ": <strerror(err)>" appended and errno is kept.
  static Status Sys(int err, std::string what, Code code = Code::kInternal);

  bool ok() const { return rep_ == nullptr; }
  explicit operator bool() const { return ok(); }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  int sys_errno() const { return rep_ ? rep_->sys_errno : 0; }
  const std::string& message() const;
  // The AWS error type the client should see ("NoSuchBucket"), or "" to let the API layer pick
  // one from the code.
  const std::string& aws_type() const;
  // This error, with the AWS error type `type`; on OK it stays OK (nothing to name).
  Status WithAwsType(std::string type) &&;
  Status WithAwsType(std::string type) const&;
  // "<CodeName>: <message>", or "OK".
  std::string ToString() const;

  // Prefixes context: Status::Sys(ENOENT, "open x").Wrap("loading code") -> "loading code: open x: ...".
  // The code, errno and AWS type are kept.
  Status Wrap(const std::string& context) const;

 private:
  struct Rep {
    Code code;
    int sys_errno;
    std::string message;
    std::string aws_type;
  };
  std::unique_ptr<Rep> rep_;
};

// Either a value or an error Status. Access to value() on an error is a bug (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace geysir

// Propagates a non-OK Status from an expression returning Status.
#define GEYSIR_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::geysir::Status _geysir_st = (expr);     \
    if (!_geysir_st.ok()) return _geysir_st;  \
  } while (0)
