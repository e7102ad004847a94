// MacTable: the learning switch's forwarding database — which port a MAC
// address was last seen on, per VLAN, with aging and a size limit (a flood of
// forged source addresses fills it, then stops being learned, never grows it).
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "network/ethernet.h"
#include "network/flow_table.h"

namespace strata::network {

class MacTable {
 public:
  struct Entry {
    uint16_t vlan;
    MacAddress mac;
    PortId port;
    uint64_t lastSeenMs;
  };

  MacTable(size_t limit, uint64_t agingMs) : limit_(limit), agingMs_(agingMs) { entries_.reserve(limit); }

  // Records that mac (unicast) was seen on port in vlan at nowMs. False when the table was full.
  bool learn(uint16_t vlan, const uint8_t* mac, PortId port, uint64_t nowMs);
  // The port mac was last seen on in vlan, unless that was longer ago than the aging time.
  std::optional<PortId> lookup(uint16_t vlan, const uint8_t* mac, uint64_t nowMs);
  // Drops every entry older than the aging time.
  void expire(uint64_t nowMs);
  // Forgets everything learned on port (it went away or changed VLANs).
  void forgetPort(PortId port);

  size_t size() const { return entries_.size(); }
  size_t limit() const { return limit_; }
  std::vector<Entry> snapshot() const;

 private:
  struct Slot {
    PortId port;
    uint64_t lastSeenMs;
  };
  static uint64_t keyOf(uint16_t vlan, const uint8_t* mac) { return uint64_t{vlan} << 48 | macBits(mac); }
  bool aged(const Slot& slot, uint64_t nowMs) const { return nowMs - slot.lastSeenMs > agingMs_; }

  size_t limit_;
  uint64_t agingMs_;
  uint64_t lastFullSweepMs_ = 0;
  std::unordered_map<uint64_t, Slot> entries_;
};

}  // namespace strata::network
