// EventLoop: one epoll-driven thread that runs I/O callbacks for a VM's backends
// (disk completions, TAP frames, console input) and tasks posted from other
// threads. Callbacks run only on the loop thread, so backends need no locks
// among themselves.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata {

class EventLoop {
 public:
  using FdHandler = std::function<void(uint32_t epollEvents)>;
  using Task = std::function<void()>;

  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();

  // Watches fd for the given epoll events (EPOLLIN, EPOLLOUT, ...). Loop thread or before run().
  Result<void> watch(int fd, uint32_t events, FdHandler handler);
  Result<void> modify(int fd, uint32_t events);
  void unwatch(int fd);

  // Queues a task to run on the loop thread; callable from any thread.
  void post(Task task);

  // Runs until stop(); returns on the thread that called it.
  void run();
  // Runs ready handlers and tasks once, waiting at most timeoutMs (-1 waits forever).
  void runOnce(int timeoutMs);
  void stop();
  bool stopped() const { return stopRequested_.load(); }

 private:
  EventLoop(UniqueFd epoll, UniqueFd wakeup);
  void runPostedTasks();

  UniqueFd epoll_;
  UniqueFd wakeup_;  // eventfd that post() and stop() signal
  std::unordered_map<int, std::shared_ptr<FdHandler>> handlers_;
  std::mutex tasksMutex_;
  std::vector<Task> tasks_;
  std::atomic<bool> stopRequested_{false};
};

}  // namespace strata
