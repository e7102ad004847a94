#include "virtio/net.h"

#include <cstring>

#include <fmt/core.h>

#include "virtio/iovec_util.h"
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
  port_.setReceiveHandler([this](std::span<const uint8_t> frame) { onFrameFromPort(frame); });
}

VirtioNet::~VirtioNet() { port_.setReceiveHandler(nullptr); }

uint32_t VirtioNet::deviceId() const { return kDeviceIdNet; }

uint64_t VirtioNet::deviceFeatures() const {
  return featureBit(net::kFeatureMac) | featureBit(net::kFeatureStatus);
}

void VirtioNet::activate(uint64_t) { active_ = true; }

void VirtioNet::reset() {
  active_ = false;
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

void VirtioNet::onFrameFromPort(std::span<const uint8_t> frame) {
  if (!active_ || host().deviceFailed() || frame.size() > net::kMaxFrameBytes) {
    ++counters_.rxDropped;
    return;
  }
  if (backlog_.size() >= net::kBacklogFrames) {
    ++counters_.rxDropped;  // port ignored the pause: drop the newest
    return;
  }
  backlog_.emplace_back(frame.begin(), frame.end());
  deliverBacklog();
  if (backlog_.size() >= net::kBacklogFrames && !portPaused_) {
    portPaused_ = true;
    port_.setReceiveEnabled(false);
  }
}

void VirtioNet::deliverBacklog() {
  bool delivered = false;
  while (!backlog_.empty()) {
    auto chain = popChain(net::kReceiveQueue);
    if (!chain) break;
    const auto& frame = backlog_.front();
    if (chain->writableBytes < net::kHeaderBytes + frame.size()) {
      // Without MRG_RXBUF a frame must fit one buffer; keep the buffer for a smaller frame.
      host().queue(net::kReceiveQueue).undoPop();
      ++counters_.rxDropped;
      backlog_.pop_front();
      continue;
    }
    uint8_t header[net::kHeaderBytes] = {};
    uint16_t numBuffers = 1;  // required when MRG_RXBUF is not negotiated
    std::memcpy(header + 10, &numBuffers, 2);
    copyToIovecs(chain->writable, 0, header, sizeof header);
    copyToIovecs(chain->writable, sizeof header, frame.data(), frame.size());
    host().queue(net::kReceiveQueue).pushUsed(chain->head, static_cast<uint32_t>(sizeof header + frame.size()));
    backlog_.pop_front();
    ++counters_.rxFrames;
    delivered = true;
  }
  if (delivered) host().notifyUsed(net::kReceiveQueue);
  if (portPaused_ && backlog_.size() < net::kBacklogFrames / 2) {
    portPaused_ = false;
    port_.setReceiveEnabled(true);
  }
}

void VirtioNet::transmit() {
  bool completed = false;
  std::vector<uint8_t> frame;
  while (auto chain = popChain(net::kTransmitQueue)) {
    uint64_t bytes = chain->readableBytes;
    if (bytes < net::kHeaderBytes || bytes - net::kHeaderBytes > net::kMaxFrameBytes) {
      ++counters_.txDropped;
    } else {
      frame.resize(bytes - net::kHeaderBytes);
      copyFromIovecs(chain->readable, net::kHeaderBytes, frame.data(), frame.size());
      port_.send(frame);
      ++counters_.txFrames;
    }
    host().queue(net::kTransmitQueue).pushUsed(chain->head, 0);
    completed = true;
  }
  if (completed) host().notifyUsed(net::kTransmitQueue);
}

}  // namespace strata::virtio
