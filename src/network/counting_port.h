// CountingPort: a PacketPort that passes everything to the port it wraps and
// counts the frames and bytes each way (Ethernet headers included, a frame
// with segmentation offload counted once at its full length), from the side
// of whoever sends through it: a VM's NIC meters its traffic with one. The
// counters belong to the caller (they may outlive the port) and are read from
// any thread; the port itself is used on the loop thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "network/packet_port.h"

namespace strata::network {

struct PortTraffic {
  uint64_t rxFrames = 0, rxBytes = 0;  // frames the wrapped port delivered
  uint64_t txFrames = 0, txBytes = 0;  // frames sent through it
};

struct TrafficCounters {
  std::atomic<uint64_t> rxFrames{0}, rxBytes{0}, txFrames{0}, txBytes{0};
  PortTraffic read() const;
};

class CountingPort final : public PacketPort {
 public:
  CountingPort(std::unique_ptr<PacketPort> inner, TrafficCounters& counters)
      : inner_(std::move(inner)), counters_(counters) {}

  void send(std::span<const uint8_t> frame, const FrameOffload& offload) override;
  void setReceiveHandler(ReceiveHandler handler) override;
  void setReceiveEnabled(bool enabled) override { inner_->setReceiveEnabled(enabled); }
  OffloadCaps acceptedOffloads() const override { return inner_->acceptedOffloads(); }

 private:
  std::unique_ptr<PacketPort> inner_;
  TrafficCounters& counters_;
};

}  // namespace strata::network
