// VirtioNet: the virtio network device (type 1) with one RX/TX queue pair over
// a PacketPort, with checksum offload both ways, TSO4/6 both ways and merged
// RX buffers. The virtio_net_hdr of a transmitted frame becomes its
// FrameOffload (validated: a bad one drops the frame); received frames get the
// offloads the driver negotiated passed through, the rest finished in software.
// Received frames wait in a bounded backlog while the guest has posted no RX
// buffers; when the backlog fills the port is paused, so the backend's own
// queue absorbs (or drops) the excess.
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

using network::FrameOffload;
using network::OffloadCaps;
using network::PacketPort;

namespace net {
inline constexpr unsigned kFeatureChecksum = 0;       // VIRTIO_NET_F_CSUM: the driver sends partial checksums
inline constexpr unsigned kFeatureGuestChecksum = 1;  // the driver takes partial checksums
inline constexpr unsigned kFeatureGuestTso4 = 7;
inline constexpr unsigned kFeatureGuestTso6 = 8;
inline constexpr unsigned kFeatureHostTso4 = 11;
inline constexpr unsigned kFeatureHostTso6 = 12;
inline constexpr unsigned kFeatureMergeRxBuffers = 15;
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
    uint64_t txDropped = 0;  // malformed or oversized frames, or offload headers that did not validate
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
  struct Received {
    std::vector<uint8_t> frame;
    FrameOffload offload;
  };
  enum class Delivery { Done, NoBuffers, Dropped };

  void onFrameFromPort(std::span<const uint8_t> frame, const FrameOffload& offload);
  void deliverBacklog();
  Delivery deliverInOneBuffer(const Received& received);
  Delivery deliverInMergedBuffers(const Received& received);
  void writeHeader(const DescriptorChain& chain, const FrameOffload& offload, uint16_t buffers);
  void transmit();
  Result<FrameOffload> transmitOffload(std::span<const uint8_t, network::kVirtioNetHeaderBytes> header,
                                       size_t frameBytes) const;

  PacketPort& port_;
  bool active_ = false;
  bool portPaused_ = false;
  uint64_t features_ = 0;
  OffloadCaps guestAccepts_;  // what the driver negotiated to receive
  std::deque<Received> backlog_;
  Counters counters_;
};

}  // namespace strata::virtio
