// PacketPort: one Ethernet frame endpoint driven by an EventLoop — what
// virtio-net consumes and what the virtual switch attaches (TAP interfaces,
// switch sockets, VXLAN tunnels, test doubles). Used on its loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace strata::network {

class PacketPort {
 public:
  using ReceiveHandler = std::function<void(std::span<const uint8_t> frame)>;
  virtual ~PacketPort() = default;
  // Sends one frame; a port that cannot take it drops it (and counts the drop).
  virtual void send(std::span<const uint8_t> frame) = 0;
  // Frames arriving from the outside are passed to handler (on the loop thread); nullptr stops.
  virtual void setReceiveHandler(ReceiveHandler handler) = 0;
  // Flow control: while disabled the port stops delivering (it leaves frames
  // queued in its source, e.g. the kernel's TAP queue, or drops them).
  virtual void setReceiveEnabled(bool enabled) = 0;
};

}  // namespace strata::network
