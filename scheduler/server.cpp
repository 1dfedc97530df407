#include "scheduler/server.h"

#include <sys/wait.h>

#include "proto/invoke_refs.h"
#include "base/log.h"
#include "proto/messages.h"

namespace geysir::scheduler {

namespace {

class DiscardLogSink final : public LogSink {
 public:
  void Emit(proto::LogBatch) override {}
};

UvHandle<uv_signal_t> WatchSignal(uv_loop_t* loop, int signum, void* data, uv_signal_cb cb) {
  UvHandle<uv_signal_t> h;
  if (int rc = h.Init(loop, uv_signal_init); rc != 0) {
    log::Error("signal_watch_failed", {{"signal", signum}, {"error", uv_strerror(rc)}});
    return h;
  }
  h->data = data;
  uv_signal_start(h.get(), cb, signum);
  return h;
}

}  // namespace

SchedulerServer::SchedulerServer(uv_loop_t* loop, ServerOptions options) : loop_(loop), options_(std::move(options)) {}

SchedulerServer::~SchedulerServer() {
  // Normally Shutdown() has run; if not, stop abruptly but still free every handle.
  if (!finished_) Finish();
}

Status SchedulerServer::Start() {
  clock_ = UvClock::Create(loop_);
  if (options_.cgroups) {
    auto driver = worker::CgroupDriver::Detect(options_.cgroup_base);
    if (!driver.ok()) return driver.status().Wrap("cgroups");
    cgroups_ = std::move(driver).value();
    Status st = cgroups_->CleanupStale();
    if (!st.ok()) log::Warn("cgroup_cleanup_stale_failed", {{"error", st.ToString()}});
    log::Info("cgroups", {{"version", cgroups_->version()}, {"base", options_.cgroup_base}});
  }
  launcher_ = std::make_unique<ProcessLauncher>(loop_, clock_, cgroups_.get(), options_.launcher);
  if (!options_.control_socket_path.empty()) {
    auto sink = std::make_unique<ControlLogSink>(loop_, options_.control_socket_path);
    control_logs_ = sink.get();
    sink->Start();
    logs_ = std::move(sink);
  } else {
    logs_ = std::make_unique<DiscardLogSink>();
  }
  scheduler_ = std::make_unique<Scheduler>(options_.scheduler, clock_, launcher_.get(), logs_.get());

  sigchld_ = WatchSignal(loop_, SIGCHLD, this, [](uv_signal_t* h, int) {
    if (h->data != nullptr) static_cast<SchedulerServer*>(h->data)->ReapChildren();
  });
  auto on_stop = [](uv_signal_t* h, int signum) {
    auto* self = static_cast<SchedulerServer*>(h->data);
    if (self == nullptr) return;
    log::Info("signal", {{"signal", signum}, {"action", "drain and stop"}});
    self->Shutdown(self->on_signal_stop_);
  };
  sigterm_ = WatchSignal(loop_, SIGTERM, this, on_stop);
  sigint_ = WatchSignal(loop_, SIGINT, this, on_stop);

  server_ = std::make_unique<proto::FrameServer>(loop_, [this](std::shared_ptr<proto::FrameConnection> conn) {
    std::weak_ptr<proto::FrameConnection> weak = conn;
    // The configs this connection's invokes refer to (proto/invoke_refs.h): its own, gone with it.
    auto refs = std::make_shared<proto::InvokeRefTable>();
    conn->Start([this, weak, refs](proto::Frame&& frame) { OnFrame(weak, *refs, std::move(frame)); },
                [](const Status&) {});
  });
  Status st = server_->Listen(options_.socket_path);
  if (!st.ok()) return st;
  // Templates that died before the handler was installed are reaped now.
  ReapChildren();
  stats_timer_ = clock_->Schedule(10000, [this] { LogStats(); });
  log::Info("listening", {{"socket", options_.socket_path}});
  return Status::Ok();
}

void SchedulerServer::OnFrame(const std::weak_ptr<proto::FrameConnection>& weak, proto::InvokeRefTable& refs,
                              proto::Frame&& frame) {
  if (frame.type() == proto::kMsgRetire) {
    proto::RetireFunction what = frame.header.get<proto::RetireFunction>();  // from_json does not throw
    if (!what.name.empty()) scheduler_->Retire(what.name, what.revision_id);
    return;
  }
  if (frame.type() != proto::kMsgInvoke) return;  // unknown messages are ignored (forward compatible)
  // This is the one place the scheduler reads a peer's invoke header; Decode contains nlohmann's
  // exceptions for a missing or mistyped field.
  Result<proto::InvokeRequest> decoded = refs.Decode(frame.header);
  if (!decoded.ok()) {
    proto::InvokeResult r;
    auto id = frame.header.find("id");
    r.id = id != frame.header.end() && id->is_number_unsigned() ? id->get<uint64_t>() : 0;
    r.outcome = proto::InvokeOutcome::kInternal;
    nlohmann::json body{{"message", "malformed invoke: " + decoded.status().message()}};
    if (auto c = weak.lock()) c->Send(proto::MakeFrame(proto::kMsgResult, r, body.dump()));
    return;
  }
  proto::InvokeRequest req = std::move(*decoded);
  scheduler_->Submit(std::move(req), std::move(frame.body), [weak](proto::InvokeResult result, std::string payload) {
    if (auto c = weak.lock()) c->Send(proto::MakeFrame(proto::kMsgResult, result, std::move(payload)));
  });
}

// Every 10 s, when anything happened: the counters an operator tunes --prefork by.
void SchedulerServer::LogStats() {
  stats_timer_ = 0;
  if (!scheduler_ || finished_) return;
  SchedulerStats s = scheduler_->stats();
  if (s.completed != stats_completed_) {
    stats_completed_ = s.completed;
    log::Info("stats", {{"completed", s.completed}, {"ran_on_ready_child", s.ran_on_ready_child}, {"pools_evicted", s.pools_evicted},
                        {"waited_for_child", s.waited_for_child}, {"throttled", s.throttled},
                        {"pools", s.pools}, {"templates", s.templates}, {"ready_children", s.ready_children},
                        {"in_flight", s.invocations}, {"templates_started", s.templates_started},
                        {"idle_workers", s.idle_workers}, {"ran_on_warm_worker", s.ran_on_warm_worker},
                        {"restoring", s.restoring}, {"restored", s.restored}, {"restore_discards", s.restore_discards},
                        {"workers_idle_stopped", s.workers_idle_stopped}});
  }
  stats_timer_ = clock_->Schedule(10000, [this] { LogStats(); });
}

void SchedulerServer::ReapChildren() {
  // Templates are our children; so are orphaned function processes (we are a subreaper; the
  // kernel hands orphans to the first live thread, this main one). __WNOTHREAD: only this
  // thread's children. The restorer thread's tracees (restore mode) report their ptrace stops
  // to every thread's wait(-1) otherwise, and a stop taken here would never reach the restorer.
  for (int i = 0; i < 4096; ++i) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG | __WNOTHREAD);
    if (pid <= 0) return;
    if (launcher_) launcher_->OnReaped(pid, status);
  }
}

