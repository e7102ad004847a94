// TapPacketPort: adapts a network::TapDevice to the PacketPort that VirtioNet
// consumes, so a guest NIC can be bridged straight onto a host TAP interface.
#pragma once

#include <memory>

#include "network/tap.h"
#include "virtio/packet_port.h"

namespace strata::virtio {

class TapPacketPort final : public PacketPort {
 public:
  explicit TapPacketPort(std::unique_ptr<network::TapDevice> tap) : tap_(std::move(tap)) {}

  void send(std::span<const uint8_t> frame) override { (void)tap_->send(frame); }  // TAP counts drops
  void setReceiveHandler(ReceiveHandler handler) override { tap_->setReceiveHandler(std::move(handler)); }
  void setReceiveEnabled(bool enabled) override { tap_->setReceiveEnabled(enabled); }

  network::TapDevice& tap() { return *tap_; }

 private:
  std::unique_ptr<network::TapDevice> tap_;
};

}  // namespace strata::virtio
