// VirtioNet: the virtio network device (type 1) with one RX/TX queue pair over
// a PacketPort. No offloads: the virtio_net_hdr is stripped on transmit and
// written as "plain frame" on receive. Received frames wait in a bounded
// backlog while the guest has posted no RX buffers; when the backlog fills the
// port is paused, so the backend's own queue absorbs (or drops) the excess.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

#include "network/ethernet.h"
#include "network/packet_port.h"
#include "virtio/virtio_device.h"

namespace strata::virtio {

using network::PacketPort;

namespace net {
inline constexpr unsigned kFeatureMac = 5;
inline constexpr unsigned kFeatureStatus = 16;
inline constexpr uint16_t kStatusLinkUp = 1;
inline constexpr unsigned kReceiveQueue = 0;
inline constexpr unsigned kTransmitQueue = 1;
// struct virtio_net_hdr as laid out with VERSION_1 (num_buffers always present).
inline constexpr size_t kHeaderBytes = 12;
inline constexpr size_t kMaxFrameBytes = 65535;
inline constexpr size_t kBacklogFrames = 256;

using network::MacAddress;
// Parses "52:54:00:12:34:56" (also with '-'); rejects multicast addresses.
Result<MacAddress> parseMacAddress(std::string_view text);
// A locally administered unicast address for the index-th NIC of a VM (52:54:00:12:34:56+index).
MacAddress defaultMacAddress(unsigned index);
}  // namespace net

class VirtioNet final : public VirtioDevice {
 public:
  struct Counters {
    uint64_t txFrames = 0;
    uint64_t txDropped = 0;  // malformed or oversized frames from the guest
    uint64_t rxFrames = 0;
    uint64_t rxDropped = 0;  // frames that did not fit a guest buffer, or arrived while inactive
  };

  // port must outlive the device. Frames are only exchanged while the driver has the device active.
  VirtioNet(PacketPort& port, std::array<uint8_t, 6> mac);
  ~VirtioNet() override;

  uint32_t deviceId() const override;
  uint64_t deviceFeatures() const override;
  unsigned queueCount() const override { return 2; }
  void activate(uint64_t features) override;
  void onQueueNotify(unsigned queue) override;
  void reset() override;

  const Counters& counters() const { return counters_; }

 private:
  void onFrameFromPort(std::span<const uint8_t> frame);
  void deliverBacklog();
  void transmit();

  PacketPort& port_;
  bool active_ = false;
  bool portPaused_ = false;
  std::deque<std::vector<uint8_t>> backlog_;
  Counters counters_;
};

}  // namespace strata::virtio