void SchedulerServer::Shutdown(std::function<void()> stopped) {
  if (stopping_) return;
  stopping_ = true;
  stopped_ = std::move(stopped);
  if (!scheduler_) return Finish();
  drain_cap_timer_ = clock_->Schedule(options_.drain_cap_ms, [this] {
    drain_cap_timer_ = 0;
    log::Warn("drain_cap_reached", {{"ms", options_.drain_cap_ms}});
    Finish();
  });
  scheduler_->Shutdown([this] { Finish(); });
}

void SchedulerServer::Finish() {
  if (finished_) return;
  finished_ = true;
  if (clock_) clock_->Cancel(stats_timer_);
  if (server_) server_->Close();
  // Destroying the scheduler destroys every template and child: their cgroups are killed and
  // removed synchronously (worker/cgroup.h).
  scheduler_.reset();
  launcher_.reset();
  if (control_logs_) control_logs_->Close();
  if (cgroups_) {
    Status st = cgroups_->CleanupStale();
    if (!st.ok()) log::Warn("cgroup_cleanup_failed", {{"error", st.ToString()}});
  }
  ReapChildren();
  sigchld_.Close();
  sigterm_.Close();
  sigint_.Close();
  if (clock_) {
    clock_->Close();
    clock_ = nullptr;
  }
  log::Info("stopped");
  if (stopped_) {
    auto cb = std::move(stopped_);
    stopped_ = nullptr;
    cb();
  }
}

}  // namespace geysir::scheduler
