// Flow rules: matching on every field, priorities, actions through the switch,
// per-rule counters, and the text syntax of `strata switch flow add`.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "network/flow_spec.h"
#include "network/switch.h"
#include "switch_test_util.h"

namespace strata::network::testing {
namespace {

constexpr std::array<uint8_t, 4> kIpA{10, 0, 0, 1}, kIpB{10, 0, 0, 2}, kIpOther{192, 168, 1, 9};

std::vector<uint8_t> ipv4Frame(std::array<uint8_t, 4> src, std::array<uint8_t, 4> dst, uint8_t proto,
                               uint16_t srcPort = 0, uint16_t dstPort = 0, int vlan = -1) {
  return buildFrame({.dst = mac(2), .src = mac(1), .vlan = vlan, .etherType = kEtherTypeIpv4,
                     .payload = ipv4Payload(src, dst, proto, srcPort, dstPort)});
}

FlowKey keyOf(const std::vector<uint8_t>& frame, PortId in = 1, uint16_t vlan = 1) {
  FlowKey key;
  extractFlowKey(frame, loadBe16(frame.data() + 12) == kEtherTypeVlan ? 16 : 12, in, vlan, key);
  return key;
}

PortResolver numbersOnly() {
  return [](std::string_view text) -> std::optional<PortId> {
    PortId id = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return std::nullopt;
      id = id * 10 + static_cast<PortId>(c - '0');
    }
    return text.empty() ? std::nullopt : std::optional<PortId>(id);
  };
}

uint64_t addRule(FlowTable& table, const std::string& text) {
  auto rule = parseFlowRule(text, numbersOnly());
  EXPECT_TRUE(rule.ok()) << text << ": " << (rule.ok() ? "" : rule.error().message);
  if (!rule.ok()) return 0;
  auto id = table.add(*rule);
  EXPECT_TRUE(id.ok()) << text << ": " << (id.ok() ? "" : id.error().message);
  return id.ok() ? *id : 0;
}

TEST(FlowKey, ExtractsIpv4AndPorts) {
  auto key = keyOf(ipv4Frame(kIpA, kIpB, 6, 1234, 22, 10), 3, 10);
  EXPECT_EQ(key.inPort, 3u);
  EXPECT_EQ(key.vlan, 10);
  EXPECT_EQ(key.etherType, kEtherTypeIpv4);
  EXPECT_EQ(key.ipProto, 6);
  EXPECT_EQ(key.l4Src, 1234);
  EXPECT_EQ(key.l4Dst, 22);
  EXPECT_EQ(key.ipSrc[3], 1);
  EXPECT_EQ(key.ipDst[3], 2);
}

TEST(FlowKey, NonFirstFragmentAndTruncatedHeadersCarryNoPorts) {
  auto fragment = ipv4Frame(kIpA, kIpB, 17, 53, 53);
  fragment[14 + 7] = 0x10;  // fragment offset != 0
  EXPECT_EQ(keyOf(fragment).l4Dst, 0);
  auto truncated = ipv4Frame(kIpA, kIpB, 17, 53, 53);
  truncated.resize(14 + 20 + 2);  // ports cut off
  EXPECT_EQ(keyOf(truncated).l4Src, 0);
  auto shortIp = buildFrame({.etherType = kEtherTypeIpv4, .payload = {0x45, 0, 0}});
  EXPECT_EQ(keyOf(shortIp).ipProto, 0) << "an IPv4 header shorter than 20 bytes is not parsed";
}

TEST(FlowTable, MatchesEachField) {
  struct Case {
    const char* rule;
    std::vector<uint8_t> hit, miss;
  };
  std::array<uint8_t, 16> v6a{0x20, 0x01, 0x0d, 0xb8}, v6b{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1}, v6c{0xfe, 0x80};
  v6a[15] = 1;
  Case cases[] = {
      {"dl_src=52:54:00:00:00:01,actions=drop", buildFrame({.src = mac(1)}), buildFrame({.src = mac(7)})},
      {"dl_dst=52:54:00:00:00:02,actions=drop", buildFrame({.dst = mac(2)}), buildFrame({.dst = mac(3)})},
      {"dl_type=0x0806,actions=drop", buildFrame({.etherType = kEtherTypeArp}), buildFrame({})},
      {"nw_src=10.0.0.0/24,actions=drop", ipv4Frame(kIpA, kIpB, 1), ipv4Frame(kIpOther, kIpB, 1)},
      {"nw_dst=10.0.0.2,actions=drop", ipv4Frame(kIpA, kIpB, 1), ipv4Frame(kIpB, kIpA, 1)},
      {"icmp,actions=drop", ipv4Frame(kIpA, kIpB, 1), ipv4Frame(kIpA, kIpB, 6, 1, 2)},
      {"tcp,tp_dst=22,actions=drop", ipv4Frame(kIpA, kIpB, 6, 999, 22), ipv4Frame(kIpA, kIpB, 17, 999, 22)},
      {"udp,tp_src=53,actions=drop", ipv4Frame(kIpA, kIpB, 17, 53, 9), ipv4Frame(kIpA, kIpB, 17, 54, 9)},
      {"ipv6_src=2001:db8::/32,actions=drop",
       buildFrame({.etherType = kEtherTypeIpv6, .payload = ipv6Payload(v6a, v6c, 58)}),
       buildFrame({.etherType = kEtherTypeIpv6, .payload = ipv6Payload(v6c, v6a, 58)})},
      {"tcp6,ipv6_dst=2001:db8:0:1::/64,tp_dst=80,actions=drop",
       buildFrame({.etherType = kEtherTypeIpv6, .payload = ipv6Payload(v6c, v6b, 6, 1000, 80)}),
       buildFrame({.etherType = kEtherTypeIpv6, .payload = ipv6Payload(v6c, v6a, 6, 1000, 80)})},
  };
  for (const auto& c : cases) {
    FlowTable table;
    addRule(table, c.rule);
    EXPECT_NE(table.lookup(keyOf(c.hit)), nullptr) << c.rule << " should match";
    EXPECT_EQ(table.lookup(keyOf(c.miss)), nullptr) << c.rule << " should not match";
  }
  FlowTable table;
  addRule(table, "in_port=2,dl_vlan=10,actions=drop");
  auto frame = buildFrame({});
  EXPECT_NE(table.lookup(keyOf(frame, 2, 10)), nullptr);
  EXPECT_EQ(table.lookup(keyOf(frame, 1, 10)), nullptr);
  EXPECT_EQ(table.lookup(keyOf(frame, 2, 20)), nullptr);
}

TEST(FlowTable, IpPrefixDoesNotMatchOtherFamiliesOrArp) {
  FlowTable table;
  addRule(table, "nw_src=0.0.0.0/0,actions=drop");  // implies IPv4
  EXPECT_EQ(table.lookup(keyOf(buildFrame({.etherType = kEtherTypeArp}))), nullptr);
  EXPECT_NE(table.lookup(keyOf(ipv4Frame(kIpA, kIpB, 1))), nullptr);
}

TEST(FlowTable, HighestPriorityWinsAndTiesGoToTheOlderRule) {
  FlowTable table;
  uint64_t low = addRule(table, "priority=10,actions=drop");
  uint64_t high = addRule(table, "priority=100,icmp,actions=flood");
  uint64_t tie = addRule(table, "priority=100,ip,actions=normal");
  auto icmp = keyOf(ipv4Frame(kIpA, kIpB, 1));
  auto tcp = keyOf(ipv4Frame(kIpA, kIpB, 6, 1, 2));
  auto arp = keyOf(buildFrame({.etherType = kEtherTypeArp}));
  EXPECT_EQ(table.lookup(icmp)->id, high);
  EXPECT_EQ(table.lookup(tcp)->id, tie);
  EXPECT_EQ(table.lookup(arp)->id, low);
  ASSERT_TRUE(table.remove(high));
  EXPECT_EQ(table.lookup(icmp)->id, tie);
  EXPECT_FALSE(table.remove(high));
  EXPECT_EQ(table.size(), 2u);
}

TEST(FlowTable, CachedAnswersFollowEveryChangeOfTheRules) {
  FlowTable table;
  auto icmp = keyOf(ipv4Frame(kIpA, kIpB, 1));
  EXPECT_EQ(table.lookup(icmp), nullptr);  // a remembered miss
  uint64_t first = addRule(table, "priority=10,icmp,actions=drop");
  EXPECT_EQ(table.lookup(icmp)->id, first) << "a rule added after a cached miss must match";
  uint64_t better = addRule(table, "priority=20,ip,actions=normal");
  EXPECT_EQ(table.lookup(icmp)->id, better) << "a higher-priority rule must replace a cached answer";
  table.remove(better);
  EXPECT_EQ(table.lookup(icmp)->id, first);
  table.clear();
  EXPECT_EQ(table.lookup(icmp), nullptr);
  // Many distinct keys (more than the cache holds) agree with the plain scan.
  addRule(table, "priority=5,udp,tp_dst=53,actions=drop");
  addRule(table, "priority=6,nw_src=10.0.0.0/25,actions=normal");
  for (int i = 0; i < 20000; ++i) {
    auto key = keyOf(ipv4Frame({10, 0, 0, static_cast<uint8_t>(i % 251)}, kIpB, i % 3 ? 17 : 6,
                               static_cast<uint16_t>(i), static_cast<uint16_t>(i % 7 ? 53 : 80)));
    ASSERT_EQ(table.lookup(key), table.lookupUncached(key)) << i;
  }
}

TEST(FlowTable, MacMasksMatchOnlyTheMaskedBits) {
  FlowTable table;
  addRule(table, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop");  // any group address
  EXPECT_NE(table.lookup(keyOf(buildFrame({.dst = kBroadcast}))), nullptr);
  EXPECT_NE(table.lookup(keyOf(buildFrame({.dst = {0x33, 0x33, 0, 0, 0, 1}}))), nullptr);
  EXPECT_EQ(table.lookup(keyOf(buildFrame({.dst = mac(2)}))), nullptr);
  EXPECT_EQ(formatFlowMatch(table.rules()[0].match), "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00");
}

TEST(FlowTable, HardAndIdleTimeoutsExpireRules) {
  FlowTable table;
  auto rule = *parseFlowRule("tcp,actions=drop", numbersOnly());
  rule.createdMs = 1000;
  rule.hardTimeoutS = 10;
  ASSERT_TRUE(table.add(rule).ok());
  rule.hardTimeoutS = 0;
  rule.idleTimeoutS = 2;
  rule.priority = 1;
  uint64_t idle = *table.add(rule);
  EXPECT_EQ(table.expire(2999), 0u);
  table.find(idle)->lastUsedMs = 2500;  // a hit keeps an idle rule alive
  EXPECT_EQ(table.expire(4000), 0u);
  EXPECT_EQ(table.expire(4500), 1u);
  EXPECT_EQ(table.find(idle), nullptr);
  EXPECT_EQ(table.expire(10999), 0u);
  EXPECT_EQ(table.expire(11000), 1u);
  EXPECT_TRUE(table.empty());
}

TEST(FlowTable, WithinTellsWhetherAMatchIsCoveredByAWiderOne) {
  auto compile = [](const char* text) { return *FlowTable::compile(parseFlowRule(text, numbersOnly())->match); };
  auto narrow = compile("tcp,nw_dst=10.0.0.2,tp_dst=22,actions=drop");
  EXPECT_TRUE(narrow.within(compile("ip,actions=drop")));
  EXPECT_TRUE(narrow.within(compile("nw_dst=10.0.0.0/24,actions=drop")));
  EXPECT_TRUE(narrow.within(compile("actions=drop")));
  EXPECT_FALSE(narrow.within(compile("udp,actions=drop")));
  EXPECT_FALSE(compile("ip,actions=drop").within(narrow));
}

// The tuple space search must answer exactly what a scan of the rules in order would.
TEST(FlowTable, IndexedLookupAgreesWithAScanInPriorityOrder) {
  std::mt19937 random(99);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  FlowTable table;
  std::vector<uint64_t> ids;
  auto addRandom = [&] {
    std::string text = fmt::format("priority={}", pick(4));  // few priorities: many ties
    if (pick(2)) text += fmt::format(",in_port={}", 1 + pick(2));
    if (pick(3) == 0) text += fmt::format(",dl_src=52:54:00:00:00:0{}", 1 + pick(2));
    int kind = pick(3);
    if (kind == 1) text += fmt::format(",udp,tp_dst={}", 5000 + pick(3));
    if (kind == 2) text += fmt::format(",ip,nw_dst=10.0.{}.0/{}", pick(2), 16 + 8 * pick(3));
    ids.push_back(addRule(table, text + ",actions=drop"));
  };
  auto scanned = [&](const FlowKey& key) -> const FlowRule* {
    std::array<uint64_t, 8> words;
    std::memcpy(words.data(), &key, sizeof key);
    for (size_t i = 0; i < table.rules().size(); ++i) {
      FlowTable::MaskedKey exact{table.compiled(i).mask, {}};
      for (size_t w = 0; w < 8; ++w) exact.value[w] = words[w] & exact.mask[w];
      if (exact == table.compiled(i)) return &table.rules()[i];
    }
    return nullptr;
  };
  for (int round = 0; round < 200; ++round) {
    addRandom();
    if (round % 5 == 4) table.remove(ids[static_cast<size_t>(pick(static_cast<int>(ids.size())))]);
    if (round % 50 == 49)
      table.removeIf([](const FlowRule& rule, const FlowTable::MaskedKey&) { return rule.priority == 1; });
    if (round == 120) table.clear();
    for (int probe = 0; probe < 20; ++probe) {
      auto frame = buildFrame({.dst = mac(2), .src = mac(static_cast<uint8_t>(1 + pick(2))),
                               .etherType = kEtherTypeIpv4,
                               .payload = ipv4Payload({10, 0, 0, 1}, {10, static_cast<uint8_t>(pick(2)), 0, 5}, 17, 9,
                                                      static_cast<uint16_t>(5000 + pick(3)))});
      auto key = keyOf(frame, static_cast<PortId>(1 + pick(2)));
      ASSERT_EQ(table.lookupUncached(key), scanned(key)) << "round " << round;
      ASSERT_EQ(table.lookup(key), scanned(key)) << "round " << round;
    }
  }
}

TEST(FlowTable, RejectsInconsistentRules) {
  FlowTable table;
  auto add = [&](const char* text) {
    auto rule = parseFlowRule(text, numbersOnly());
    return rule.ok() && table.add(*rule).ok();
  };
  EXPECT_FALSE(add("tp_dst=22,actions=drop")) << "ports need a protocol";
  EXPECT_FALSE(add("icmp,tp_dst=22,actions=drop")) << "ports need TCP or UDP";
  EXPECT_FALSE(add("nw_proto=6,actions=drop")) << "protocol needs an IP ethertype";
  EXPECT_FALSE(add("arp,nw_src=10.0.0.1,actions=drop")) << "IPv4 address with ARP ethertype";
  EXPECT_FALSE(add("nw_src=10.0.0.1,ipv6_dst=::1,actions=drop"));
  EXPECT_FALSE(add("dl_vlan=0,actions=drop"));
  EXPECT_FALSE(add("actions=set_vlan:0"));
  EXPECT_TRUE(add("tcp,tp_dst=22,actions=drop"));
  EXPECT_EQ(table.size(), 1u);
}

TEST(FlowSpec, ParsesAndFormatsRoundTrip) {
  auto rule = parseFlowRule("priority=200,in_port=3,tcp,nw_src=10.1.0.0/16,tp_dst=443,actions=set_vlan:20,output:4,"
                            "mirror:5",
                            numbersOnly());
  ASSERT_TRUE(rule.ok()) << rule.error().message;
  EXPECT_EQ(rule->priority, 200);
  EXPECT_EQ(formatFlowMatch(rule->match), "in_port=3,dl_type=0x0800,nw_src=10.1.0.0/16,nw_proto=6,tp_dst=443");
  EXPECT_EQ(formatFlowActions(rule->actions), "set_vlan:20,output:4,mirror:5");
  auto defaults = parseFlowRule("actions=normal", numbersOnly());
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->priority, kDefaultFlowPriority);
  EXPECT_EQ(formatFlowMatch(defaults->match), "");
}

TEST(FlowSpec, RejectsBadText) {
  for (const char* bad : {"", "icmp", "actions=", "bogus,actions=drop", "nw_src=10.0.0.256,actions=drop",
                          "nw_src=10.0.0.0/33,actions=drop", "priority=70000,actions=drop", "actions=output",
                          "actions=drop:3", "actions=output:nosuchport", "in_port=x,actions=drop", "actions=explode",
                          "dl_src=52:54:00,actions=drop", "tp_dst=-1,actions=drop"})
    EXPECT_FALSE(parseFlowRule(bad, numbersOnly()).ok()) << "'" << bad << "' was accepted";
}

// Actions through the switch.
class FlowSwitchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uint16_t vlans[] = {10, 20};
    p1 = *sw.addPort("p1", a, PortVlans::access(10));
    p2 = *sw.addPort("p2", b, PortVlans::access(10));
    p3 = *sw.addPort("p3", c, PortVlans::trunk(vlans));
    p4 = *sw.addPort("p4", d, PortVlans::access(20));
  }
  uint64_t add(const std::string& text) {
    PortResolver byName = [this](std::string_view name) { return sw.portByName(name); };
    auto rule = parseFlowRule(text, byName);
    EXPECT_TRUE(rule.ok()) << text;
    auto id = sw.flows().add(*rule);
    EXPECT_TRUE(id.ok());
    return id.ok() ? *id : 0;
  }
  void clearSent() {
    for (auto* port : {&a, &b, &c, &d}) port->sent.clear();
  }

  Switch sw;
  RecordingPort a, b, c, d;
  PortId p1 = 0, p2 = 0, p3 = 0, p4 = 0;
};

