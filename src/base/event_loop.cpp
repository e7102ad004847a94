#include "base/event_loop.h"

#include <sys/eventfd.h>

#include <memory>

namespace strata {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return errnoError("epoll_create1");
  UniqueFd wakeup(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeup.valid()) return errnoError("eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wakeup.get();
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wakeup.get(), &event) != 0) return errnoError("epoll_ctl");
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll), std::move(wakeup)));
}

EventLoop::EventLoop(UniqueFd epoll, UniqueFd wakeup) : epoll_(std::move(epoll)), wakeup_(std::move(wakeup)) {}

EventLoop::~EventLoop() = default;

Result<void> EventLoop::watch(int fd, uint32_t events, FdHandler handler) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return errnoError("epoll_ctl add");
  handlers_[fd] = std::make_shared<FdHandler>(std::move(handler));
  return {};
}

Result<void> EventLoop::modify(int fd, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) != 0) return errnoError("epoll_ctl mod");
  return {};
}

void EventLoop::unwatch(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::post(Task task) {
  {
    std::lock_guard lock(tasksMutex_);
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wakeup_.get(), &one, sizeof one);
}

void EventLoop::stop() {
  stopRequested_ = true;
  uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wakeup_.get(), &one, sizeof one);
}

void EventLoop::runPostedTasks() {
  std::vector<Task> ready;
  {
    std::lock_guard lock(tasksMutex_);
    ready.swap(tasks_);
  }
  for (auto& task : ready) task();
}

void EventLoop::runOnce(int timeoutMs) {
  epoll_event events[32];
  int count = ::epoll_wait(epoll_.get(), events, 32, timeoutMs);
  for (int i = 0; i < count; ++i) {
    int fd = events[i].data.fd;
    if (fd == wakeup_.get()) {
      uint64_t value;
      [[maybe_unused]] auto got = ::read(wakeup_.get(), &value, sizeof value);
      continue;
    }
    auto it = handlers_.find(fd);
    if (it == handlers_.end()) continue;
    auto handler = it->second;  // keeps the handler alive if it unwatches itself
    (*handler)(events[i].events);
  }
  runPostedTasks();
}

void EventLoop::run() {
  while (!stopRequested_.load()) runOnce(-1);
  runPostedTasks();
}

}  // namespace strata
