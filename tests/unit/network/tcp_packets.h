// TCP/IP test packets for the offload tests (network and virtio-net): frames
// as a Linux guest hands them to a NEEDS_CSUM/TSO device, their offload
// descriptors, and a receiver's checksum check.
#pragma once

#include <cstdint>
#include <vector>

#include "network/ethernet.h"
#include "network/offload.h"

namespace strata::network::testing {

constexpr size_t kIp = 14;

// An Ethernet + IPv4 (or IPv6) + TCP frame as a Linux guest hands it to a
// NEEDS_CSUM device: the TCP checksum field holds the pseudo-header sum only.
inline std::vector<uint8_t> tcpFrame(bool ipv6, size_t payloadBytes, uint8_t tcpFlags = 0x18) {
  size_t ipBytes = ipv6 ? 40 : 20;
  std::vector<uint8_t> f(kIp + ipBytes + 20 + payloadBytes, 0);
  for (int i = 0; i < 6; ++i) f[i] = static_cast<uint8_t>(0x52 + i), f[6 + i] = static_cast<uint8_t>(0x60 + i);
  storeBe16(f.data() + 12, ipv6 ? kEtherTypeIpv6 : kEtherTypeIpv4);
  uint8_t* ip = f.data() + kIp;
  size_t tcpLength = 20 + payloadBytes;
  uint32_t pseudo;
  if (ipv6) {
    ip[0] = 0x60;
    storeBe16(ip + 4, static_cast<uint16_t>(tcpLength));
    ip[6] = 6, ip[7] = 64;
    for (int i = 0; i < 16; ++i) {
      ip[8 + i] = static_cast<uint8_t>(0x20 + i);   // source
      ip[24 + i] = static_cast<uint8_t>(0x40 + i);  // destination
    }
    pseudo = checksumAdd(0, {ip + 8, 32});
  } else {
    ip[0] = 0x45;
    storeBe16(ip + 2, static_cast<uint16_t>(20 + tcpLength));
    storeBe16(ip + 4, 0x1234);
    storeBe16(ip + 6, 0x4000);  // DF
    ip[8] = 64, ip[9] = 6;
    ip[12] = 10, ip[15] = 1, ip[16] = 10, ip[19] = 2;
    storeBe16(ip + 10, static_cast<uint16_t>(~checksumFold(checksumAdd(0, {ip, 20}))));
    pseudo = checksumAdd(0, {ip + 12, 8});
  }
  uint8_t* tcp = ip + ipBytes;
  storeBe16(tcp, 40000), storeBe16(tcp + 2, 5001);
  tcp[4] = 0x10, tcp[5] = 0x20, tcp[6] = 0x30, tcp[7] = 0x40;  // seq 0x10203040
  tcp[12] = 5 << 4;
  tcp[13] = tcpFlags;
  storeBe16(tcp + 14, 64240);
  for (size_t i = 0; i < payloadBytes; ++i) tcp[20 + i] = static_cast<uint8_t>(i * 7 + i / 251);
  pseudo += 6 + static_cast<uint32_t>(tcpLength);
  storeBe16(tcp + 16, checksumFold(pseudo));  // partial: not complemented
  return f;
}

inline FrameOffload checksumOffload(bool ipv6) {
  FrameOffload o;
  o.needsChecksum = true;
  o.checksumStart = static_cast<uint16_t>(kIp + (ipv6 ? 40 : 20));
  o.checksumOffset = 16;
  return o;
}

inline FrameOffload tsoOffload(bool ipv6, uint16_t mss) {
  FrameOffload o = checksumOffload(ipv6);
  o.gso = ipv6 ? FrameOffload::Gso::Tcp6 : FrameOffload::Gso::Tcp4;
  o.segmentBytes = mss;
  o.headerBytes = static_cast<uint16_t>(o.checksumStart + 20);
  return o;
}

// A receiver's check: the ones' complement sum over pseudo-header and segment is 0xffff.
inline bool tcpChecksumVerifies(const std::vector<uint8_t>& f) {
  bool ipv6 = loadBe16(f.data() + 12) == kEtherTypeIpv6;
  const uint8_t* ip = f.data() + kIp;
  size_t tcpAt = kIp + (ipv6 ? 40 : 20), tcpLength = f.size() - tcpAt;
  uint32_t sum = ipv6 ? checksumAdd(0, {ip + 8, 32}) : checksumAdd(0, {ip + 12, 8});
  sum += 6 + static_cast<uint32_t>(tcpLength);
  return checksumFold(checksumAdd(sum, {f.data() + tcpAt, tcpLength})) == 0xffff;
}

}  // namespace strata::network::testing
