#include "base/loop_worker.h"

#include <system_error>
#include <utility>

#include "base/log.h"

namespace geysir {

// What the thread and the loop share; the async handle's data points here (not at the worker),
// so a wake-up that libuv delivers after the worker is gone finds `closed` and does nothing.
struct LoopWorker::Shared {
  std::string name;
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Job> jobs;
  std::vector<Continuation> done;  // one per finished job, empty ones included (they are counted)
  bool stopping = false;
  bool closed = false;
  size_t in_flight = 0;  // loop thread only: submitted, continuation not yet run: the handle is referenced while > 0
};

Result<std::unique_ptr<LoopWorker>> LoopWorker::Start(uv_loop_t* loop, std::string name) {
  auto shared = std::make_shared<Shared>();
  shared->name = std::move(name);
  std::unique_ptr<LoopWorker> worker(new LoopWorker(shared));
  worker->async_ = new uv_async_t;
  int rc = uv_async_init(loop, worker->async_, &LoopWorker::OnAsync);
  if (rc != 0) {
    delete worker->async_;
    worker->async_ = nullptr;
    return Status::Error(Code::kResourceExhausted, std::string("uv_async_init: ") + uv_strerror(rc));
  }
  // The handle holds a reference to the shared state until its close callback.
  worker->async_->data = new std::shared_ptr<Shared>(shared);
  uv_unref(reinterpret_cast<uv_handle_t*>(worker->async_));
  try {
    LoopWorker* raw = worker.get();
    worker->thread_ = std::thread([raw] { raw->RunThread(); });
  } catch (const std::system_error& e) {
    return Status::Sys(e.code().value(), "starting the " + shared->name + " thread", Code::kResourceExhausted);
  }
  return worker;
}

LoopWorker::LoopWorker(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

LoopWorker::~LoopWorker() {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stopping = true;
    shared_->closed = true;
    shared_->jobs.clear();
    shared_->done.clear();
  }
  shared_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
  if (async_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) {
      delete static_cast<std::shared_ptr<Shared>*>(h->data);
      delete reinterpret_cast<uv_async_t*>(h);
    });
  }
}

void LoopWorker::Submit(Job job) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->stopping) return;
    shared_->jobs.push_back(std::move(job));
  }
  if (shared_->in_flight++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
  shared_->wake.notify_one();
}

void LoopWorker::RunThread() {
  Shared& s = *shared_;
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(s.mu);
      s.wake.wait(lock, [&] { return s.stopping || !s.jobs.empty(); });
      if (s.stopping) return;
      job = std::move(s.jobs.front());
      s.jobs.pop_front();
    }
    Continuation next;
    try {
      next = job();
    } catch (const std::exception& e) {
      log::Error(s.name + "_job_failed", {{"what", e.what()}});
    }
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.closed) return;
    s.done.push_back(std::move(next));
    // Under the lock: the destructor cannot close the handle between the check and the send.
    uv_async_send(async_);
  }
}

void LoopWorker::OnAsync(uv_async_t* handle) {
  auto shared = *static_cast<std::shared_ptr<Shared>*>(handle->data);
  std::vector<Continuation> ready;
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->closed) return;
    ready.swap(shared->done);
  }
  for (auto& next : ready) {
    if (--shared->in_flight == 0) uv_unref(reinterpret_cast<uv_handle_t*>(handle));
    if (!next) continue;
    try {
      next();
    } catch (const std::exception& e) {
      log::Error(shared->name + "_continuation_failed", {{"what", e.what()}});
    }
    // A continuation may have destroyed the worker (its owner): stop at once.
    std::lock_guard<std::mutex> lock(shared->mu);
    if (shared->closed) return;
  }
}

}  // namespace geysir
