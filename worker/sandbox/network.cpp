#include "worker/sandbox/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include "base/unique_fd.h"
#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

constexpr char kNft[] = "/usr/sbin/nft";
constexpr uint32_t kFirstIndex = 1;
constexpr uint32_t kIndexCount = 16383;  // 4 addresses each in the /16
constexpr int kAllocationTries = 32;

std::string Ip4(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

uint32_t RangeBase() {
  in_addr a{};
  std::string r = kEgressFunctionRange;
  inet_pton(AF_INET, r.substr(0, r.find('/')).c_str(), &a);
  return ntohl(a.s_addr);
}

// ---- rtnetlink: one request, one acknowledgement ------------------------------------------

struct NlMessage {
  alignas(nlmsghdr) char buf[1024];
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf); }
};

rtattr* AddAttr(nlmsghdr* h, int type, const void* data, size_t len) {
  auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = static_cast<unsigned short>(type);
  a->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  if (len > 0) std::memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
  return a;
}

void EndNest(nlmsghdr* h, rtattr* nest) {
  nest->rta_len = static_cast<unsigned short>(reinterpret_cast<char*>(h) + h->nlmsg_len - reinterpret_cast<char*>(nest));
}

// Sends the request and waits for the kernel's ack; returns its errno (0: done).
int Transact(int nl, nlmsghdr* h) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, h, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) return errno;
  alignas(nlmsghdr) char reply[4096];
  for (int round = 0; round < 8; ++round) {
    ssize_t n = recv(nl, reply, sizeof reply, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int len = static_cast<int>(n);
    for (auto* r = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(r, len); r = NLMSG_NEXT(r, len)) {
      if (r->nlmsg_type == NLMSG_ERROR) {
        auto* err = static_cast<nlmsgerr*>(NLMSG_DATA(r));
        return -err->error;
      }
    }
  }
  return EPROTO;
}

// RTM_NEWLINK veth `host_name` here (the netlink socket's namespace), its peer "eth0" in the
// namespace `peer_ns_fd`. NLM_F_EXCL: an existing name fails with EEXIST (the allocation).
int CreateVethPair(int nl, const std::string& host_name, int peer_ns_fd) {
  NlMessage m{};
  nlmsghdr* h = m.hdr();
  h->nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  h->nlmsg_type = RTM_NEWLINK;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  h->nlmsg_seq = 1;
  AddAttr(h, IFLA_IFNAME, host_name.c_str(), host_name.size() + 1);
  rtattr* linkinfo = AddAttr(h, IFLA_LINKINFO, nullptr, 0);
  AddAttr(h, IFLA_INFO_KIND, "veth", 5);
  rtattr* data = AddAttr(h, IFLA_INFO_DATA, nullptr, 0);
  rtattr* peer = AddAttr(h, VETH_INFO_PEER, nullptr, 0);
  h->nlmsg_len += sizeof(ifinfomsg);  // the peer's (zeroed) ifinfomsg precedes its attributes
  AddAttr(h, IFLA_IFNAME, "eth0", 5);
  const uint32_t fd = static_cast<uint32_t>(peer_ns_fd);
  AddAttr(h, IFLA_NET_NS_FD, &fd, sizeof fd);
  EndNest(h, peer);
  EndNest(h, data);
  EndNest(h, linkinfo);
  return Transact(nl, h);
}

// ---- classic ioctls on the namespace the socket was made in --------------------------------

Status SetAddress(int sock, const char* ifname, uint32_t addr, uint32_t netmask) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(addr);
  if (ioctl(sock, SIOCSIFADDR, &ifr) < 0) return Status::Sys(errno, std::string("SIOCSIFADDR ") + ifname);
  sin->sin_addr.s_addr = htonl(netmask);
  if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0) return Status::Sys(errno, std::string("SIOCSIFNETMASK ") + ifname);
  return Status::Ok();
}

Status SetUp(int sock, const char* ifname) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return Status::Sys(errno, std::string("SIOCGIFFLAGS ") + ifname);
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) return Status::Sys(errno, std::string("SIOCSIFFLAGS up ") + ifname);
  return Status::Ok();
}

