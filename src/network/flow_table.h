// FlowTable: the switch's data-plane rules (the SDN part). Each rule matches
// fields of a frame's FlowKey under a mask (in-port, MACs, VLAN, ethertype,
// IPv4/IPv6 prefixes, IP protocol, TCP/UDP ports) and carries a list of
// actions; the highest-priority matching rule wins (ties: the older rule).
// Lookups are a tuple space search (one hash probe per distinct mask, best
// tuples first, updated as rules come and go) behind an exact-match cache of
// recent keys that any change of the rules clears.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "network/ethernet.h"

namespace strata::network {

using PortId = uint32_t;

// The fields a rule can match, extracted once per frame. 64 bytes, compared
// as eight masked words, so a lookup is a short branch-light loop per rule.
struct FlowKey {
  uint32_t inPort = 0;
  uint16_t vlan = 0;       // the VLAN the frame was classified into
  uint16_t etherType = 0;  // after any 802.1Q tag
  uint8_t dstMac[6] = {};
  uint8_t srcMac[6] = {};
  uint8_t ipProto = 0;     // IPv4 protocol / IPv6 next header; 0 when not IP
  uint8_t reserved[3] = {};
  uint16_t l4Src = 0;      // TCP/UDP ports (host order); 0 otherwise
  uint16_t l4Dst = 0;
  uint8_t ipSrc[16] = {};  // IPv4 uses the first 4 bytes
  uint8_t ipDst[16] = {};
  uint8_t padding[4] = {};
};
static_assert(sizeof(FlowKey) == 64);

// Fills key from an Ethernet frame whose (inner) ethertype sits at etherTypeOffset (12, or 16 when tagged).
// Only IPv4 first fragments and IPv6 with TCP/UDP as the first next header yield ports.
void extractFlowKey(std::span<const uint8_t> frame, size_t etherTypeOffset, PortId inPort, uint16_t vlan,
                    FlowKey& key);

// What a rule matches: each field either wildcarded or set (IP addresses as prefixes).
struct FlowMatch {
  std::optional<PortId> inPort;
  std::optional<MacAddress> srcMac, dstMac;
  std::optional<MacAddress> srcMacMask, dstMacMask;  // bits that must equal (nullopt: all); only with the MAC
  std::optional<uint16_t> vlan;
  std::optional<uint16_t> etherType;
  struct Prefix {
    std::array<uint8_t, 16> address{};
    unsigned length = 0;  // bits
  };
  // IPv4 prefixes imply etherType 0x0800, IPv6 ones 0x86dd; the two families cannot mix.
  std::optional<Prefix> ipv4Src, ipv4Dst, ipv6Src, ipv6Dst;
  std::optional<uint8_t> ipProto;
  std::optional<uint16_t> l4Src, l4Dst;  // need ipProto 6 (TCP) or 17 (UDP)
};

struct FlowAction {
  enum class Kind : uint8_t {
    Output,     // to port `port`, tagged as that port's VLAN mode says (see Switch)
    Flood,      // to every other port that carries the frame's VLAN
    Normal,     // the learning switch's decision
    Drop,       // stop: nothing more is done with the frame
    SetVlan,    // later outputs carry VLAN `vlan`
    StripVlan,  // later outputs leave untagged
    Mirror,     // a copy of the frame exactly as received to port `port`
    AllPorts,   // to every other port, whatever VLANs it carries (OpenFlow's OFPP_ALL)
    Controller, // the frame as received to the OpenFlow controller, at most `maxLen` bytes of it
  };
  Kind kind = Kind::Drop;
  PortId port = 0;
  uint16_t vlan = 0;
  uint16_t maxLen = 0xffff;  // Controller only
};

struct FlowRule {
  uint64_t id = 0;  // assigned by the table
  uint16_t priority = 0;
  FlowMatch match;
  std::vector<FlowAction> actions;  // empty: drop
  uint64_t cookie = 0;              // the controller's own label (OpenFlow), 0 otherwise
  uint16_t idleTimeoutS = 0, hardTimeoutS = 0;  // seconds; 0: never expires
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t createdMs = 0, lastUsedMs = 0;  // the switch's clock; set by add() and by hits
};

class FlowTable {
 public:
  static constexpr size_t kMaxRules = 65536;  // bounds what a control client can make us hold

