#include "network/flow_table.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <tuple>
#include <utility>

#include <fmt/core.h>

namespace strata::network {
namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;

std::array<uint64_t, 8> wordsOf(const FlowKey& key) {
  std::array<uint64_t, 8> words;
  std::memcpy(words.data(), &key, sizeof key);
  return words;
}

// Sets every bit of a field in mask and copies its value into value (both FlowKey-shaped).
void setField(FlowKey& mask, FlowKey& value, size_t offset, const void* bytes, size_t length) {
  std::memset(reinterpret_cast<uint8_t*>(&mask) + offset, 0xff, length);
  std::memcpy(reinterpret_cast<uint8_t*>(&value) + offset, bytes, length);
}

void setMasked(FlowKey& mask, FlowKey& value, size_t offset, const uint8_t* mac,
               const std::optional<MacAddress>& macMask) {
  setField(mask, value, offset, mac, 6);
  if (macMask) std::memcpy(reinterpret_cast<uint8_t*>(&mask) + offset, macMask->data(), 6);
}

void setPrefix(FlowKey& mask, FlowKey& value, size_t offset, const FlowMatch::Prefix& prefix, size_t addressBytes) {
  auto* maskBytes = reinterpret_cast<uint8_t*>(&mask) + offset;
  auto* valueBytes = reinterpret_cast<uint8_t*>(&value) + offset;
  for (size_t i = 0; i < addressBytes; ++i) {
    unsigned bitsHere = prefix.length > i * 8 ? std::min(8u, prefix.length - static_cast<unsigned>(i * 8)) : 0u;
    auto byteMask = static_cast<uint8_t>(bitsHere == 0 ? 0 : 0xff << (8 - bitsHere));
    maskBytes[i] = byteMask;
    valueBytes[i] = prefix.address[i] & byteMask;
  }
}

}  // namespace

void extractFlowKey(std::span<const uint8_t> frame, size_t etherTypeOffset, PortId inPort, uint16_t vlan,
                    FlowKey& key) {
  key = FlowKey{};
  key.inPort = inPort;
  key.vlan = vlan;
  std::memcpy(key.dstMac, frame.data(), 6);
  std::memcpy(key.srcMac, frame.data() + 6, 6);
  key.etherType = loadBe16(frame.data() + etherTypeOffset);
  const uint8_t* l3 = frame.data() + etherTypeOffset + 2;
  size_t l3Bytes = frame.size() - etherTypeOffset - 2;
  const uint8_t* l4 = nullptr;
  size_t l4Bytes = 0;
  if (key.etherType == kEtherTypeIpv4 && l3Bytes >= 20 && (l3[0] >> 4) == 4) {
    size_t headerBytes = (l3[0] & 0x0f) * 4u;
    key.ipProto = l3[9];
    std::memcpy(key.ipSrc, l3 + 12, 4);
    std::memcpy(key.ipDst, l3 + 16, 4);
    bool firstFragment = (loadBe16(l3 + 6) & 0x1fff) == 0;
    if (headerBytes >= 20 && firstFragment && l3Bytes >= headerBytes) {
      l4 = l3 + headerBytes;
      l4Bytes = l3Bytes - headerBytes;
    }
  } else if (key.etherType == kEtherTypeIpv6 && l3Bytes >= 40 && (l3[0] >> 4) == 6) {
    key.ipProto = l3[6];
    std::memcpy(key.ipSrc, l3 + 8, 16);
    std::memcpy(key.ipDst, l3 + 24, 16);
    l4 = l3 + 40;
    l4Bytes = l3Bytes - 40;
  }
  if (l4 && l4Bytes >= 4 && (key.ipProto == kProtoTcp || key.ipProto == kProtoUdp)) {
    key.l4Src = loadBe16(l4);
    key.l4Dst = loadBe16(l4 + 2);
  }
}

