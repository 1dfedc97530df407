// Flags: the command-line parser every daemon's main uses, so they all accept the same
// shapes and fail the same way.
//
//   Flags flags("geysir-gateway");
//   flags.String("--listen", &listen, "HOST:PORT", "address to serve HTTP on");
//   flags.Unsigned("--listen-fd", &listen_fd, 65535, "N", "an inherited listening socket");
//   flags.Bool("--https-redirect", &redirect, "answer plain HTTP with a redirect to HTTPS");
//   if (Status st = flags.Parse(argc, argv); !st.ok()) { ...st.message()..., flags.Usage() }
//
// Accepted shapes: "--name value" and "--name=value" for valued flags, "--name" alone for
// booleans; the last occurrence wins, except for Repeated flags, which collect every value.
// "-h" and "--help" stop parsing with help_requested() set. Anything else (an unknown flag, a
// missing value, a number out of range or with trailing text, a positional argument) is a
// kInvalidArgument naming the flag and what it wants. Parsing writes only the targets of the
// flags it met, so defaults set before Parse stay when a flag is absent.
//
// Thread safety: none needed; a Flags lives in main for the duration of Parse.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace geysir {

class Flags {
 public:
  explicit Flags(std::string program) : program_(std::move(program)) {}

  void String(std::string name, std::string* out, std::string value_name, std::string help);
  void Repeated(std::string name, std::vector<std::string>* out, std::string value_name, std::string help);
  void Bool(std::string name, bool* out, std::string help);
  // A decimal number from 0 to `max`.
  template <typename T>
  void Unsigned(std::string name, T* out, uint64_t max, std::string value_name, std::string help) {
    Add(std::move(name), std::move(value_name), std::move(help), [out, max](const std::string& v) -> Status {
      uint64_t n = 0;
      GEYSIR_RETURN_IF_ERROR(ParseUnsigned(v, max, &n));
      *out = static_cast<T>(n);
      return Status::Ok();
    });
  }
  // A flag with its own check: `set` parses the value and returns a Status that says what the
  // flag wants when the value is wrong.
  void Custom(std::string name, std::string value_name, std::string help,
              std::function<Status(const std::string& value)> set);

  // Parses argv[1..argc). Stops at -h/--help.
  Status Parse(int argc, char** argv);
  Status Parse(const std::vector<std::string>& args);  // args[0] is the first flag
  bool help_requested() const { return help_requested_; }

  // "usage: <program> [--flag VALUE] ..." followed by one line per flag with its help.
  std::string Usage() const;

  // "123" -> 123 within [0, max]; anything else (sign, spaces, trailing text, overflow) fails.
  static Status ParseUnsigned(std::string_view text, uint64_t max, uint64_t* out);
  // "HOST:PORT", "[v6]:PORT" or ":PORT" -> host (brackets removed) and port.
  static Status ParseHostPort(std::string_view text, std::string* host, uint16_t* port);

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for booleans
    std::string help;
    std::function<Status(const std::string&)> set;
  };
  void Add(std::string name, std::string value_name, std::string help,
           std::function<Status(const std::string&)> set);
  const Flag* Find(std::string_view name) const;

  std::string program_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace geysir