  // A match in the lookup's form: FlowKey-shaped mask and (already masked) value, as eight words.
  struct MaskedKey {
    std::array<uint64_t, 8> mask{};
    std::array<uint64_t, 8> value{};
    bool operator==(const MaskedKey&) const = default;
    // True when every frame this matches, `wider` matches too (OpenFlow's non-strict selection).
    bool within(const MaskedKey& wider) const;
    // True when some frame could match both (OpenFlow's overlap check).
    bool overlaps(const MaskedKey& other) const;
  };
  // Validates a match (ranges, prerequisites) and compiles it.
  static Result<MaskedKey> compile(const FlowMatch& match);

  // Validates the rule (ranges, prerequisites) and adds it; returns its id.
  Result<uint64_t> add(FlowRule rule);
  bool remove(uint64_t id);
  // Removes every rule for which pred(rule, its compiled match) holds; returns how many.
  size_t removeIf(const std::function<bool(const FlowRule&, const MaskedKey&)>& pred);
  // Removes rules whose hard or idle timeout has passed at nowMs; returns how many.
  size_t expire(uint64_t nowMs);
  void clear();
  bool empty() const { return rules_.empty(); }
  size_t size() const { return rules_.size(); }

  // The highest-priority rule matching key, or nullptr.
  FlowRule* lookup(const FlowKey& key);
  FlowRule* lookupUncached(const FlowKey& key);  // the search alone (what the cache remembers)
  const FlowRule* find(uint64_t id) const;
  // For changing a rule's actions, cookie or counters (never its match or priority).
  FlowRule* find(uint64_t id);
  // In lookup order (priority descending, then age); compiled(i) is rules()[i]'s match.
  const std::vector<FlowRule>& rules() const { return rules_; }
  const MaskedKey& compiled(size_t index) const { return compiled_[index]; }

 private:
  // One remembered key and its answer; direct-mapped by a hash of the key.
  struct CacheSlot {
    std::array<uint64_t, 8> key{};
    uint64_t generation = 0;  // valid only while equal to generation_
    int32_t rule = -1;        // index into rules_, -1: no rule matches
  };
  using Words = std::array<uint64_t, 8>;
  struct WordsHash {
    size_t operator()(const Words& words) const;
  };
  // The rules sharing one mask, by masked value. A rule's rank orders it as the lookup does
  // (priority descending, then id: the older first), so the lowest rank wins.
  struct Tuple {
    Words mask;
    std::set<uint64_t> ranks;  // of all its rules: *begin() is the best this tuple can offer
    std::unordered_map<Words, std::set<uint64_t>, WordsHash> byValue;
  };
  static uint64_t rankOf(const FlowRule& rule) { return uint64_t{0xffffu - rule.priority} << 48 | rule.id; }
  static constexpr size_t kCacheSlots = 4096;
  int32_t search(const Words& words) const;
  void indexAdd(const FlowRule& rule, const MaskedKey& compiled);
  void indexRemove(const FlowRule& rule, const MaskedKey& compiled);
  void sortTuples();

  std::vector<CacheSlot> cache_ = std::vector<CacheSlot>(kCacheSlots);
  // Tuple space search: one hash probe per distinct mask, kept up to date rule by rule.
  std::unordered_map<Words, Tuple, WordsHash> tuples_;  // by mask (nodes stay put: order_ points at them)
  std::vector<const Tuple*> order_;                     // by best rank
  uint64_t generation_ = 1;  // bumped by every change of the rules
  std::vector<FlowRule> rules_;
  std::vector<MaskedKey> compiled_;  // parallel to rules_, kept dense for the lookup loop
  uint64_t nextId_ = 1;
};

}  // namespace strata::network