Result<FlowTable::MaskedKey> FlowTable::compile(const FlowMatch& match) {
  FlowKey mask, value;
  if (match.inPort) setField(mask, value, offsetof(FlowKey, inPort), &*match.inPort, 4);
  if (match.vlan) {
    if (*match.vlan < kMinVlan || *match.vlan > kMaxVlan)
      return Error{fmt::format("VLAN {} is outside {}-{}", *match.vlan, kMinVlan, kMaxVlan)};
    setField(mask, value, offsetof(FlowKey, vlan), &*match.vlan, 2);
  }
  if ((match.srcMacMask && !match.srcMac) || (match.dstMacMask && !match.dstMac))
    return Error{"a MAC mask needs the MAC address it masks"};
  if (match.srcMac) setMasked(mask, value, offsetof(FlowKey, srcMac), match.srcMac->data(), match.srcMacMask);
  if (match.dstMac) setMasked(mask, value, offsetof(FlowKey, dstMac), match.dstMac->data(), match.dstMacMask);

  bool v4 = match.ipv4Src || match.ipv4Dst, v6 = match.ipv6Src || match.ipv6Dst;
  if (v4 && v6) return Error{"a rule cannot match both IPv4 and IPv6 addresses"};
  std::optional<uint16_t> etherType = match.etherType;
  if (v4 || v6) {
    uint16_t implied = v4 ? kEtherTypeIpv4 : kEtherTypeIpv6;
    if (etherType && *etherType != implied)
      return Error{fmt::format("IP{} addresses need ethertype {:#06x}, not {:#06x}", v4 ? "v4" : "v6", implied,
                               *etherType)};
    etherType = implied;
  }
  if (match.ipProto && !etherType)
    return Error{"an IP protocol match needs the IPv4 or IPv6 ethertype (dl_type=0x0800 or 0x86dd, or ip/ipv6)"};
  if (match.ipProto && *etherType != kEtherTypeIpv4 && *etherType != kEtherTypeIpv6)
    return Error{"an IP protocol match needs the IPv4 or IPv6 ethertype"};
  if ((match.l4Src || match.l4Dst) && (!match.ipProto || (*match.ipProto != kProtoTcp && *match.ipProto != kProtoUdp)))
    return Error{"a TCP/UDP port match needs the protocol too (tcp, udp, tcp6, udp6, or nw_proto=6/17)"};
  if (etherType) setField(mask, value, offsetof(FlowKey, etherType), &*etherType, 2);
  if (match.ipProto) setField(mask, value, offsetof(FlowKey, ipProto), &*match.ipProto, 1);
  if (match.l4Src) setField(mask, value, offsetof(FlowKey, l4Src), &*match.l4Src, 2);
  if (match.l4Dst) setField(mask, value, offsetof(FlowKey, l4Dst), &*match.l4Dst, 2);
  for (auto [prefix, offset, bytes] : {std::tuple{&match.ipv4Src, offsetof(FlowKey, ipSrc), size_t{4}},
                                       {&match.ipv4Dst, offsetof(FlowKey, ipDst), size_t{4}},
                                       {&match.ipv6Src, offsetof(FlowKey, ipSrc), size_t{16}},
                                       {&match.ipv6Dst, offsetof(FlowKey, ipDst), size_t{16}}}) {
    if (!*prefix) continue;
    if ((*prefix)->length > bytes * 8)
      return Error{fmt::format("prefix length /{} is longer than the address", (*prefix)->length)};
    setPrefix(mask, value, offset, **prefix, bytes);
  }
  MaskedKey compiled{wordsOf(mask), wordsOf(value)};
  for (size_t i = 0; i < 8; ++i) compiled.value[i] &= compiled.mask[i];
  return compiled;
}

Result<uint64_t> FlowTable::add(FlowRule rule) {
  if (rules_.size() >= kMaxRules) return Error{fmt::format("the flow table is full ({} rules)", kMaxRules)};
  for (const auto& action : rule.actions) {
    if (action.kind == FlowAction::Kind::SetVlan && (action.vlan < kMinVlan || action.vlan > kMaxVlan))
      return Error{fmt::format("set_vlan:{} is outside {}-{}", action.vlan, kMinVlan, kMaxVlan)};
  }
  auto compiled = compile(rule.match);
  if (!compiled) return compiled.error();
  rule.id = nextId_++;
  rule.packets = rule.bytes = 0;
  rule.lastUsedMs = rule.createdMs;
  // After every rule of the same or higher priority: older rules win ties.
  auto position = std::upper_bound(rules_.begin(), rules_.end(), rule.priority,
                                   [](uint16_t priority, const FlowRule& r) { return priority > r.priority; });
  auto index = position - rules_.begin();
  uint64_t id = rule.id;
  indexAdd(rule, *compiled);
  rules_.insert(position, std::move(rule));
  compiled_.insert(compiled_.begin() + index, *compiled);
  ++generation_;
  return id;
}

bool FlowTable::remove(uint64_t id) {
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].id != id) continue;
    indexRemove(rules_[i], compiled_[i]);
    rules_.erase(rules_.begin() + static_cast<ptrdiff_t>(i));
    compiled_.erase(compiled_.begin() + static_cast<ptrdiff_t>(i));
    ++generation_;
    return true;
  }
  return false;
}

size_t FlowTable::removeIf(const std::function<bool(const FlowRule&, const MaskedKey&)>& pred) {
  size_t kept = 0;
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (pred(rules_[i], compiled_[i])) {
      indexRemove(rules_[i], compiled_[i]);
      continue;
    }
    if (kept != i) {
      rules_[kept] = std::move(rules_[i]);
      compiled_[kept] = compiled_[i];
    }
    ++kept;
  }
  size_t removed = rules_.size() - kept;
  rules_.resize(kept);
  compiled_.resize(kept);
  if (removed != 0) ++generation_;
  return removed;
}

