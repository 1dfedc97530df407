// base/flags.h: the shapes every daemon accepts and the errors it gives.
#include "base/flags.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace geysir;

namespace {

struct Parsed {
  std::string name = "default";
  uint32_t count = 7;
  bool verbose = false;
  std::vector<std::string> env;
};

Status ParseInto(Parsed& p, const std::vector<std::string>& args, Flags* out = nullptr) {
  Flags flags("prog");
  flags.String("--name", &p.name, "NAME", "a name");
  flags.Unsigned("--count", &p.count, 100, "N", "a count");
  flags.Bool("--verbose", &p.verbose, "talk");
  flags.Repeated("--env", &p.env, "K=V", "repeatable");
  Status st = flags.Parse(args);
  if (out != nullptr) *out = std::move(flags);
  return st;
}

}  // namespace

TEST_CASE("flags: both value shapes, booleans, repeats, and defaults that stay", "[flags]") {
  Parsed p;
  REQUIRE(ParseInto(p, {"--name", "a", "--count=42", "--verbose", "--env", "A=1", "--env=B=2"}).ok());
  CHECK(p.name == "a");
  CHECK(p.count == 42);
  CHECK(p.verbose);
  CHECK(p.env == std::vector<std::string>{"A=1", "B=2"});

  Parsed q;
  REQUIRE(ParseInto(q, {}).ok());
  CHECK(q.name == "default");
  CHECK(q.count == 7);
  CHECK_FALSE(q.verbose);

  Parsed last;
  REQUIRE(ParseInto(last, {"--name", "x", "--name", "y"}).ok());
  CHECK(last.name == "y");
}

TEST_CASE("flags: every malformed command line is an invalid argument that names the flag", "[flags]") {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  for (const Case& c : std::vector<Case>{
           {{"--nope"}, "unknown flag '--nope'"},
           {{"--name"}, "--name needs a value"},
           {{"--count", "101"}, "--count wants a number from 0 to 100"},
           {{"--count", "-1"}, "--count wants a number from 0 to 100"},
           {{"--count", "12abc"}, "--count wants a number from 0 to 100"},
           {{"--count", ""}, "--count wants a number from 0 to 100"},
           {{"--count", "99999999999999999999999"}, "--count wants a number from 0 to 100"},
           {{"--verbose=yes"}, "--verbose takes no value"},
           {{"positional"}, "unexpected argument 'positional'"},
       }) {
    Parsed p;
    Status st = ParseInto(p, c.args);
    INFO(c.args.front());
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == Code::kInvalidArgument);
    CHECK(st.message().find(c.expect) != std::string::npos);
    CHECK(st.message().rfind("prog: ", 0) == 0);
  }
  Parsed p;
  REQUIRE_FALSE(ParseInto(p, {"--count", "5", "--bad"}).ok());
  CHECK(p.count == 5);  // flags before the error were applied; callers exit on the error
}

TEST_CASE("flags: --help stops parsing, and the usage lists every flag", "[flags]") {
  Parsed p;
  Flags flags("prog");
  REQUIRE(ParseInto(p, {"--count", "3", "--help", "--nope"}, &flags).ok());
  CHECK(flags.help_requested());
  CHECK(p.count == 3);
  std::string usage = flags.Usage();
  CHECK(usage.rfind("usage: prog [--name NAME] [--count N] [--verbose] [--env K=V]\n", 0) == 0);
  CHECK(usage.find("  --count N") != std::string::npos);
  CHECK(usage.find("a count") != std::string::npos);
}

TEST_CASE("flags: HOST:PORT", "[flags]") {
  std::string host;
  uint16_t port = 0;
  REQUIRE(Flags::ParseHostPort("127.0.0.1:8080", &host, &port).ok());
  CHECK(host == "127.0.0.1");
  CHECK(port == 8080);
  REQUIRE(Flags::ParseHostPort("[::1]:0", &host, &port).ok());
  CHECK(host == "::1");
  CHECK(port == 0);
  REQUIRE(Flags::ParseHostPort(":9000", &host, &port).ok());
  CHECK(host.empty());
  CHECK_FALSE(Flags::ParseHostPort("localhost", &host, &port).ok());
  CHECK_FALSE(Flags::ParseHostPort("localhost:65536", &host, &port).ok());
  CHECK_FALSE(Flags::ParseHostPort("localhost:80x", &host, &port).ok());
}

TEST_CASE("flags: ParseUnsigned takes the whole range and nothing beyond", "[flags]") {
  uint64_t n = 0;
  CHECK(Flags::ParseUnsigned("0", 0, &n).ok());
  CHECK(Flags::ParseUnsigned("18446744073709551615", UINT64_MAX, &n).ok());
  CHECK(n == UINT64_MAX);
  CHECK_FALSE(Flags::ParseUnsigned("18446744073709551616", UINT64_MAX, &n).ok());
  CHECK_FALSE(Flags::ParseUnsigned("7", 5, &n).ok());
  CHECK_FALSE(Flags::ParseUnsigned(" 1", 5, &n).ok());
  CHECK_FALSE(Flags::ParseUnsigned("+1", 5, &n).ok());
}