TEST_F(FlowSwitchTest, DropRuleStopsOnlyWhatItMatchesAndCounts) {
  uint64_t id = add("priority=100,in_port=p1,icmp,actions=drop");
  auto icmp = ipv4Frame(kIpA, kIpB, 1);
  auto tcp = ipv4Frame(kIpA, kIpB, 6, 1000, 22);
  a.inject(icmp);
  a.inject(icmp);
  EXPECT_TRUE(b.sent.empty());
  EXPECT_EQ(sw.drops().byRule, 2u);
  a.inject(tcp);  // no rule: normal switching (flood within VLAN 10)
  EXPECT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(c.sent.size(), 1u);
  EXPECT_TRUE(d.sent.empty());
  const FlowRule* rule = sw.flows().find(id);
  EXPECT_EQ(rule->packets, 2u);
  EXPECT_EQ(rule->bytes, 2 * icmp.size());
}

TEST_F(FlowSwitchTest, OutputSendsOnlyWhereTheRuleSays) {
  add("dl_type=0x88b5,actions=output:p3");
  a.inject(buildFrame({.src = mac(1)}));
  EXPECT_TRUE(b.sent.empty());
  ASSERT_EQ(c.sent.size(), 1u);
  EXPECT_EQ(c.sent[0], buildFrame({.src = mac(1), .vlan = 10})) << "output to a trunk tags with the frame's VLAN";
}

