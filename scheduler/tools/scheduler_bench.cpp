// geysir-scheduler-bench: a closed-loop load driver for scheduler.sock. Each of --connections
// threads keeps one invoke in flight on its own connection for --duration seconds (after
// --warmup seconds not counted) and records latencies; prints req/s and percentiles.
//
//   geysir-scheduler-bench --socket RUN/scheduler.sock --code-dir DIR --handler app.handler
//       --connections 16 --duration 10
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/frame.h"
#include "proto/messages.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string socket = "/var/lib/geysir/run/scheduler.sock";
  std::string name = "bench-hello";
  std::string revision = "bench-r1";
  std::string code_dir;
  std::string handler = "app.handler";
  std::string event = "{}";
  uint32_t memory = 128;
  uint32_t timeout = 3;
  int connections = 16;
  double duration = 10;
  double warmup = 2;
  // Pause after each answer (per connection): paced requests find a pre-forked child waiting,
  // so their latency is the request path alone, not the fork behind it.
  double interval_ms = 0;
};

// CPU time the whole machine spent busy so far, in ms (/proc/stat's first line: every field but
// idle and iowait). Differences over the measured window, per request, compare configurations
// on an otherwise idle machine (the client's own share is the same in each).
double MachineBusyMs() {
  FILE* f = fopen("/proc/stat", "re");
  if (f == nullptr) return 0;
  unsigned long long v[10] = {};
  const int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                       &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (n < 8) return 0;
  // guest and guest_nice (8, 9) are already counted in user and nice.
  const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return static_cast<double>(busy) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

struct Shared {
  std::mutex mu;
  std::vector<double> latencies_ms;
  std::map<std::string, uint64_t> outcomes;
  std::map<int32_t, bool> pids;
  uint64_t errors = 0;
};

void Worker(const Options& o, int index, Clock::time_point measure_from, Clock::time_point until, Shared& shared) {
  int fd = Connect(o.socket);
  if (fd < 0) {
    std::lock_guard<std::mutex> g(shared.mu);
    ++shared.errors;
    return;
  }
  std::vector<double> lat;
  std::map<std::string, uint64_t> outcomes;
  std::vector<int32_t> pids;
  geysir::proto::FrameDecoder decoder;
  char buf[65536];
  uint64_t seq = 0;
  uint64_t errors = 0;
  while (Clock::now() < until) {
    geysir::proto::InvokeRequest req;
    req.id = ++seq;
    req.request_id = "bench-" + std::to_string(index) + "-" + std::to_string(seq);
    req.source = geysir::proto::InvokeSource::kApi;
    req.function.name = o.name;
    req.function.arn = "arn:aws:lambda:us-east-1:000000000000:function:" + o.name;
    req.function.revision_id = o.revision;
    req.function.handler = o.handler;
    req.function.code_dir = o.code_dir;
    req.function.memory_mb = o.memory;
    req.function.timeout_s = o.timeout;
    req.function.log_group = "/aws/lambda/" + o.name;
    const std::string bytes = geysir::proto::EncodeFrame(geysir::proto::MakeFrame(geysir::proto::kMsgInvoke, req, o.event));
    auto t0 = Clock::now();
    if (!WriteAll(fd, bytes)) {
      ++errors;
      break;
    }
    std::optional<geysir::proto::Frame> frame;
    while (!frame) {
      auto next = decoder.Next();
      if (!next.ok()) break;
      if (next->has_value()) {
        frame = std::move(**next);
        break;
      }
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      decoder.Feed(buf, static_cast<size_t>(n));
    }
    if (!frame) {
      ++errors;
      break;
    }
    auto t1 = Clock::now();
    if (t0 >= measure_from) {
      lat.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      outcomes[frame->header.value("outcome", "?")]++;
      pids.push_back(frame->header.value("worker_pid", 0));
    }
    if (o.interval_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(o.interval_ms));
  }
  close(fd);
  std::lock_guard<std::mutex> g(shared.mu);
  shared.latencies_ms.insert(shared.latencies_ms.end(), lat.begin(), lat.end());
  for (auto& [k, v] : outcomes) shared.outcomes[k] += v;
  for (auto p : pids) shared.pids[p] = true;
  shared.errors += errors;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--socket") o.socket = v;
    else if (a == "--name") o.name = v;
    else if (a == "--revision") o.revision = v;
    else if (a == "--code-dir") o.code_dir = v;
    else if (a == "--handler") o.handler = v;
    else if (a == "--event") o.event = v;
    else if (a == "--memory") o.memory = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--timeout") o.timeout = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--connections") o.connections = std::stoi(v);
    else if (a == "--duration") o.duration = std::stod(v);
    else if (a == "--warmup") o.warmup = std::stod(v);
    else if (a == "--interval-ms") o.interval_ms = std::stod(v);
    else {
      fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (o.code_dir.empty()) {
    fprintf(stderr, "usage: geysir-scheduler-bench --socket PATH --code-dir DIR [--handler app.handler] "
                    "[--connections 16] [--duration 10] [--warmup 2] [--interval-ms 0]\n");
    return 2;
  }
  Shared shared;
  auto start = Clock::now();
  auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
  auto until = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.connections; ++i) {
    threads.emplace_back(Worker, std::cref(o), i, measure_from, until, std::ref(shared));
  }
  std::this_thread::sleep_until(measure_from);
  const double busy_from = MachineBusyMs();
  std::this_thread::sleep_until(until);
  const double busy_ms = MachineBusyMs() - busy_from;
  for (auto& t : threads) t.join();
  auto& l = shared.latencies_ms;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) { return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<size_t>(p * static_cast<double>(l.size())))]; };
  printf("connections %d, measured %.1f s: %zu requests, %.0f req/s\n", o.connections, o.duration, l.size(),
         static_cast<double>(l.size()) / o.duration);
  printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", pct(0.50), pct(0.90), pct(0.99), l.empty() ? 0.0 : l.back());
  printf("machine cpu: %.0f ms busy in the measured window, %.3f ms per request\n", busy_ms,
         l.empty() ? 0.0 : busy_ms / static_cast<double>(l.size()));
  printf("outcomes:");
  for (auto& [k, v] : shared.outcomes) printf(" %s=%llu", k.c_str(), static_cast<unsigned long long>(v));
  printf("  distinct worker pids: %zu  connection errors: %llu\n", shared.pids.size(),
         static_cast<unsigned long long>(shared.errors));
  return shared.errors == 0 ? 0 : 1;
}
