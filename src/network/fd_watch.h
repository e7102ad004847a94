// FdWatch: keeps one fd's epoll registration on an EventLoop in step with the
// events a port currently wants (registering, modifying or leaving it), so each
// PacketPort over an fd (TAP, switch socket, VXLAN) states only what it wants.
#pragma once

#include <cstdint>

#include "base/event_loop.h"

namespace strata::network {

class FdWatch {
 public:
  FdWatch(EventLoop& loop, int fd, EventLoop::FdHandler handler)
      : loop_(loop), fd_(fd), handler_(std::move(handler)) {}
  ~FdWatch() { stop(); }
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;

  // Watches for `events` (0: not at all, the registration stays for a later want).
  void want(uint32_t events) {
    if (!watching_) {
      if (events != 0 && loop_.watch(fd_, events, handler_)) {
        watching_ = true;
        events_ = events;
      }
      return;
    }
    if (events != events_ && loop_.modify(fd_, events)) events_ = events;
  }
  // Unregisters for good (the fd is closing or failed).
  void stop() {
    if (watching_) loop_.unwatch(fd_);
    watching_ = false;
  }

 private:
  EventLoop& loop_;
  int fd_;
  EventLoop::FdHandler handler_;
  bool watching_ = false;
  uint32_t events_ = 0;
};

}  // namespace strata::network