TEST_F(FlowSwitchTest, SetVlanMovesTheFrameAndStripVlanUntags) {
  add("in_port=p1,actions=set_vlan:20,flood");
  a.inject(buildFrame({.src = mac(1)}));
  EXPECT_TRUE(b.sent.empty()) << "the frame was moved out of VLAN 10";
  ASSERT_EQ(d.sent.size(), 1u);
  ASSERT_EQ(c.sent.size(), 1u);
  EXPECT_EQ(c.sent[0], buildFrame({.src = mac(1), .vlan = 20}));
  clearSent();
  add("priority=40000,in_port=p2,actions=strip_vlan,output:p3");
  b.inject(buildFrame({.src = mac(2)}));
  ASSERT_EQ(c.sent.size(), 1u);
  EXPECT_EQ(c.sent[0], buildFrame({.src = mac(2)})) << "strip_vlan leaves untagged even on a trunk";
}

TEST_F(FlowSwitchTest, MirrorActionCopiesTheFrameAsReceived) {
  add("in_port=p3,actions=mirror:p4,normal");
  auto tagged = buildFrame({.src = mac(3), .vlan = 10});
  c.inject(tagged);
  ASSERT_EQ(d.sent.size(), 1u);
  EXPECT_EQ(d.sent[0], tagged);
  EXPECT_EQ(a.sent.size(), 1u);  // normal forwarding still happened, untagged
  EXPECT_EQ(a.sent[0], buildFrame({.src = mac(3)}));
}

TEST_F(FlowSwitchTest, NormalActionLearnsAndUnicasts) {
  add("actions=normal");
  b.inject(buildFrame({.src = mac(2)}));
  clearSent();
  a.inject(buildFrame({.dst = mac(2), .src = mac(1)}));
  EXPECT_EQ(b.sent.size(), 1u);
  EXPECT_TRUE(c.sent.empty());
}

TEST_F(FlowSwitchTest, RulesFollowPriorityOverTheNormalFallback) {
  add("priority=10,actions=drop");
  a.inject(buildFrame({.src = mac(1)}));
  EXPECT_TRUE(b.sent.empty());
  add("priority=20,dl_src=52:54:00:00:00:01,actions=normal");
  a.inject(buildFrame({.src = mac(1)}));
  EXPECT_EQ(b.sent.size(), 1u);
}

}  // namespace
}  // namespace strata::network::testing