Status AddDefaultRoute(int sock, uint32_t gateway) {
  rtentry rt{};
  auto* dst = reinterpret_cast<sockaddr_in*>(&rt.rt_dst);
  auto* mask = reinterpret_cast<sockaddr_in*>(&rt.rt_genmask);
  auto* gw = reinterpret_cast<sockaddr_in*>(&rt.rt_gateway);
  dst->sin_family = mask->sin_family = gw->sin_family = AF_INET;
  gw->sin_addr.s_addr = htonl(gateway);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  if (ioctl(sock, SIOCADDRT, &rt) < 0) return Status::Sys(errno, "SIOCADDRT default via " + Ip4(gateway));
  return Status::Ok();
}

// Writes a sysctl of the network namespace we are in now (/proc/sys/net follows the opener).
Status WriteSysctl(const std::string& path, const char* value, bool optional) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return optional && errno == ENOENT ? Status::Ok() : Status::Sys(errno, "open " + path);
  if (write(fd.get(), value, std::strlen(value)) < 0) return Status::Sys(errno, "write " + path);
  return Status::Ok();
}

uint64_t Seed(const TemplateSpec& spec) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the template id and the time
  for (unsigned char c : spec.template_id) h = (h ^ c) * 1099511628211ull;
  h ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return h * 1099511628211ull;
}

// Everything done inside the host's network namespace: create the pair, give the host's end
// its address, switch it on and let it forward. On return the caller switches back.
Status HostSide(const TemplateSpec& spec, int function_ns, std::string& ifname, uint32_t& host_addr) {
  UniqueFd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!nl) return Status::Sys(errno, "socket(NETLINK_ROUTE) in the host's namespace");
  UniqueFd ctl(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!ctl) return Status::Sys(errno, "socket(AF_INET) in the host's namespace");
  const uint64_t seed = Seed(spec);
  int last = 0;
  for (int attempt = 0; attempt < kAllocationTries; ++attempt) {
    const uint32_t index = kFirstIndex + static_cast<uint32_t>((seed + static_cast<uint64_t>(attempt) * 7919) % kIndexCount);
    std::string name = std::string(kEgressInterfacePrefix) + std::to_string(index);
    last = CreateVethPair(nl.get(), name, function_ns);
    if (last == EEXIST) continue;  // another template holds this index
    if (last != 0) return Status::Sys(last, "creating veth pair " + name + " / eth0");
    ifname = name;
    host_addr = RangeBase() + index * 4 + 1;
    // No IPv6 on the link: a link-local address would reach host services listening on [::].
    if (Status st = WriteSysctl("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6", "1", true); !st.ok()) return st;
    if (Status st = SetAddress(ctl.get(), name.c_str(), host_addr, 0xfffffffcu); !st.ok()) return st;
    if (Status st = SetUp(ctl.get(), name.c_str()); !st.ok()) return st;
    // Forwarding on this interface only: packets from the function may be routed on (and are
    // filtered by the firewall); the host-wide switch is the operator's (docs/security.md).
    return WriteSysctl("/proc/sys/net/ipv4/conf/" + name + "/forwarding", "1", false);
  }
  return Status::Sys(last, "no free egress interface name after " + std::to_string(kAllocationTries) + " tries");
}

bool ValidIpv4Cidr(const std::string& s) {
  auto slash = s.find('/');
  std::string addr = s.substr(0, slash);
  in_addr a{};
  if (addr.empty() || inet_pton(AF_INET, addr.c_str(), &a) != 1) return false;
  if (slash == std::string::npos) return true;
  std::string bits = s.substr(slash + 1);
  if (bits.empty() || bits.size() > 2 || bits.find_first_not_of("0123456789") != std::string::npos) return false;
  return std::stoi(bits) <= 32;
}

