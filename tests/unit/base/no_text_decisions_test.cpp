// No decision reads an error's text: the sources of every production folder are scanned for a
// comparison on an error message (a Status's message(), an exception's what(), an AwsError's
// message, a ToString()) and the test fails naming each file and line that has one. A decision
// needs a code (base/status.h), an AWS type, an outcome or a flag instead; see docs/errors.md.
//
// What it cannot see: a message copied into a variable first and compared there. The pattern is
// the one every such site in the tree had; a reviewer catches the rest.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// An error's text, then (after closing parentheses) a search, a prefix/suffix test, a slice, or
// an equality comparison; or an error's text as the first argument of a prefix/suffix helper.
const std::regex& TextDecision() {
  static const std::regex kPattern(
      R"((message\(\)|what\(\)|\.message\b|ToString\(\))\)*\s*(\.(find|rfind|find_first_of|find_last_of|starts_with|ends_with|compare|substr)\(|[=!]=))"
      R"(|(StartsWith|EndsWith|Contains|starts_with|ends_with)\([^,()]*(message\(\)|what\(\)|\.message\b))");
  return kPattern;
}

// Every "path:line: text" in `dir` that compares an error's text.
std::vector<std::string> Offenders(const fs::path& root, const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (ext != ".cpp" && ext != ".h") continue;
    std::ifstream in(entry.path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      const auto code_end = line.find("//");
      const std::string code = line.substr(0, code_end);
      if (std::regex_search(code, TextDecision())) {
        found.push_back(fs::relative(entry.path(), root).string() + ":" + std::to_string(n) + ": " + line);
      }
    }
  }
  return found;
}

}  // namespace

TEST_CASE("the pattern sees each way a message was compared in this tree", "[no_text_decisions]") {
  for (const char* bad : {
           R"(status.message().find("--help") != std::string::npos)",
           R"(std::string_view(e.what()).find("no such table"))",
           R"(st.message().substr(0, st.message().find(':')))",
           R"(e.message.rfind("Could not unzip", 0) != 0)",
           R"(if (st.message() == "x") {})",
           R"(if (status.ToString().starts_with("NotFound")) {})",
           R"(if (StartsWith(error.message, "Request has expired")) {})",
       }) {
    INFO(bad);
    CHECK(std::regex_search(std::string(bad), TextDecision()));
  }
  for (const char* fine : {
           R"(io.err << "error: " << status.message() << "\n";)",
           R"(log::Warn("x", {{"error", st.ToString()}});)",
           R"(e.message = "Could not unzip uploaded file: " + e.message;)",
           R"(if (st.code() == Code::kNotFound) {})",
           R"(return Status::Invalid(where + ": " + why.message());)",
           // The limit named above: a copy compared later is not seen.
           R"(if (message.rfind("scheduler unavailable", 0) == 0) return 503;)",
       }) {
    INFO(fine);
    CHECK_FALSE(std::regex_search(std::string(fine), TextDecision()));
  }
}

TEST_CASE("no production source decides by an error's text", "[no_text_decisions]") {
  const fs::path root = GEYSIR_SOURCE_DIR;
  std::vector<std::string> all;
  for (const char* dir : {"base", "net", "proto", "gateway", "scheduler", "worker", "control", "cli", "fuzz"}) {
    REQUIRE(fs::is_directory(root / dir));
    for (std::string& o : Offenders(root, dir)) all.push_back(std::move(o));
  }
  std::string report;
  for (const std::string& o : all) report += o + "\n";
  INFO("decide by a code, an AWS type, an outcome or a flag (docs/errors.md):\n" << report);
  CHECK(all.empty());
}
