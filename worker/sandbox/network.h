// Network mode `egress`: a function's network namespace gets a veth pair to the host, a
// default route through it and NAT on the host, with the host itself, loopback services,
// other functions and operator-listed ranges refused (docs/security.md, "Network").
//
// Two halves:
//  - SetUpNetwork(), a contain() step run by geysir-worker as root right after
//    UnshareNamespaces() made the (empty, loopback-only) network namespace: for `egress` it
//    creates the pair from the host's side and configures both ends. Mode `none` does nothing.
//  - The host firewall (an nftables table), installed once by the scheduler at start-up and
//    removed at its exit: it filters and masquerades every Geysir veth ("gye*") on the host.
//    Tables of several Geysir instances on one host add up (a packet must pass all of them).
//
// Addressing: template i owns interface "gye<i>" on the host and 100.127.0.0/16 + 4i as a /30:
// .1 the host's end, .2 the function's "eth0". The interface name is the allocation: the
// kernel refuses a second "gye<i>" (EEXIST), so concurrent templates (of any Geysir instance)
// never share an address, and the pair is destroyed with the function's namespace.
//
// Thread safety: SetUpNetwork changes the calling thread's network namespace for a moment and
// belongs to the single-threaded launcher. The firewall functions fork nft and wait for it.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "worker/launcher.h"

namespace geysir::worker::sandbox {

inline constexpr char kEgressInterfacePrefix[] = "gye";
inline constexpr char kEgressFunctionRange[] = "100.127.0.0/16";

// contain() step "namespaces" (second half): see above. Must run after UnshareNamespaces and
// while still root with every capability; finds the host's namespace through the control
// socket (fd 3), made by the scheduler in it.
Status SetUpNetwork(const TemplateSpec& spec);

// Always refused to egress functions, whatever the operator lists: loopback, "this network",
// link-local (cloud metadata services live at 169.254.169.254), shared/CGNAT space (our own
// function addresses), multicast and reserved.
std::vector<std::string> AlwaysDeniedRanges();
// Refused unless the operator's list says otherwise: the RFC 1918 private ranges.
std::vector<std::string> DefaultDeniedRanges();
// Parses an operator's deny list: one IPv4 CIDR (or address) per line, '#' comments, blank
// lines ignored. Every entry is validated, so nothing but addresses reaches nft.
Result<std::vector<std::string>> ParseDenyList(const std::string& text);
// The nameservers of a resolv.conf text that a function may reach on port 53 (IPv4, not
// loopback: a host-local resolver such as 127.0.0.53 is not reachable from a namespace).
std::vector<std::string> ParseNameservers(const std::string& resolv_conf);
// The nft script that (re)creates table `inet <table>`. Pure: unit-tested.
std::string EgressRuleset(const std::string& table, const std::vector<std::string>& deny,
                          const std::vector<std::string>& nameservers);

// Runs `nft -f -` with EgressRuleset (replacing a table of the same name atomically).
Status InstallEgressFirewall(const std::string& table, const std::vector<std::string>& deny,
                             const std::vector<std::string>& nameservers);
// Deletes table `inet <table>`; absent is fine.
Status RemoveEgressFirewall(const std::string& table);
// Deletes tables "geysir_<pid>" whose scheduler process no longer exists (left by a crash).
void RemoveStaleEgressFirewalls();

}  // namespace geysir::worker::sandbox