size_t FlowTable::expire(uint64_t nowMs) {
  return removeIf([nowMs](const FlowRule& rule, const MaskedKey&) {
    return (rule.hardTimeoutS != 0 && nowMs >= rule.createdMs + rule.hardTimeoutS * 1000ull) ||
           (rule.idleTimeoutS != 0 && nowMs >= rule.lastUsedMs + rule.idleTimeoutS * 1000ull);
  });
}

bool FlowTable::MaskedKey::within(const MaskedKey& wider) const {
  for (size_t w = 0; w < 8; ++w)
    if ((mask[w] & wider.mask[w]) != wider.mask[w] || (value[w] & wider.mask[w]) != wider.value[w]) return false;
  return true;
}

bool FlowTable::MaskedKey::overlaps(const MaskedKey& other) const {
  for (size_t w = 0; w < 8; ++w)
    if ((value[w] ^ other.value[w]) & mask[w] & other.mask[w]) return false;
  return true;
}

void FlowTable::clear() {
  rules_.clear();
  compiled_.clear();
  tuples_.clear();
  order_.clear();
  ++generation_;
}

size_t FlowTable::WordsHash::operator()(const Words& words) const {
  uint64_t hash = 0;
  for (uint64_t word : words) {
    hash = (hash ^ word) * 0x9e3779b97f4a7c15ull;
    hash ^= hash >> 29;
  }
  return static_cast<size_t>(hash);
}

void FlowTable::indexAdd(const FlowRule& rule, const MaskedKey& compiled) {
  uint64_t rank = rankOf(rule);
  Tuple& tuple = tuples_.try_emplace(compiled.mask, Tuple{compiled.mask, {}, {}}).first->second;
  bool newTuple = tuple.ranks.empty();
  bool newBest = newTuple || rank < *tuple.ranks.begin();
  tuple.ranks.insert(rank);
  tuple.byValue[compiled.value].insert(rank);
  if (newTuple) order_.push_back(&tuple);
  if (newBest) sortTuples();
}

void FlowTable::indexRemove(const FlowRule& rule, const MaskedKey& compiled) {
  auto found = tuples_.find(compiled.mask);
  if (found == tuples_.end()) return;
  Tuple& tuple = found->second;
  uint64_t rank = rankOf(rule);
  bool wasBest = rank == *tuple.ranks.begin();
  tuple.ranks.erase(rank);
  if (auto value = tuple.byValue.find(compiled.value); value != tuple.byValue.end()) {
    value->second.erase(rank);
    if (value->second.empty()) tuple.byValue.erase(value);
  }
  if (tuple.ranks.empty()) {
    std::erase(order_, &tuple);
    tuples_.erase(found);
  } else if (wasBest) {
    sortTuples();
  }
}

void FlowTable::sortTuples() {
  std::sort(order_.begin(), order_.end(),
            [](const Tuple* a, const Tuple* b) { return *a->ranks.begin() < *b->ranks.begin(); });
}

int32_t FlowTable::search(const Words& words) const {
  uint64_t found = UINT64_MAX;
  for (const Tuple* tuple : order_) {
    if (*tuple->ranks.begin() > found) break;  // no rule of this tuple or later ones comes first
    Words masked;
    for (size_t w = 0; w < 8; ++w) masked[w] = words[w] & tuple->mask[w];
    auto hit = tuple->byValue.find(masked);
    if (hit != tuple->byValue.end() && *hit->second.begin() < found) found = *hit->second.begin();
  }
  if (found == UINT64_MAX) return -1;
  // rules_ is in rank order, so the winner's index is a binary search away.
  auto at = std::lower_bound(rules_.begin(), rules_.end(), found,
                             [](const FlowRule& rule, uint64_t rank) { return rankOf(rule) < rank; });
  return static_cast<int32_t>(at - rules_.begin());
}

FlowRule* FlowTable::lookupUncached(const FlowKey& key) {
  int32_t index = search(wordsOf(key));
  return index < 0 ? nullptr : &rules_[static_cast<size_t>(index)];
}

FlowRule* FlowTable::lookup(const FlowKey& key) {
  auto words = wordsOf(key);
  CacheSlot& slot = cache_[WordsHash{}(words) % kCacheSlots];
  if (slot.generation != generation_ || slot.key != words) {
    slot.key = words;
    slot.generation = generation_;
    slot.rule = search(words);
  }
  return slot.rule < 0 ? nullptr : &rules_[static_cast<size_t>(slot.rule)];
}

const FlowRule* FlowTable::find(uint64_t id) const {
  for (const auto& rule : rules_)
    if (rule.id == id) return &rule;
  return nullptr;
}

FlowRule* FlowTable::find(uint64_t id) { return const_cast<FlowRule*>(std::as_const(*this).find(id)); }

}  // namespace strata::network
