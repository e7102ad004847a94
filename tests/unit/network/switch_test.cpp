// The switch core: learning and aging, VLAN classification and tagging at the
// edges, flooding within a VLAN, malformed frames dropped and counted, SPAN.
#include <gtest/gtest.h>

#include <array>

#include "network/flow_spec.h"
#include "network/switch.h"
#include "switch_test_util.h"

namespace strata::network::testing {
namespace {

class SwitchTest : public ::testing::Test {
 protected:
  Switch::Options options() {
    Switch::Options o;
    o.clockMs = [this] { return nowMs; };
    return o;
  }
  PortId add(const std::string& name, RecordingPort& port, PortVlans vlans = PortVlans::access(1)) {
    auto id = sw.addPort(name, port, vlans);
    EXPECT_TRUE(id.ok()) << (id.ok() ? "" : id.error().message);
    return id.ok() ? *id : 0;
  }

  uint64_t nowMs = 1000;
  Switch sw{options()};
  RecordingPort a, b, c, d;
};

TEST_F(SwitchTest, FloodsUnknownThenForwardsLearnedUnicastOnly) {
  add("a", a), add("b", b), add("c", c);
  // a -> unknown b: flooded to b and c, never back to a.
  ASSERT_TRUE(a.inject(buildFrame({.dst = mac(2), .src = mac(1)})));
  EXPECT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(c.sent.size(), 1u);
  EXPECT_TRUE(a.sent.empty());
  // b answers a: a was learned on port a, so only a gets it.
  b.sent.clear(), c.sent.clear();
  b.inject(buildFrame({.dst = mac(1), .src = mac(2)}));
  EXPECT_EQ(a.sent.size(), 1u);
  EXPECT_TRUE(c.sent.empty());
  // And now a -> b is unicast too.
  a.sent.clear();
  a.inject(buildFrame({.dst = mac(2), .src = mac(1)}));
  EXPECT_EQ(b.sent.size(), 1u);
  EXPECT_TRUE(c.sent.empty());
  EXPECT_EQ(sw.macTable().size(), 2u);
}

TEST_F(SwitchTest, BroadcastAndMulticastAreFloodedWithinTheVlan) {
  add("a", a, PortVlans::access(10)), add("b", b, PortVlans::access(10)), add("c", c, PortVlans::access(20));
  a.inject(buildFrame({.dst = kBroadcast, .src = mac(1)}));
  a.inject(buildFrame({.dst = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, .src = mac(1)}));
  EXPECT_EQ(b.sent.size(), 2u);
  EXPECT_TRUE(c.sent.empty()) << "a VLAN 10 frame leaked into VLAN 20";
}

TEST_F(SwitchTest, LearnedAddressesDoNotCrossVlans) {
  uint16_t both[] = {10, 20};
  add("trunk", a, PortVlans::trunk(both)), add("v10", b, PortVlans::access(10)), add("v20", c, PortVlans::access(20));
  // mac(2) lives on v10. A VLAN 20 frame to mac(2) must not be sent to v10: it is unknown in VLAN 20.
  b.inject(buildFrame({.dst = kBroadcast, .src = mac(2)}));
  a.sent.clear();
  a.inject(buildFrame({.dst = mac(2), .src = mac(1), .vlan = 20}));
  EXPECT_TRUE(b.sent.empty());
  ASSERT_EQ(c.sent.size(), 1u);  // flooded within VLAN 20
  a.inject(buildFrame({.dst = mac(2), .src = mac(1), .vlan = 10}));
  EXPECT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(c.sent.size(), 1u);
}

TEST_F(SwitchTest, TagsArePushedOnTrunksAndPoppedOnAccessPorts) {
  uint16_t vlans[] = {10, 30};
  add("access", a, PortVlans::access(10)), add("trunk", b, PortVlans::trunk(vlans));
  auto untagged = buildFrame({.dst = kBroadcast, .src = mac(1)});
  a.inject(untagged);
  ASSERT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(b.sent[0], buildFrame({.dst = kBroadcast, .src = mac(1), .vlan = 10})) << "tag not pushed";
  // Tagged VLAN 10 on the trunk comes out of the access port untagged, payload intact.
  b.inject(buildFrame({.dst = kBroadcast, .src = mac(2), .vlan = 10, .priority = 5}));
  ASSERT_EQ(a.sent.size(), 1u);
  EXPECT_EQ(a.sent[0], buildFrame({.dst = kBroadcast, .src = mac(2)})) << "tag not popped";
}

TEST_F(SwitchTest, TrunkToTrunkKeepsVlanAndPriority) {
  uint16_t vlans[] = {10};
  add("t1", a, PortVlans::trunk(vlans)), add("t2", b, PortVlans::trunk(vlans));
  auto frame = buildFrame({.dst = kBroadcast, .src = mac(1), .vlan = 10, .priority = 6});
  a.inject(frame);
  ASSERT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(b.sent[0], frame);
}

TEST_F(SwitchTest, NativeVlanIsUntaggedOnTheTrunk) {
  uint16_t vlans[] = {10};
  add("trunk", a, PortVlans::trunk(vlans, 1)), add("v1", b, PortVlans::access(1)), add("v10", c, PortVlans::access(10));
  a.inject(buildFrame({.dst = kBroadcast, .src = mac(1)}));  // untagged: native VLAN 1
  ASSERT_EQ(b.sent.size(), 1u);
  EXPECT_TRUE(c.sent.empty());
  b.inject(buildFrame({.dst = kBroadcast, .src = mac(2)}));
  ASSERT_EQ(a.sent.size(), 1u);
  EXPECT_EQ(a.sent[0], buildFrame({.dst = kBroadcast, .src = mac(2)})) << "native VLAN must leave untagged";
}

TEST_F(SwitchTest, FramesOutsideThePortsVlansAreDroppedAndCounted) {
  uint16_t vlans[] = {10};
  PortId access = add("access", a, PortVlans::access(10));
  PortId trunk = add("trunk", b, PortVlans::trunk(vlans));
  add("other", c, PortVlans::trunk(std::array<uint16_t, 2>{10, 20}));
  a.inject(buildFrame({.src = mac(1), .vlan = 10}));  // tagged on an access port
  b.inject(buildFrame({.src = mac(2), .vlan = 20}));  // VLAN not in the trunk's list
  b.inject(buildFrame({.src = mac(2)}));              // untagged, trunk has no native VLAN
  EXPECT_TRUE(c.sent.empty());
  EXPECT_EQ(sw.drops().vlanNotAllowed, 3u);
  EXPECT_EQ(sw.port(access)->counters.rxDropped, 1u);
  EXPECT_EQ(sw.port(trunk)->counters.rxDropped, 2u);
}

TEST_F(SwitchTest, PriorityTaggedFrameTakesThePortVlan) {
  add("a", a, PortVlans::access(10)), add("b", b, PortVlans::access(10));
  a.inject(buildFrame({.src = mac(1), .vlan = 0, .priority = 3}));
  ASSERT_EQ(b.sent.size(), 1u);
  EXPECT_EQ(b.sent[0], buildFrame({.src = mac(1)}));
}

TEST_F(SwitchTest, MalformedFramesAreDroppedAndCounted) {
  Switch::Options small = options();
  small.maxFrameBytes = 1518;
  Switch sw2(small);
  ASSERT_TRUE(sw2.addPort("a", a, PortVlans::access(1)).ok());
  ASSERT_TRUE(sw2.addPort("b", b, PortVlans::trunk(std::array<uint16_t, 1>{1})).ok());
  auto good = buildFrame({.src = mac(1)});
  a.inject(std::vector<uint8_t>(good.begin(), good.begin() + 13));  // runt: no ethertype
  a.inject({});                                                       // empty
  b.inject(std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0, 0, 0, 0, 2, 0x81, 0x00, 0x00});
  a.inject(buildFrame({.src = mac(1), .payload = std::vector<uint8_t>(1505, 0)}));  // 1519 bytes
  b.inject(buildFrame({.src = mac(2), .vlan = 4095}));                               // reserved VID
  auto stacked = buildFrame({.src = mac(2), .vlan = 1, .etherType = kEtherTypeVlan});
  b.inject(stacked);                                                                 // double tag
  b.inject(buildFrame({.src = mac(2), .etherType = kEtherTypeQinQ}));                // 802.1ad outer tag
  a.inject(buildFrame({.src = {0x01, 0, 0x5e, 0, 0, 1}}));                           // group source
  EXPECT_EQ(sw2.drops().runt, 3u);
  EXPECT_EQ(sw2.drops().oversize, 1u);
  EXPECT_EQ(sw2.drops().badVlanTag, 3u);
  EXPECT_EQ(sw2.drops().badSourceMac, 1u);
  EXPECT_TRUE(a.sent.empty());
  EXPECT_TRUE(b.sent.empty());
  EXPECT_EQ(sw2.macTable().size(), 0u) << "nothing from a malformed frame may be learned";
  // A well-formed frame of exactly the limit passes.
  a.inject(buildFrame({.src = mac(1), .payload = std::vector<uint8_t>(1504, 0)}));
  EXPECT_EQ(b.sent.size(), 1u);
}

TEST_F(SwitchTest, LearnedEntriesAgeOut) {
  Switch::Options aging = options();
  aging.macAgingMs = 5000;
  Switch sw2(aging);
  ASSERT_TRUE(sw2.addPort("a", a, PortVlans::access(1)).ok());
  ASSERT_TRUE(sw2.addPort("b", b, PortVlans::access(1)).ok());
  ASSERT_TRUE(sw2.addPort("c", c, PortVlans::access(1)).ok());
  b.inject(buildFrame({.src = mac(2)}));
  a.sent.clear(), c.sent.clear();
  nowMs += 4000;
  a.inject(buildFrame({.dst = mac(2), .src = mac(1)}));
  EXPECT_TRUE(c.sent.empty()) << "fresh entry must be used";
  nowMs += 6000;  // mac(2) silent for 10 s > 5 s
  a.inject(buildFrame({.dst = mac(2), .src = mac(1)}));
  EXPECT_EQ(c.sent.size(), 1u) << "an aged entry must be forgotten (flooded again)";
  nowMs += 6000;
  sw2.expireMacs();
  EXPECT_EQ(sw2.macTable().size(), 0u);
}

TEST_F(SwitchTest, MacTableStopsGrowingAtItsLimit) {
  Switch::Options limited = options();
  limited.macTableLimit = 4;
  Switch sw2(limited);
  ASSERT_TRUE(sw2.addPort("a", a, PortVlans::access(1)).ok());
  ASSERT_TRUE(sw2.addPort("b", b, PortVlans::access(1)).ok());
  for (uint8_t i = 1; i <= 10; ++i) a.inject(buildFrame({.src = mac(i)}));
  EXPECT_EQ(sw2.macTable().size(), 4u);
  EXPECT_EQ(sw2.drops().learningFull, 6u);
  EXPECT_EQ(b.sent.size(), 10u) << "frames are still forwarded when their source is not learned";
  // Once the old entries age, new addresses are learned again.
  nowMs += limited.macAgingMs + 1;
  a.inject(buildFrame({.src = mac(11)}));
  EXPECT_EQ(sw2.macTable().size(), 1u);
}

TEST_F(SwitchTest, MacMovesToTheLatestPort) {
  add("a", a), add("b", b), add("c", c);
  a.inject(buildFrame({.src = mac(5)}));
  b.inject(buildFrame({.src = mac(5)}));  // the VM migrated
  a.sent.clear(), b.sent.clear(), c.sent.clear();
  c.inject(buildFrame({.dst = mac(5), .src = mac(3)}));
  EXPECT_TRUE(a.sent.empty());
  EXPECT_EQ(b.sent.size(), 1u);
}

TEST_F(SwitchTest, RemovedPortStopsAndItsAddressesAreForgotten) {
  PortId ida = add("a", a);
  add("b", b), add("c", c);
  a.inject(buildFrame({.src = mac(1)}));
  sw.removePort(ida);
  EXPECT_FALSE(a.inject(buildFrame({.src = mac(1)}))) << "detached port must lose its handler";
  EXPECT_EQ(sw.macTable().size(), 0u);
  b.sent.clear(), c.sent.clear();
  b.inject(buildFrame({.dst = mac(1), .src = mac(2)}));
  EXPECT_EQ(c.sent.size(), 1u);
  EXPECT_TRUE(a.sent.empty());
  // The id is free again.
  EXPECT_EQ(add("d", d), ida);
}

TEST_F(SwitchTest, PortNamesAreUniqueAndVlansValidated) {
  add("a", a);
  EXPECT_FALSE(sw.addPort("a", b, PortVlans::access(1)).ok());
  EXPECT_FALSE(sw.addPort("", b, PortVlans::access(1)).ok());
  EXPECT_FALSE(sw.addPort("b", b, PortVlans::access(0)).ok());
  EXPECT_FALSE(sw.addPort("b", b, PortVlans::access(4095)).ok());
}

TEST_F(SwitchTest, CountsPacketsAndBytesPerPort) {
  PortId ida = add("a", a), idb = add("b", b);
  auto frame = buildFrame({.src = mac(1)});
  a.inject(frame);
  a.inject(frame);
  auto infoA = *sw.port(ida), infoB = *sw.port(idb);
  EXPECT_EQ(infoA.counters.rxPackets, 2u);
  EXPECT_EQ(infoA.counters.rxBytes, 2 * frame.size());
  EXPECT_EQ(infoB.counters.txPackets, 2u);
  EXPECT_EQ(infoB.counters.txBytes, 2 * frame.size());
}

TEST_F(SwitchTest, SpanMirrorsBothDirectionsAsOnTheWire) {
  uint16_t vlans[] = {10};
  PortId ida = add("a", a, PortVlans::access(10));
  add("b", b, PortVlans::trunk(vlans));
  PortId idm = add("monitor", c, PortVlans::access(99));
  ASSERT_TRUE(sw.setMirror(ida, idm).ok());
  a.inject(buildFrame({.src = mac(1)}));                             // received on a
  b.inject(buildFrame({.dst = mac(1), .src = mac(2), .vlan = 10}));  // sent to a, untagged there
  ASSERT_EQ(c.sent.size(), 2u);
  EXPECT_EQ(c.sent[0], buildFrame({.src = mac(1)}));
  EXPECT_EQ(c.sent[1], buildFrame({.dst = mac(1), .src = mac(2)}));
  EXPECT_FALSE(sw.setMirror(ida, ida).ok());
  sw.removePort(idm);
  EXPECT_FALSE(sw.port(ida)->mirrorTo.has_value()) << "mirror to a removed port must stop";
}

// Guest-controlled bytes of every length, through VLAN checks and a full flow table: no crash,
// every frame either forwarded or counted as dropped.
TEST_F(SwitchTest, RandomFramesNeverCrashAndAreAllAccountedFor) {
  uint16_t vlans[] = {1, 10, 20};
  PortId trunk = add("trunk", a, PortVlans::trunk(vlans, 1));
  add("b", b, PortVlans::access(1)), add("c", c, PortVlans::access(10));
  for (const char* rule : {"priority=5,tcp,tp_dst=80,actions=drop", "priority=6,ipv6_src=fe80::/10,actions=normal",
                           "priority=7,udp,actions=set_vlan:20,flood", "priority=8,icmp,actions=strip_vlan,output:2"}) {
    auto parsed = parseFlowRule(rule, [](std::string_view) { return std::optional<PortId>(2); });
    ASSERT_TRUE(parsed.ok() && sw.flows().add(*parsed).ok()) << rule;
  }
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u, static_cast<uint8_t>(seed >> 16); };
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> frame(next() % 2 ? next() % 80 : 60 + next() * 4);
    for (auto& byte : frame) byte = next();
    if (frame.size() > 13 && next() % 2) frame[12] = 0x81, frame[13] = 0x00;  // often tagged
    if (frame.size() > 17 && next() % 2) frame[16] = 0x08, frame[17] = next() % 2 ? 0x00 : 0x06;
    a.inject(frame);
  }
  auto info = *sw.port(trunk);
  EXPECT_EQ(info.counters.rxPackets, 20000u);
  const DropCounters& d = sw.drops();
  uint64_t droppedAtIngress = d.runt + d.oversize + d.badVlanTag + d.badSourceMac + d.vlanNotAllowed;
  EXPECT_EQ(info.counters.rxDropped, droppedAtIngress);
  EXPECT_GT(droppedAtIngress, 0u);
  EXPECT_LT(droppedAtIngress, 20000u) << "some random frames are valid and must have been switched";
}

TEST(PortVlans, ParsesAndDescribes) {
  auto access = PortVlans::parse("vlan=10");
  ASSERT_TRUE(access.ok());
  EXPECT_EQ(access->mode, PortVlans::Mode::Access);
  EXPECT_EQ(access->accessVlan, 10);
  auto trunk = PortVlans::parse("trunk=10,20,30-32,native=1");
  ASSERT_TRUE(trunk.ok()) << trunk.error().message;
  EXPECT_TRUE(trunk->carries(31) && trunk->carries(20) && trunk->carries(1) && !trunk->carries(11));
  EXPECT_EQ(trunk->describe(), "trunk=10,20,30-32,native=1");
  EXPECT_EQ(PortVlans::parse("")->describe(), "vlan=1");
  for (const char* bad : {"vlan=0", "vlan=4095", "vlan=x", "trunk=5-3", "vlan=1,trunk=2", "native=3", "10",
                          "trunk=1,bogus=2", "trunk=99999"})
    EXPECT_FALSE(PortVlans::parse(bad).ok()) << bad;
}

}  // namespace
}  // namespace strata::network::testing