std::string Trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string JoinSet(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// Runs nft with `args` and `input` on its stdin; the error names nft's own message.
Status RunNft(const std::vector<std::string>& args, const std::string& input) {
  if (access(kNft, X_OK) != 0) {
    return Status::Sys(errno, std::string(kNft) + " not found: egress networking needs nftables (apt-get install nftables)");
  }
  int in[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0) return Status::Sys(errno, "pipe2 (nft stdin)");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(err, O_CLOEXEC) < 0) return Status::Sys(errno, "pipe2 (nft stderr)");
  UniqueFd err_r(err[0]), err_w(err[1]);
  std::vector<std::string> argv_s = {"nft"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  pid_t pid = fork();
  if (pid < 0) return Status::Sys(errno, "fork (nft)");
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    if (dup2(in_r.get(), 0) < 0 || dup2(err_w.get(), 1) < 0 || dup2(err_w.get(), 2) < 0) _exit(126);
    execve(kNft, argv.data(), envp);
    _exit(127);
  }
  in_r.Reset();
  err_w.Reset();
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = write(in_w.get(), input.data() + off, input.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  in_w.Reset();
  std::string message;
  char buf[1024];
  for (int round = 0; round < 64; ++round) {  // nft's complaints are short; bounded anyway
    ssize_t n = read(err_r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (message.size() < 4096) message.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return Status::Internal("nft " + (args.empty() ? std::string() : args[0]) + " failed: " + Trim(message));
}

}  // namespace

Status SetUpNetwork(const TemplateSpec& spec) {
  if (spec.network != "egress") return Status::Ok();  // "none": UnshareNamespaces left loopback only
  // The host's namespace is the scheduler's: fd 3, the control socket, is one end of a
  // socketpair the scheduler made there, and SIOCGSKNS opens a socket's network namespace.
  // (Not /proc/1/ns/net: PID 1 may be another namespace's init, or not ours to inspect, and
  // getppid() cannot name the scheduler from inside our PID namespace.)
  UniqueFd host_ns(ioctl(kControlFd, SIOCGSKNS));
  if (!host_ns) return Status::Sys(errno, "SIOCGSKNS on the control socket (the scheduler's network namespace)");
  UniqueFd own_ns(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!own_ns) return Status::Sys(errno, "open /proc/self/ns/net");
  struct stat a{}, b{};
  if (fstat(host_ns.get(), &a) < 0 || fstat(own_ns.get(), &b) < 0) return Status::Sys(errno, "fstat network namespaces");
  if (a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
    return Status::Sys(EINVAL, "egress needs the function's own network namespace (UnshareNamespaces first)");
  }

  if (setns(host_ns.get(), CLONE_NEWNET) < 0) return Status::Sys(errno, "setns into the host's network namespace");
  std::string ifname;
  uint32_t host_addr = 0;
  Status host = HostSide(spec, own_ns.get(), ifname, host_addr);
  // Back into the function's namespace whatever happened: nothing may run in the host's.
  if (setns(own_ns.get(), CLONE_NEWNET) < 0) return Status::Sys(errno, "setns back into the function's network namespace");
  if (!host.ok()) return host;

  UniqueFd ctl(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!ctl) return Status::Sys(errno, "socket(AF_INET) in the function's namespace");
  if (Status st = WriteSysctl("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "1", true); !st.ok()) return st;
  if (Status st = SetAddress(ctl.get(), "eth0", host_addr + 1, 0xfffffffcu); !st.ok()) return st;
  if (Status st = SetUp(ctl.get(), "eth0"); !st.ok()) return st;
  return AddDefaultRoute(ctl.get(), host_addr);
}

std::vector<std::string> AlwaysDeniedRanges() {
  return {"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "192.0.0.0/24",
          "224.0.0.0/4", "240.0.0.0/4"};
}

std::vector<std::string> DefaultDeniedRanges() { return {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}; }

Result<std::vector<std::string>> ParseDenyList(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string s = Trim(line.substr(0, line.find('#')));
    if (s.empty()) continue;
    if (!ValidIpv4Cidr(s)) {
      return Status::Invalid("egress deny list, line " + std::to_string(n) + ": \"" + s +
                             "\" is not an IPv4 address or CIDR (e.g. 203.0.113.0/24)");
    }
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> ParseNameservers(const std::string& resolv_conf) {
  std::vector<std::string> out;
  std::istringstream in(resolv_conf);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, addr;
    if (!(words >> key >> addr) || key != "nameserver") continue;
    in_addr a{};
    if (inet_pton(AF_INET, addr.c_str(), &a) != 1) continue;
    if ((ntohl(a.s_addr) >> 24) == 127) continue;
    out.push_back(addr);
  }
  return out;
}

std::string EgressRuleset(const std::string& table, const std::vector<std::string>& deny,
                          const std::vector<std::string>& nameservers) {
  std::vector<std::string> all = AlwaysDeniedRanges();
  all.insert(all.end(), deny.begin(), deny.end());
  const std::string fn = std::string("iifname \"") + kEgressInterfacePrefix + "*\"";
  const std::string to_fn = std::string("oifname \"") + kEgressInterfacePrefix + "*\"";
  std::ostringstream o;
  // Declaring the table first makes the delete succeed when it does not exist yet, so the
  // whole replacement is one transaction: there is never a moment without the rules.
  o << "table inet " << table << "\n"
    << "delete table inet " << table << "\n"
    << "table inet " << table << " {\n"
    << "  set denied4 { type ipv4_addr; flags interval; auto-merge; elements = { " << JoinSet(all) << " } }\n";
  if (!nameservers.empty()) o << "  set dns4 { type ipv4_addr; elements = { " << JoinSet(nameservers) << " } }\n";
  o << "  # Anything from a function to the host itself (every local address, any port): refused.\n"
    << "  chain input {\n"
    << "    type filter hook input priority filter - 1; policy accept;\n"
    << "    " << fn << " meta l4proto tcp reject with tcp reset\n"
    << "    " << fn << " reject with icmpx admin-prohibited\n"
    << "  }\n"
    << "  chain forward {\n"
    << "    type filter hook forward priority filter - 1; policy accept;\n"
    << "    " << fn << " " << to_fn << " reject with icmpx admin-prohibited\n"
    << "    " << fn << " meta nfproto ipv6 reject with icmpx admin-prohibited\n";
  if (!nameservers.empty()) {
    o << "    " << fn << " ip daddr @dns4 udp dport 53 accept\n"
      << "    " << fn << " ip daddr @dns4 tcp dport 53 accept\n";
  }
  o << "    " << fn << " ip daddr @denied4 meta l4proto tcp reject with tcp reset\n"
    << "    " << fn << " ip daddr @denied4 reject with icmpx admin-prohibited\n"
    << "    # Nothing outside may open a connection to a function; replies pass.\n"
    << "    " << to_fn << " ct state != { established, related } drop\n"
    << "  }\n"
    << "  chain postrouting {\n"
    << "    type nat hook postrouting priority srcnat; policy accept;\n"
    << "    " << fn << " " << "oifname != \"" << kEgressInterfacePrefix << "*\" masquerade\n"
    << "  }\n"
    << "}\n";
  return o.str();
}

Status InstallEgressFirewall(const std::string& table, const std::vector<std::string>& deny,
                             const std::vector<std::string>& nameservers) {
  return RunNft({"-f", "-"}, EgressRuleset(table, deny, nameservers));
}

Status RemoveEgressFirewall(const std::string& table) {
  return RunNft({"-f", "-"}, "table inet " + table + "\ndelete table inet " + table + "\n");
}

void RemoveStaleEgressFirewalls() {
  // `nft list tables` prints "table inet geysir_<pid>" lines; bounded by the text's size.
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0 || access(kNft, X_OK) != 0) return;
  UniqueFd r(out[0]), w(out[1]);
  char arg0[] = "nft", arg1[] = "list", arg2[] = "tables", arg3[] = "inet";
  char* argv[] = {arg0, arg1, arg2, arg3, nullptr};
  char* envp[] = {nullptr};
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    if (dup2(w.get(), 1) < 0) _exit(126);
    execve(kNft, argv, envp);
    _exit(127);
  }
  w.Reset();
  std::string text;
  char buf[4096];
  for (int round = 0; round < 256; ++round) {
    ssize_t n = read(r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string prefix = "table inet geysir_";
    if (line.rfind(prefix, 0) != 0) continue;
    std::string pid_text = line.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const pid_t owner = static_cast<pid_t>(std::stol(pid_text));
    if (owner == getpid() || kill(owner, 0) == 0 || errno == EPERM) continue;  // still alive
    (void)RemoveEgressFirewall("geysir_" + pid_text);
  }
}

}  // namespace geysir::worker::sandbox
