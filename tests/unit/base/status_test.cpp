// Status and Result: OK is free and empty, an error keeps its code, errno and AWS type through
// copies and Wrap, and every code has a name.
#include "base/status.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

using namespace geysir;

TEST_CASE("status: OK carries nothing", "[status]") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.code() == Code::kOk);
  CHECK(ok.message().empty());
  CHECK(ok.aws_type().empty());
  CHECK(ok.sys_errno() == 0);
  CHECK(ok.ToString() == "OK");
  // An OK status stays one pointer wide: nothing is allocated for it.
  CHECK(sizeof(Status) == sizeof(void*));
  // Naming a type on OK cannot make it an error, and OK given as a code is OK.
  CHECK(Status::Ok().WithAwsType("NoSuchBucket").ok());
  CHECK(Status::Ok().WithAwsType("NoSuchBucket").aws_type().empty());
  CHECK(Status(Code::kOk, "ignored").ok());
  CHECK(Status::Ok().Wrap("context").ok());
}

TEST_CASE("status: an error keeps its code, message and AWS type", "[status]") {
  Status e = Status::NotFound("The specified bucket does not exist").WithAwsType("NoSuchBucket");
  CHECK_FALSE(e.ok());
  CHECK(e.code() == Code::kNotFound);
  CHECK(e.message() == "The specified bucket does not exist");
  CHECK(e.aws_type() == "NoSuchBucket");
  CHECK(e.ToString() == "NotFound: The specified bucket does not exist");

  Status copy = e;
  CHECK(copy.code() == Code::kNotFound);
  CHECK(copy.aws_type() == "NoSuchBucket");
  Status assigned;
  assigned = e;
  CHECK(assigned.aws_type() == "NoSuchBucket");

  // The lvalue overload leaves the original alone.
  Status plain = Status::Conflict("in use");
  Status typed = plain.WithAwsType("BucketNotEmpty");
  CHECK(plain.aws_type().empty());
  CHECK(typed.aws_type() == "BucketNotEmpty");
  CHECK(typed.code() == Code::kConflict);
}

TEST_CASE("status: Wrap prefixes context and keeps code, errno and type", "[status]") {
  Status sys = Status::Sys(ENOENT, "open x", Code::kNotFound).WithAwsType("NoSuchKey");
  CHECK(sys.sys_errno() == ENOENT);
  Status wrapped = sys.Wrap("loading code");
  CHECK(wrapped.code() == Code::kNotFound);
  CHECK(wrapped.sys_errno() == ENOENT);
  CHECK(wrapped.aws_type() == "NoSuchKey");
  CHECK(wrapped.message().rfind("loading code: open x: ", 0) == 0);
  // Sys with kOk would make a failed call look like success; it is kInternal instead.
  CHECK(Status::Sys(EIO, "write", Code::kOk).code() == Code::kInternal);
}

TEST_CASE("status: every code has its own name", "[status]") {
  const Code codes[] = {Code::kOk,          Code::kInvalidArgument,  Code::kNotFound,    Code::kAlreadyExists,
                        Code::kPermissionDenied, Code::kResourceExhausted, Code::kUnavailable,
                        Code::kDeadlineExceeded, Code::kInternal,         Code::kConflict,
                        Code::kFailedPrecondition, Code::kThrottled,      Code::kUnauthenticated,
                        Code::kUnimplemented};
  for (Code a : codes) {
    CHECK(std::string(CodeName(a)) != "Unknown");
    for (Code b : codes) {
      if (a != b) CHECK(std::string(CodeName(a)) != CodeName(b));
    }
  }
  CHECK(std::string(CodeName(Code::kConflict)) == "Conflict");
  CHECK(std::string(CodeName(Code::kThrottled)) == "Throttled");
}

TEST_CASE("result: a value or an error", "[status]") {
  Result<int> v = 7;
  CHECK(v.ok());
  CHECK(*v == 7);
  CHECK(v.status().ok());
  Result<int> e = Status::Error(Code::kThrottled, "slow down");
  CHECK_FALSE(e.ok());
  CHECK(e.status().code() == Code::kThrottled);
}
