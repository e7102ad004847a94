// Ethernet and 802.1Q wire constants and helpers shared by the switch, its
// flow table and its ports: MAC addresses (parse/format), big-endian field
// access, and the VLAN id range. Pure functions, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/result.h"

namespace strata::network {

using MacAddress = std::array<uint8_t, 6>;

inline constexpr size_t kEthernetHeaderBytes = 14;  // dst, src, ethertype
inline constexpr size_t kVlanTagBytes = 4;          // TPID 0x8100 + TCI
inline constexpr uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad S-tag (not supported: dropped)
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kMinVlan = 1;     // 0 means "priority tag only"
inline constexpr uint16_t kMaxVlan = 4094;  // 4095 is reserved

inline uint16_t loadBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline void storeBe16(uint8_t* p, uint16_t value) {
  p[0] = static_cast<uint8_t>(value >> 8);
  p[1] = static_cast<uint8_t>(value);
}

inline bool isMulticast(const uint8_t* mac) { return (mac[0] & 1) != 0; }  // includes broadcast
inline MacAddress macAt(const uint8_t* p) {
  MacAddress mac;
  std::memcpy(mac.data(), p, mac.size());
  return mac;
}
// The 48 address bits as an integer (for hashing and table keys).
inline uint64_t macBits(const uint8_t* p) {
  uint64_t bits = 0;
  for (int i = 0; i < 6; ++i) bits = bits << 8 | p[i];
  return bits;
}

// "52:54:00:12:34:56" (also with '-'); any address, unicast or group.
Result<MacAddress> parseMac(std::string_view text);
std::string formatMac(const MacAddress& mac);

}  // namespace strata::network
