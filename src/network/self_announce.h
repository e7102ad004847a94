// The frame a VM's NIC sends after a live migration so that switches and
// peers relearn where its MAC address now lives: a broadcast RARP request from
// that address, as QEMU's self-announce sends (the host does not know the
// guest's IP address, so it cannot send an ARP reply for it).
#pragma once

#include <cstdint>
#include <vector>

#include "network/ethernet.h"

namespace strata::network {

inline constexpr uint16_t kEtherTypeRarp = 0x8035;

// 60 bytes: the Ethernet minimum, padding included.
std::vector<uint8_t> selfAnnounceFrame(const MacAddress& mac);

}  // namespace strata::network
