// LoopWorker: one background thread that runs blocking jobs in the order they were submitted and
// hands each job's continuation back to the libuv loop that owns the worker.
//
//   auto worker = LoopWorker::Start(loop);                     // Result<std::unique_ptr<...>>
//   (*worker)->Submit([req, weak] {                            // runs on the worker thread
//     Status st = SomethingThatBlocks(req);
//     return [weak, st] { if (auto self = weak.lock()) self->Done(st); };  // runs on the loop
//   });
//
// For work that must not stall the loop (a mount in another mount namespace, a file written
// and fsync'd) but is too small to pay for a thread each time. One thread, so jobs never run
// concurrently with each other and complete in order; a job may keep per-thread state (the
// worker thread is the same for the worker's whole life).
//
// The worker keeps the loop alive only while a job's continuation is outstanding (an idle worker
// does not stop uv_run from returning).
//
// Destruction (on the loop thread, before the loop is closed) waits for the job that is running,
// drops the jobs not started and the continuations not yet run: continuations capture weak
// pointers, never a `this` that can be gone by then. An exception thrown by a job or by a
// continuation is logged and dropped; it never ends the thread or the loop.
//
// Thread safety: loop thread only (the jobs themselves run on the worker's thread).
#pragma once

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"

namespace geysir {

class LoopWorker {
 public:
  using Continuation = std::function<void()>;  // may be empty: nothing to do on the loop
  using Job = std::function<Continuation()>;

  // `name` names the worker in log events ("<name>_job_failed").
  static Result<std::unique_ptr<LoopWorker>> Start(uv_loop_t* loop, std::string name);
  ~LoopWorker();
  LoopWorker(const LoopWorker&) = delete;
  LoopWorker& operator=(const LoopWorker&) = delete;

  void Submit(Job job);

 private:
  struct Shared;
  explicit LoopWorker(std::shared_ptr<Shared> shared);
  void RunThread();
  static void OnAsync(uv_async_t* handle);

  std::shared_ptr<Shared> shared_;
  uv_async_t* async_ = nullptr;  // freed in its close callback
  std::thread thread_;
};

}  // namespace geysir
