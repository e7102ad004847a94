// PacketPort: one Ethernet frame endpoint driven by an EventLoop — what
// virtio-net consumes and what the virtual switch attaches (TAP interfaces,
// switch sockets, VXLAN tunnels, test doubles). Used on its loop thread only.
// A frame travels with its FrameOffload (checksum/segmentation still to do).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "network/offload.h"

namespace strata::network {

class PacketPort {
 public:
  using ReceiveHandler = std::function<void(std::span<const uint8_t> frame, const FrameOffload& offload)>;
  virtual ~PacketPort() = default;
  // Sends one frame; a port that cannot take it drops it (and counts the drop).
  // Callers pass only offloads acceptedOffloads() allows (finishOffloads does the rest).
  virtual void send(std::span<const uint8_t> frame, const FrameOffload& offload) = 0;
  // Frames arriving from the outside are passed to handler (on the loop thread); nullptr stops.
  virtual void setReceiveHandler(ReceiveHandler handler) = 0;
  // Flow control: while disabled the port stops delivering (it leaves frames
  // queued in its source, e.g. the kernel's TAP queue, or drops them).
  virtual void setReceiveEnabled(bool enabled) = 0;
  // What the far side can finish itself; the default is plain, complete frames only.
  virtual OffloadCaps acceptedOffloads() const { return {}; }
};

// Sends frame through port, finishing in software the offloads the port does not take.
// Error: the offload was malformed and nothing was sent.
Result<void> sendFinished(PacketPort& port, std::span<const uint8_t> frame, const FrameOffload& offload);

}  // namespace strata::network
