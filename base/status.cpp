#include "base/status.h"

#include <cstring>

namespace geysir {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kResourceExhausted: return "ResourceExhausted";
    case Code::kUnavailable: return "Unavailable";
    case Code::kDeadlineExceeded: return "DeadlineExceeded";
    case Code::kInternal: return "Internal";
    case Code::kConflict: return "Conflict";
    case Code::kFailedPrecondition: return "FailedPrecondition";
    case Code::kThrottled: return "Throttled";
    case Code::kUnauthenticated: return "Unauthenticated";
    case Code::kUnimplemented: return "Unimplemented";
  }
  return "Unknown";
}

Status::Status(Code code, std::string message)
    : rep_(code == Code::kOk ? nullptr : std::make_unique<Rep>(Rep{code, 0, std::move(message), {}})) {}

Status::Status(const Status& other)
    : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

Status Status::Sys(int err, std::string what, Code code) {
  Status s(code == Code::kOk ? Code::kInternal : code, what + ": " + std::strerror(err));
  s.rep_->sys_errno = err;
  return s;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

const std::string& Status::aws_type() const {
  static const std::string kEmpty;
  return rep_ ? rep_->aws_type : kEmpty;
}

Status Status::WithAwsType(std::string type) && {
  if (rep_) rep_->aws_type = std::move(type);
  return std::move(*this);
}

Status Status::WithAwsType(std::string type) const& { return Status(*this).WithAwsType(std::move(type)); }

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(rep_->code)) + ": " + rep_->message;
}

Status Status::Wrap(const std::string& context) const {
  if (ok()) return Status();
  Status s(rep_->code, context + ": " + rep_->message);
  s.rep_->sys_errno = rep_->sys_errno;
  s.rep_->aws_type = rep_->aws_type;
  return s;
}

}  // namespace geysir
