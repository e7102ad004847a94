#include "virtio/net.h"

#include <cstring>

#include <fmt/core.h>

#include "virtio/iovec_util.h"
#include "virtio/virtqueue.h"
#include "virtio/virtio_spec.h"

namespace strata::virtio {

namespace net {

Result<MacAddress> parseMacAddress(std::string_view text) {
  auto mac = network::parseMac(text);
  if (!mac) return mac.error();
  if ((*mac)[0] & 1) return Error{fmt::format("MAC address {} is multicast; a NIC needs a unicast address", text)};
  return *mac;
}

MacAddress defaultMacAddress(unsigned index) {
  return {0x52, 0x54, 0x00, 0x12, 0x34, static_cast<uint8_t>(0x56 + index)};
}

}  // namespace net

VirtioNet::VirtioNet(PacketPort& port, std::array<uint8_t, 6> mac) : port_(port) {
  // struct virtio_net_config: mac[6], status, max_virtqueue_pairs.
  std::vector<uint8_t> config(10, 0);
  std::memcpy(config.data(), mac.data(), mac.size());
  uint16_t status = net::kStatusLinkUp;
  std::memcpy(config.data() + 6, &status, 2);
  uint16_t pairs = 1;
  std::memcpy(config.data() + 8, &pairs, 2);
  setConfigSpace(std::move(config));
  port_.setReceiveHandler(
      [this](std::span<const uint8_t> frame, const FrameOffload& offload) { onFrameFromPort(frame, offload); });
}

// The port outlives this device (a reboot binds the next boot's device to it): leave it receiving.
VirtioNet::~VirtioNet() {
  port_.setReceiveHandler(nullptr);
  if (portPaused_) port_.setReceiveEnabled(true);
}

uint32_t VirtioNet::deviceId() const { return kDeviceIdNet; }

// Offered whatever the port is: offloads it cannot take are finished in software on the way out.
uint64_t VirtioNet::deviceFeatures() const {
  return featureBit(net::kFeatureMac) | featureBit(net::kFeatureStatus) | featureBit(net::kFeatureChecksum) |
         featureBit(net::kFeatureGuestChecksum) | featureBit(net::kFeatureGuestTso4) |
         featureBit(net::kFeatureGuestTso6) | featureBit(net::kFeatureHostTso4) | featureBit(net::kFeatureHostTso6) |
         featureBit(net::kFeatureMergeRxBuffers);
}

void VirtioNet::activate(uint64_t features) {
  features_ = features;
  auto has = [features](unsigned bit) { return (features & featureBit(bit)) != 0; };
  // GUEST_TSO without GUEST_CSUM is not a valid combination (virtio 1.2, 5.1.3.1): take neither.
  bool checksum = has(net::kFeatureGuestChecksum);
  guestAccepts_ = {checksum, checksum && has(net::kFeatureGuestTso4), checksum && has(net::kFeatureGuestTso6)};
  active_ = true;
}

void VirtioNet::reset() {
  active_ = false;
  features_ = 0;
  guestAccepts_ = {};
  backlog_.clear();
  if (portPaused_) {
    portPaused_ = false;
    port_.setReceiveEnabled(true);
  }
}

void VirtioNet::onQueueNotify(unsigned queue) {
  if (queue == net::kReceiveQueue) deliverBacklog();
  else if (queue == net::kTransmitQueue) transmit();
}

void VirtioNet::onFrameFromPort(std::span<const uint8_t> frame, const FrameOffload& offload) {
  if (!active_ || host().deviceFailed() || frame.size() > net::kMaxFrameBytes) {
    ++counters_.rxDropped;
    return;
  }
  // A 64 KiB segment the driver cannot take arrives as many frames; each needs backlog room.
  auto queued = network::finishOffloads(frame, offload, guestAccepts_,
                                        [this](std::span<const uint8_t> out, const FrameOffload& done) {
                                          if (backlog_.size() >= net::kBacklogFrames) {
                                            ++counters_.rxDropped;  // port ignored the pause: drop the newest
                                            return;
                                          }
                                          backlog_.push_back({{out.begin(), out.end()}, done});
                                        });
  if (!queued) ++counters_.rxDropped;
  deliverBacklog();
  if (backlog_.size() >= net::kBacklogFrames && !portPaused_) {
    portPaused_ = true;
    port_.setReceiveEnabled(false);
  }
}

void VirtioNet::deliverBacklog() {
  bool delivered = false;
  const bool merged = (features_ & featureBit(net::kFeatureMergeRxBuffers)) != 0;
  while (!backlog_.empty()) {
    Delivery result = merged ? deliverInMergedBuffers(backlog_.front()) : deliverInOneBuffer(backlog_.front());
    if (result == Delivery::NoBuffers) break;
    if (result == Delivery::Done) {
      ++counters_.rxFrames;
      delivered = true;
    } else {
      ++counters_.rxDropped;
    }
    backlog_.pop_front();
  }
  if (delivered) host().notifyUsed(net::kReceiveQueue);
  if (portPaused_ && backlog_.size() < net::kBacklogFrames / 2) {
    portPaused_ = false;
    port_.setReceiveEnabled(true);
  }
}

// struct virtio_net_hdr with num_buffers, at the start of the frame's first buffer.
void VirtioNet::writeHeader(const DescriptorChain& chain, const FrameOffload& offload, uint16_t buffers) {
  // Without GUEST_CSUM the flags must be zero (virtio 1.2, 5.1.6.4.1): no DATA_VALID either.
  FrameOffload shown = offload;
  shown.checksumValid = shown.checksumValid && guestAccepts_.checksum;
  uint8_t header[net::kHeaderBytes];
  network::encodeVirtioNetHeader(shown, std::span<uint8_t, network::kVirtioNetHeaderBytes>(header, 10));
  std::memcpy(header + network::kVirtioNetHeaderBytes, &buffers, 2);
  copyToIovecs(chain.writable, 0, header, sizeof header);
}

VirtioNet::Delivery VirtioNet::deliverInOneBuffer(const Received& received) {
  auto chain = popChain(net::kReceiveQueue);
  if (!chain) return Delivery::NoBuffers;
  const auto& frame = received.frame;
  if (chain->writableBytes < net::kHeaderBytes + frame.size()) {
    // Without MRG_RXBUF a frame must fit one buffer; keep the buffer for a smaller frame.
    host().queue(net::kReceiveQueue).undoPop();
    return Delivery::Dropped;
  }
  writeHeader(*chain, received.offload, 1);
  copyToIovecs(chain->writable, net::kHeaderBytes, frame.data(), frame.size());
  host().queue(net::kReceiveQueue).pushUsed(chain->head, static_cast<uint32_t>(net::kHeaderBytes + frame.size()));
  return Delivery::Done;
}

// MRG_RXBUF: the frame fills as many posted buffers as it needs; all are taken or none.
VirtioNet::Delivery VirtioNet::deliverInMergedBuffers(const Received& received) {
  VirtQueue& queue = host().queue(net::kReceiveQueue);
  const auto& frame = received.frame;
  const uint64_t needed = net::kHeaderBytes + frame.size();
  // More buffers than one run may pop can never be gathered: such a frame is dropped, not waited for.
  const size_t maxBuffers = std::min<size_t>(kChainBudgetPerRun, queue.size());
  std::vector<DescriptorChain> chains;
  uint64_t room = 0;
  auto putBack = [&] {
    for (auto it = chains.rbegin(); it != chains.rend(); ++it) queue.undoPop(it->head);
  };
  while (room < needed) {
    if (chains.size() == maxBuffers) {
      putBack();
      return Delivery::Dropped;
    }
    auto chain = popChain(net::kReceiveQueue);
    if (!chain) {
      putBack();
      return Delivery::NoBuffers;
    }
    room += chain->writableBytes;
    chains.push_back(std::move(*chain));
  }
  if (chains.front().writableBytes < net::kHeaderBytes) {
    putBack();
    return Delivery::Dropped;
  }
  writeHeader(chains.front(), received.offload, static_cast<uint16_t>(chains.size()));
  size_t copied = 0;
  for (size_t i = 0; i < chains.size(); ++i) {
    uint64_t at = i == 0 ? net::kHeaderBytes : 0;
    size_t take = static_cast<size_t>(std::min<uint64_t>(chains[i].writableBytes - at, frame.size() - copied));
    copyToIovecs(chains[i].writable, at, frame.data() + copied, take);
    copied += take;
    queue.pushUsed(chains[i].head, static_cast<uint32_t>(at + take));
  }
  return Delivery::Done;
}

// The driver's header, checked against what it negotiated; DATA_VALID means nothing on transmit.
Result<FrameOffload> VirtioNet::transmitOffload(std::span<const uint8_t, network::kVirtioNetHeaderBytes> header,
                                                size_t frameBytes) const {
  auto offload = network::decodeVirtioNetHeader(header, frameBytes);
  if (!offload) return offload.error();
  offload->checksumValid = false;
  auto has = [this](unsigned bit) { return (features_ & featureBit(bit)) != 0; };
  OffloadCaps negotiated{has(net::kFeatureChecksum), has(net::kFeatureHostTso4), has(net::kFeatureHostTso6)};
  if (!negotiated.accepts(*offload)) return Error{"offload the driver did not negotiate"};
  return offload;
}

void VirtioNet::transmit() {
  bool completed = false;
  std::vector<uint8_t> frame;
  while (auto chain = popChain(net::kTransmitQueue)) {
    uint64_t bytes = chain->readableBytes;
    if (bytes < net::kHeaderBytes || bytes - net::kHeaderBytes > net::kMaxFrameBytes) {
      ++counters_.txDropped;
    } else {
      uint8_t header[network::kVirtioNetHeaderBytes];
      copyFromIovecs(chain->readable, 0, header, sizeof header);
      frame.resize(bytes - net::kHeaderBytes);
      copyFromIovecs(chain->readable, net::kHeaderBytes, frame.data(), frame.size());
      auto offload = transmitOffload(header, frame.size());
      if (offload && network::sendFinished(port_, frame, *offload)) ++counters_.txFrames;
      else ++counters_.txDropped;
    }
    host().queue(net::kTransmitQueue).pushUsed(chain->head, 0);
    completed = true;
  }
  if (completed) host().notifyUsed(net::kTransmitQueue);
}

}  // namespace strata::virtio
