// EventBus: state changes (VMs, operations) for the API's event stream (GET
// /events, Server-Sent Events). Each event belongs to one tenant; a subscriber
// gets only its tenant's (the admin's get all). A subscriber that does not read
// loses its oldest events beyond a bound instead of growing the daemon.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata::control {

class EventBus {
 public:
  struct Subscriber {
    std::optional<std::string> tenant;  // nullopt: the admin, sees everything
    std::deque<std::string> pending;    // formatted events not yet sent
  };
  static constexpr size_t kMaxSubscribers = 32, kMaxPending = 1024;

  // nullptr when kMaxSubscribers already listen.
  std::shared_ptr<Subscriber> subscribe(const std::optional<std::string>& tenant);
  void unsubscribe(const std::shared_ptr<Subscriber>& subscriber);
  // `type` is the SSE event name ("vm", "operation"); `data` one JSON object.
  void publish(const std::string& tenant, const std::string& type, const nlohmann::json& data);
  // The subscriber's events, waiting up to `limit` for one (none when it passes).
  std::vector<std::string> take(Subscriber& subscriber, std::chrono::milliseconds limit);

 private:
  std::mutex mutex_;
  std::condition_variable published_;
  std::list<std::shared_ptr<Subscriber>> subscribers_;
};

}  // namespace strata::control
