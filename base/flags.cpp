#include "base/flags.h"

#include <utility>

namespace geysir {

void Flags::Add(std::string name, std::string value_name, std::string help,
                std::function<Status(const std::string&)> set) {
  flags_.push_back(Flag{std::move(name), std::move(value_name), std::move(help), std::move(set)});
}

void Flags::String(std::string name, std::string* out, std::string value_name, std::string help) {
  Add(std::move(name), std::move(value_name), std::move(help), [out](const std::string& v) {
    *out = v;
    return Status::Ok();
  });
}

void Flags::Repeated(std::string name, std::vector<std::string>* out, std::string value_name, std::string help) {
  Add(std::move(name), std::move(value_name), std::move(help), [out](const std::string& v) {
    out->push_back(v);
    return Status::Ok();
  });
}

void Flags::Bool(std::string name, bool* out, std::string help) {
  Add(std::move(name), "", std::move(help), [out](const std::string&) {
    *out = true;
    return Status::Ok();
  });
}

void Flags::Custom(std::string name, std::string value_name, std::string help,
                   std::function<Status(const std::string& value)> set) {
  Add(std::move(name), std::move(value_name), std::move(help), std::move(set));
}

const Flags::Flag* Flags::Find(std::string_view name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

Status Flags::ParseUnsigned(std::string_view text, uint64_t max, uint64_t* out) {
  if (text.empty() || text.size() > 20) return Status::Invalid("wants a number from 0 to " + std::to_string(max));
  uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return Status::Invalid("wants a number from 0 to " + std::to_string(max));
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (digit > max || n > (max - digit) / 10) return Status::Invalid("wants a number from 0 to " + std::to_string(max));
    n = n * 10 + digit;
  }
  *out = n;
  return Status::Ok();
}

Status Flags::ParseHostPort(std::string_view text, std::string* host, uint16_t* port) {
  size_t colon = text.rfind(':');
  uint64_t p = 0;
  if (colon == std::string_view::npos || !ParseUnsigned(text.substr(colon + 1), 65535, &p).ok()) {
    return Status::Invalid("wants HOST:PORT, got '" + std::string(text) + "'");
  }
  std::string_view h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = std::string(h);
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

Status Flags::Parse(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Parse(args);
}

Status Flags::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    if (name == "-h" || name == "--help") {
      help_requested_ = true;
      return Status::Ok();
    }
    if (name.rfind("--", 0) != 0) {
      return Status::Invalid(program_ + ": unexpected argument '" + name + "' (flags start with --; see --help)");
    }
    std::string value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      inline_value = true;
    }
    const Flag* flag = Find(name);
    if (flag == nullptr) return Status::Invalid(program_ + ": unknown flag '" + name + "' (see --help)");
    if (flag->value_name.empty()) {
      if (inline_value) return Status::Invalid(program_ + ": " + name + " takes no value");
    } else if (!inline_value) {
      if (i + 1 >= args.size()) {
        return Status::Invalid(program_ + ": " + name + " needs a value (" + flag->value_name + ")");
      }
      value = args[++i];
    }
    if (Status st = flag->set(value); !st.ok()) {
      return Status::Invalid(program_ + ": " + name + " " + st.message());
    }
  }
  return Status::Ok();
}

std::string Flags::Usage() const {
  std::string out = "usage: " + program_;
  for (const Flag& f : flags_) {
    out += " [" + f.name + (f.value_name.empty() ? "" : " " + f.value_name) + "]";
  }
  out += "\n";
  for (const Flag& f : flags_) {
    std::string left = "  " + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (left.size() < 32) left.resize(32, ' ');
    else left += "  ";
    out += left + f.help + "\n";
  }
  return out;
}

}  // namespace geysir
