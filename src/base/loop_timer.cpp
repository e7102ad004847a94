#include "base/loop_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdint>

namespace strata {

Result<std::unique_ptr<LoopTimer>> LoopTimer::create(EventLoop& loop, std::function<void()> onExpiry) {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!fd.valid()) return errnoError("timerfd_create");
  int raw = fd.get();
  // The handler owns the callback, not the timer, so the callback may destroy the timer.
  auto watched = loop.watch(raw, EPOLLIN, [raw, onExpiry = std::move(onExpiry)](uint32_t) {
    uint64_t expirations = 0;
    // Nothing to read: a stale event, or the timer was re-armed after it fired.
    if (::read(raw, &expirations, sizeof expirations) != static_cast<ssize_t>(sizeof expirations)) return;
    onExpiry();
  });
  if (!watched) return watched.error();
  return std::unique_ptr<LoopTimer>(new LoopTimer(loop, std::move(fd)));
}

LoopTimer::~LoopTimer() { loop_.unwatch(fd_.get()); }

Result<void> LoopTimer::arm(std::chrono::milliseconds after) {
  itimerspec spec{};
  auto total = after.count() > 0 ? after.count() : 1;  // a zero it_value would disarm the timer
  spec.it_value.tv_sec = static_cast<time_t>(total / 1000);
  spec.it_value.tv_nsec = static_cast<long>(total % 1000) * 1000000L;
  if (::timerfd_settime(fd_.get(), 0, &spec, nullptr) != 0) return errnoError("timerfd_settime");
  return {};
}

}  // namespace strata
