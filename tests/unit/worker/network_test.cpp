// Egress networking's pure parts: the operator's deny list, the nameservers allowed, and the
// nftables script (checked for what it refuses; `nft -c` validates its syntax when present).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"
#include "worker/sandbox/network.h"

using namespace geysir::worker::sandbox;

TEST_CASE("the deny list takes CIDRs and addresses, comments and blanks, and nothing else", "[network]") {
  auto ok = ParseDenyList("# the office\n198.19.0.0/16\n\n  203.0.113.7   # one host\n10.1.0.0/16\n");
  REQUIRE(ok.ok());
  CHECK(*ok == std::vector<std::string>{"198.19.0.0/16", "203.0.113.7", "10.1.0.0/16"});
  for (const char* bad : {"198.19.0.0/33", "198.19.0.0/", "fd00::/8", "1.2.3.4; flush ruleset", "host.example",
                          "1.2.3.4/1x", "} accept"}) {
    auto r = ParseDenyList(std::string("10.0.0.0/8\n") + bad + "\n");
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("line 2") != std::string::npos);
  }
}

TEST_CASE("nameservers: IPv4, not loopback", "[network]") {
  auto ns = ParseNameservers("search x\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver ::1\n"
                             "#nameserver 9.9.9.9\nnameserver 192.0.2.53 # office\n");
  CHECK(ns == std::vector<std::string>{"10.255.255.53", "192.0.2.53"});
}

TEST_CASE("the ruleset refuses the host, other functions and every listed range, and NATs the rest", "[network]") {
  std::string r = EgressRuleset("geysir_42", {"198.19.0.0/16"}, {"10.255.255.53"});
  // Replaced in one transaction: declared, deleted, recreated.
  CHECK(r.rfind("table inet geysir_42\ndelete table inet geysir_42\ntable inet geysir_42 {", 0) == 0);
  for (const char* range : {"127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "198.19.0.0/16"}) {
    CHECK(r.find(range) != std::string::npos);
  }
  CHECK(r.find("hook input") != std::string::npos);
  CHECK(r.find("iifname \"gye*\" oifname \"gye*\" reject") != std::string::npos);
  CHECK(r.find("ip daddr @dns4 udp dport 53 accept") < r.find("ip daddr @denied4"));
  CHECK(r.find("ct state != { established, related } drop") != std::string::npos);
  CHECK(r.find("masquerade") != std::string::npos);
  CHECK(EgressRuleset("t", {}, {}).find("dns4") == std::string::npos);

  if (access("/usr/sbin/nft", X_OK) != 0) GEYSIR_SKIP("the ruleset's syntax check needs nft (nftables)");
  if (geteuid() != 0) GEYSIR_SKIP("the ruleset's syntax check needs root (nft -c talks to the kernel)");
  geysir::testing::TempDir dir("geysir-nft");
  dir.Write("ruleset.nft", r);
  int rc = std::system(("/usr/sbin/nft -c -f " + (dir / "ruleset.nft") + " >/dev/null 2>&1").c_str());
  CHECK(rc == 0);
}
