#include "network/counting_port.h"

namespace strata::network {

PortTraffic TrafficCounters::read() const {
  return {rxFrames.load(std::memory_order_relaxed), rxBytes.load(std::memory_order_relaxed),
          txFrames.load(std::memory_order_relaxed), txBytes.load(std::memory_order_relaxed)};
}

void CountingPort::send(std::span<const uint8_t> frame, const FrameOffload& offload) {
  counters_.txFrames.fetch_add(1, std::memory_order_relaxed);
  counters_.txBytes.fetch_add(frame.size(), std::memory_order_relaxed);
  inner_->send(frame, offload);
}

void CountingPort::setReceiveHandler(ReceiveHandler handler) {
  if (!handler) return inner_->setReceiveHandler(nullptr);
  inner_->setReceiveHandler([this, handler = std::move(handler)](std::span<const uint8_t> frame,
                                                                 const FrameOffload& offload) {
    counters_.rxFrames.fetch_add(1, std::memory_order_relaxed);
    counters_.rxBytes.fetch_add(frame.size(), std::memory_order_relaxed);
    handler(frame, offload);
  });
}

}  // namespace strata::network
