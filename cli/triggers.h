// `geysir schedules` and `geysir events ...`: the operator's view of triggers (control's
// /geysir/v1/schedules and /geysir/v1/async-events), see docs/triggers.md.
//
//   geysir schedules                       every schedule with its next firing
//   geysir events queued [--function F]    async events waiting to run (or to be retried)
//   geysir events failed [--function F]    events that exhausted their retries
//   geysir events redrive ID | --all [--function F]   failed events back to the queue
//
// Thread safety: single-threaded.
#pragma once

namespace geysir::cli {

// argv[1] is "schedules" or "events". Returns the exit code (0 ok, 1 failure, 2 usage).
int RunTriggersCommand(int argc, char** argv);

}  // namespace geysir::cli
