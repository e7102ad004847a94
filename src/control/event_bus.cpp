#include "control/event_bus.h"

#include <fmt/core.h>

namespace strata::control {

std::shared_ptr<EventBus::Subscriber> EventBus::subscribe(const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  if (subscribers_.size() >= kMaxSubscribers) return nullptr;
  auto subscriber = std::make_shared<Subscriber>(Subscriber{tenant, {}});
  subscribers_.push_back(subscriber);
  return subscriber;
}

void EventBus::unsubscribe(const std::shared_ptr<Subscriber>& subscriber) {
  std::lock_guard lock(mutex_);
  subscribers_.remove(subscriber);
}

void EventBus::publish(const std::string& tenant, const std::string& type, const nlohmann::json& data) {
  std::string event = fmt::format("event: {}\ndata: {}\n\n", type, data.dump());
  {
    std::lock_guard lock(mutex_);
    for (auto& subscriber : subscribers_) {
      if (subscriber->tenant && *subscriber->tenant != tenant) continue;
      if (subscriber->pending.size() >= kMaxPending) subscriber->pending.pop_front();
      subscriber->pending.push_back(event);
    }
  }
  published_.notify_all();
}

std::vector<std::string> EventBus::take(Subscriber& subscriber, std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  published_.wait_for(lock, limit, [&] { return !subscriber.pending.empty(); });
  std::vector<std::string> events(subscriber.pending.begin(), subscriber.pending.end());
  subscriber.pending.clear();
  return events;
}

}  // namespace strata::control
