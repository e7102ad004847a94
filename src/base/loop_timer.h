// LoopTimer: a one-shot timer that runs a callback on an EventLoop thread, made
// of a timerfd the loop watches (the loop itself has no timers). The NBD server
// uses one per connection for the handshake time limit, the volume manager one
// per pool to clear idle write-intent regions.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace strata {

class LoopTimer {
 public:
  // onExpiry runs on the loop thread; it may destroy the timer.
  static Result<std::unique_ptr<LoopTimer>> create(EventLoop& loop, std::function<void()> onExpiry);
  ~LoopTimer();
  LoopTimer(const LoopTimer&) = delete;
  LoopTimer& operator=(const LoopTimer&) = delete;

  // Fires once, after the given time from now (re-arming replaces the previous deadline).
  Result<void> arm(std::chrono::milliseconds after);

 private:
  LoopTimer(EventLoop& loop, UniqueFd fd) : loop_(loop), fd_(std::move(fd)) {}

  EventLoop& loop_;
  UniqueFd fd_;
};

}  // namespace strata
