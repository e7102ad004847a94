#include "network/mac_table.h"

#include <algorithm>

namespace strata::network {
namespace {
// When full, sweep aged entries at most this often, so a flood of new
// addresses costs one sweep per interval rather than one per frame.
constexpr uint64_t kFullSweepIntervalMs = 1000;
}  // namespace

bool MacTable::learn(uint16_t vlan, const uint8_t* mac, PortId port, uint64_t nowMs) {
  uint64_t key = keyOf(vlan, mac);
  if (auto it = entries_.find(key); it != entries_.end()) {
    it->second = {port, nowMs};  // refreshed, or moved to another port
    return true;
  }
  if (entries_.size() >= limit_ && nowMs - lastFullSweepMs_ >= kFullSweepIntervalMs) {
    lastFullSweepMs_ = nowMs;
    expire(nowMs);
  }
  if (entries_.size() >= limit_) return false;
  entries_.emplace(key, Slot{port, nowMs});
  return true;
}

std::optional<PortId> MacTable::lookup(uint16_t vlan, const uint8_t* mac, uint64_t nowMs) {
  auto it = entries_.find(keyOf(vlan, mac));
  if (it == entries_.end()) return std::nullopt;
  if (aged(it->second, nowMs)) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.port;
}

void MacTable::expire(uint64_t nowMs) {
  std::erase_if(entries_, [&](const auto& item) { return aged(item.second, nowMs); });
}

void MacTable::forgetPort(PortId port) {
  std::erase_if(entries_, [&](const auto& item) { return item.second.port == port; });
}

std::vector<MacTable::Entry> MacTable::snapshot() const {
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (const auto& [key, slot] : entries_) {
    MacAddress mac;
    for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(key >> (8 * (5 - i)));
    out.push_back({static_cast<uint16_t>(key >> 48), mac, slot.port, slot.lastSeenMs});
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.vlan != b.vlan ? a.vlan < b.vlan : a.mac < b.mac;
  });
  return out;
}

}  // namespace strata::network
