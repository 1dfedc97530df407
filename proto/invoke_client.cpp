// InvokeClient: invocations multiplexed over one FrameClient. See invoke_client.h.
//
// Every callback runs exactly once: the entry is removed from the pending table before its
// callback is called, and whatever is left in the table when the connection drops (or the
// client closes) is failed with outcome kUnavailable.
#include "proto/invoke_client.h"

#include <unordered_map>

#include "proto/frame_channel.h"
#include "proto/invoke_refs.h"
#include "base/log.h"

namespace geysir::proto {

struct InvokeClient::Impl {
  struct Entry {
    std::string request_id;
    Callback done;
  };

  explicit Impl(uv_loop_t* loop, std::string path)
      : client(
            loop, std::move(path), [this](Frame&& f) { OnFrame(std::move(f)); },
            // A new connection: the scheduler's table of configs is new too.
            [this] { refs.Clear(); },
            [this](const Status& why) {
              refs.Clear();
              FailAll(why.message());
            }) {}

  static void Fail(uint64_t id, const std::string& request_id, const std::string& why, const Callback& done) {
    InvokeResult r;
    r.id = id;
    r.request_id = request_id;
    r.outcome = InvokeOutcome::kUnavailable;
    done(std::move(r), nlohmann::json{{"message", "scheduler unavailable: " + why}}.dump());
  }

  void FailAll(const std::string& why) {
    // Callbacks may start new invocations; they go to a fresh table (and fail fast while down).
    auto failed = std::move(pending);
    pending.clear();
    for (auto& [id, e] : failed) Fail(id, e.request_id, why, e.done);
  }

  void OnFrame(Frame&& frame) {
    if (frame.type() != kMsgResult) {
      log::Warn("invoke_client_unexpected_frame", {{"type", frame.type()}});
      return;
    }
    InvokeResult result;
    // The scheduler's header is untrusted input to this process: a shape error is logged, not
    // thrown through the loop (nlohmann reports it with an exception).
    try {
      result = frame.header.get<InvokeResult>();
    } catch (const std::exception& e) {
      log::Warn("invoke_client_bad_result", {{"error", e.what()}});
      // If at least the id is readable, that invocation ends now rather than at disconnect.
      auto id = frame.header.find("id");
      if (id == frame.header.end() || !id->is_number_unsigned()) return;
      auto bad = pending.find(id->get<uint64_t>());
      if (bad == pending.end()) return;
      Entry e2 = std::move(bad->second);
      pending.erase(bad);
      Fail(id->get<uint64_t>(), e2.request_id, std::string("malformed result: ") + e.what(), e2.done);
      return;
    }
    auto it = pending.find(result.id);
    if (it == pending.end()) {
      log::Warn("invoke_client_unknown_id", {{"id", result.id}});
      return;
    }
    Callback done = std::move(it->second.done);
    pending.erase(it);
    done(std::move(result), std::move(frame.body));
  }

  FrameClient client;
  InvokeRefSender refs;  // the configs sent on this connection
  uint64_t next_id = 0;
  std::unordered_map<uint64_t, Entry> pending;
};

InvokeClient::InvokeClient(uv_loop_t* loop, std::string scheduler_socket_path)
    : impl_(std::make_unique<Impl>(loop, std::move(scheduler_socket_path))) {}

InvokeClient::~InvokeClient() { Close(); }

void InvokeClient::Start() { impl_->client.Start(); }

void InvokeClient::Invoke(InvokeRequest request, std::string event, Callback done) {
  const uint64_t id = ++impl_->next_id;
  request.id = id;
  if (!impl_->client.connected()) {
    Impl::Fail(id, request.request_id, "not connected", done);
    return;
  }
  Frame frame;
  frame.header = impl_->refs.Encode(request);
  frame.header["type"] = kMsgInvoke;
  frame.body = std::move(event);
  Status st = impl_->client.Send(frame);
  if (!st.ok()) {
    Impl::Fail(id, request.request_id, st.message(), done);
    return;
  }
  // Sending can notice a dead connection and fail the table synchronously; only then is the
  // client disconnected here, and this invocation must fail too.
  if (!impl_->client.connected()) {
    Impl::Fail(id, request.request_id, "connection lost while sending", done);
    return;
  }
  impl_->pending.emplace(id, Impl::Entry{std::move(request.request_id), std::move(done)});
}

void InvokeClient::Retire(const RetireFunction& what) {
  if (!impl_->client.connected()) return;
  (void)impl_->client.Send(MakeFrame(kMsgRetire, what));
}

bool InvokeClient::connected() const { return impl_->client.connected(); }

size_t InvokeClient::pending() const { return impl_->pending.size(); }

void InvokeClient::Close() {
  impl_->client.Close();
  impl_->FailAll("client closed");
}

}  // namespace geysir::proto
