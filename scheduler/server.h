// SchedulerServer: geysir-scheduler's process wiring. A FrameServer on scheduler.sock turns
// "invoke" frames into Scheduler::Submit calls and answers each with one "result" frame; the
// real Launcher (ProcessLauncher) runs templates under cgroups; logs go to control through a
// ControlLogSink; SIGCHLD reaps templates; SIGTERM/SIGINT drain and stop.
//
// Start-up removes cgroups left by a previous run (CgroupDriver::CleanupStale). Shutdown:
// new invocations are refused, running and queued ones finish (bounded by their deadlines and
// by `drain_cap_ms`), templates are killed, every cgroup is removed, then `stopped` runs.
//
// Thread safety: loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "base/uv_handle.h"
#include "proto/frame_channel.h"
#include "proto/invoke_refs.h"
#include "scheduler/clock.h"
#include "scheduler/control_log_sink.h"
#include "scheduler/process_sandbox.h"
#include "scheduler/scheduler.h"
#include "worker/cgroup.h"

namespace geysir::scheduler {

struct ServerOptions {
  std::string socket_path;
  std::string control_socket_path;  // empty: function logs are discarded
  std::string cgroup_base = "geysir";
  bool cgroups = true;              // false only for development on hosts without cgroup access
  int64_t drain_cap_ms = 60000;
  SchedulerOptions scheduler;
  ProcessLauncherOptions launcher;
};

class SchedulerServer {
 public:
  SchedulerServer(uv_loop_t* loop, ServerOptions options);
  ~SchedulerServer();
  SchedulerServer(const SchedulerServer&) = delete;
  SchedulerServer& operator=(const SchedulerServer&) = delete;

  Status Start();
  // Graceful stop; `stopped` runs once every handle of ours is closing. SIGTERM and SIGINT
  // call this with the callback given to Start's caller via on_signal_stop().
  void Shutdown(std::function<void()> stopped);
  void on_signal_stop(std::function<void()> cb) { on_signal_stop_ = std::move(cb); }

  Scheduler* scheduler() { return scheduler_.get(); }

 private:
  void OnFrame(const std::weak_ptr<proto::FrameConnection>& conn, proto::InvokeRefTable& refs, proto::Frame&& frame);
  void ReapChildren();
  void Finish();

  uv_loop_t* loop_;
  ServerOptions options_;
  UvClock* clock_ = nullptr;  // owned by its handle
  std::unique_ptr<worker::CgroupDriver> cgroups_;
  std::unique_ptr<ProcessLauncher> launcher_;
  std::unique_ptr<LogSink> logs_;
  ControlLogSink* control_logs_ = nullptr;  // = logs_ when shipping to control
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<proto::FrameServer> server_;
  UvHandle<uv_signal_t> sigchld_;
  UvHandle<uv_signal_t> sigterm_;
  UvHandle<uv_signal_t> sigint_;
  bool stopping_ = false;
  bool finished_ = false;
  std::function<void()> stopped_;
  std::function<void()> on_signal_stop_;
  Clock::TimerId drain_cap_timer_ = 0;
  Clock::TimerId stats_timer_ = 0;
  uint64_t stats_completed_ = 0;
  void LogStats();
};

}  // namespace geysir::scheduler
