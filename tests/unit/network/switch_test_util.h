// Test doubles for the switch: a PacketPort that records what the switch sends
// it and injects frames as if they came from its wire, and a frame builder.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "network/ethernet.h"
#include "network/packet_port.h"

namespace strata::network::testing {

class RecordingPort : public PacketPort {
 public:
  void send(std::span<const uint8_t> frame, const FrameOffload& offload) override {
    sent.emplace_back(frame.begin(), frame.end());
    offloads.push_back(offload);
  }
  OffloadCaps acceptedOffloads() const override { return accepts; }
  void setReceiveHandler(ReceiveHandler handler) override { handler_ = std::move(handler); }
  void setReceiveEnabled(bool) override {}
  // A frame arriving on this port's wire; false when no switch is attached.
  bool inject(const std::vector<uint8_t>& frame, const FrameOffload& offload = {}) {
    if (!handler_) return false;
    handler_(frame, offload);
    return true;
  }
  std::vector<uint8_t> takeOne() {
    if (sent.empty()) return {};
    auto frame = sent.front();
    sent.erase(sent.begin());
    return frame;
  }

  std::vector<std::vector<uint8_t>> sent;
  std::vector<FrameOffload> offloads;  // of every frame sent, in order (clear() and takeOne() leave it)
  OffloadCaps accepts;                 // what the test lets this port take

 private:
  ReceiveHandler handler_;
};

inline MacAddress mac(uint8_t last) { return {0x52, 0x54, 0x00, 0x00, 0x00, last}; }
inline constexpr MacAddress kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct FrameSpec {
  MacAddress dst = kBroadcast;
  MacAddress src = mac(1);
  int vlan = -1;  // -1: untagged; otherwise the VID in an 802.1Q tag
  uint16_t priority = 0;
  uint16_t etherType = 0x88b5;  // local experimental: a plain payload
  std::vector<uint8_t> payload = std::vector<uint8_t>(46, 0xab);
};

inline std::vector<uint8_t> buildFrame(const FrameSpec& spec) {
  std::vector<uint8_t> frame(spec.dst.begin(), spec.dst.end());
  frame.insert(frame.end(), spec.src.begin(), spec.src.end());
  auto push16 = [&](uint16_t v) {
    frame.push_back(static_cast<uint8_t>(v >> 8));
    frame.push_back(static_cast<uint8_t>(v));
  };
  if (spec.vlan >= 0) {
    push16(kEtherTypeVlan);
    push16(static_cast<uint16_t>(spec.priority << 13 | spec.vlan));
  }
  push16(spec.etherType);
  frame.insert(frame.end(), spec.payload.begin(), spec.payload.end());
  return frame;
}

// An IPv4 packet (20-byte header) carrying the given protocol and, for TCP/UDP, ports.
inline std::vector<uint8_t> ipv4Payload(std::array<uint8_t, 4> src, std::array<uint8_t, 4> dst, uint8_t proto,
                                        uint16_t srcPort = 0, uint16_t dstPort = 0) {
  std::vector<uint8_t> ip(20 + 8, 0);
  ip[0] = 0x45;
  ip[3] = static_cast<uint8_t>(ip.size());
  ip[8] = 64;
  ip[9] = proto;
  std::copy(src.begin(), src.end(), ip.begin() + 12);
  std::copy(dst.begin(), dst.end(), ip.begin() + 16);
  storeBe16(ip.data() + 20, srcPort);
  storeBe16(ip.data() + 22, dstPort);
  return ip;
}

inline std::vector<uint8_t> ipv6Payload(std::array<uint8_t, 16> src, std::array<uint8_t, 16> dst, uint8_t proto,
                                        uint16_t srcPort = 0, uint16_t dstPort = 0) {
  std::vector<uint8_t> ip(40 + 8, 0);
  ip[0] = 0x60;
  ip[5] = 8;
  ip[6] = proto;
  ip[7] = 64;
  std::copy(src.begin(), src.end(), ip.begin() + 8);
  std::copy(dst.begin(), dst.end(), ip.begin() + 24);
  storeBe16(ip.data() + 40, srcPort);
  storeBe16(ip.data() + 42, dstPort);
  return ip;
}

}  // namespace strata::network::testing
