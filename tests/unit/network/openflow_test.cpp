// The OpenFlow 1.3 session without sockets: version negotiation, the simple
// requests, FLOW_MOD commands on the switch's flow table and what they change
// in forwarding, PACKET_IN on a table-miss rule, PACKET_OUT, statistics split
// across multipart replies, and malformed or random messages refused with the
// right OFPT_ERROR (never a crash).
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "network/flow_spec.h"
#include "network/openflow_session.h"
#include "network/switch.h"
#include "switch_test_util.h"

namespace strata::network::testing {
namespace {

using namespace openflow;
using Bytes = std::vector<uint8_t>;

Bytes message(uint8_t type, const std::function<void(Writer&)>& body = {}, uint32_t xid = 7,
              uint8_t version = kVersion) {
  Bytes out;
  Writer w(out);
  w.u8(version);
  w.u8(type);
  w.u16(0);
  w.u32(xid);
  if (body) body(w);
  w.patch16(2, static_cast<uint16_t>(out.size()));
  return out;
}

Bytes oxm(uint8_t field, Bytes value, Bytes mask = {}) {
  Bytes out{0x80, 0x00, static_cast<uint8_t>(field << 1 | (mask.empty() ? 0 : 1)),
            static_cast<uint8_t>(value.size() + mask.size())};
  out.insert(out.end(), value.begin(), value.end());
  out.insert(out.end(), mask.begin(), mask.end());
  return out;
}
Bytes be16(uint16_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }
Bytes ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return {a, b, c, d}; }
Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

void putMatch(Writer& w, const Bytes& oxms, uint16_t type = 1) {
  w.u16(type);
  w.u16(static_cast<uint16_t>(4 + oxms.size()));
  w.bytes(oxms.data(), oxms.size());
  w.zeros((8 - (4 + oxms.size()) % 8) % 8);
}

Bytes output(uint32_t port, uint16_t maxLen = 0) {
  Bytes out;
  Writer w(out);
  w.u16(kActOutput);
  w.u16(16);
  w.u32(port);
  w.u16(maxLen);
  w.zeros(6);
  return out;
}

Bytes apply(const Bytes& actions, uint16_t type = kInstApplyActions) {
  Bytes out;
  Writer w(out);
  w.u16(type);
  w.u16(static_cast<uint16_t>(8 + actions.size()));
  w.zeros(4);
  w.bytes(actions.data(), actions.size());
  return out;
}

struct FlowModSpec {
  uint8_t command = kAdd;
  uint16_t priority = 100;
  Bytes oxms;
  Bytes instructions;
  uint64_t cookie = 0, cookieMask = 0;
  uint8_t table = 0;
  uint32_t outPort = kPortAny;
  uint32_t bufferId = kNoBuffer;
  uint16_t flags = 0;
};

Bytes flowMod(const FlowModSpec& spec) {
  return message(kFlowMod, [&](Writer& w) {
    w.u64(spec.cookie);
    w.u64(spec.cookieMask);
    w.u8(spec.table);
    w.u8(spec.command);
    w.u16(0);
    w.u16(0);
    w.u16(spec.priority);
    w.u32(spec.bufferId);
    w.u32(spec.outPort);
    w.u32(0xffffffff);
    w.u16(spec.flags);
    w.zeros(2);
    putMatch(w, spec.oxms);
    w.bytes(spec.instructions.data(), spec.instructions.size());
  });
}

const Bytes kIpToB = concat({oxm(kOxmEthType, be16(kEtherTypeIpv4)), oxm(kOxmIpv4Dst, ipv4(10, 0, 0, 2))});

struct Reply {
  uint8_t type;
  uint32_t xid;
  Bytes bytes;
  uint16_t u16(size_t at) const { return loadBe16(bytes.data() + at); }
};

class OpenFlowSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* port : {&a_, &b_, &c_}) ASSERT_TRUE(sw_.addPort(fmt(port), *port, PortVlans::access(1)).ok());
    sw_.setControllerHandler([this](const PacketToController& packet) { session_.packetIn(packet); });
    session_.start();
    ASSERT_TRUE(session_.handle(message(kHello)));
    ASSERT_TRUE(session_.negotiated());
    out_.clear();
  }
  std::string fmt(const RecordingPort* port) { return port == &a_ ? "a" : port == &b_ ? "b" : "c"; }

  // Handles one message and returns the replies it produced.
  std::vector<Reply> send(const Bytes& request) {
    EXPECT_TRUE(session_.handle(request));
    return replies();
  }
  std::vector<Reply> replies() {
    std::vector<Reply> out;
    size_t at = 0;
    while (at + 8 <= out_.size()) {
      size_t length = loadBe16(out_.data() + at + 2);
      EXPECT_GE(length, 8u);
      EXPECT_LE(at + length, out_.size());
      if (length < 8 || at + length > out_.size()) break;
      Bytes bytes(out_.begin() + static_cast<ptrdiff_t>(at), out_.begin() + static_cast<ptrdiff_t>(at + length));
      EXPECT_EQ(bytes[0], kVersion);
      out.push_back({bytes[1], static_cast<uint32_t>(loadBe16(bytes.data() + 4)) << 16 | loadBe16(bytes.data() + 6),
                     bytes});
      at += length;
    }
    out_.clear();
    return out;
  }
  // Expects exactly one OFPT_ERROR of this type and code.
  void expectError(const Bytes& request, uint16_t type, uint16_t code) {
    auto got = send(request);
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].type, kError);
    EXPECT_EQ(got[0].u16(8), type);
    EXPECT_EQ(got[0].u16(10), code);
  }
  std::vector<uint8_t> ipFrame(uint8_t last) {
    return buildFrame({.dst = mac(2), .src = mac(1), .etherType = kEtherTypeIpv4,
                       .payload = ipv4Payload({10, 0, 0, 1}, {10, 0, 0, last}, 17, 1000, 2000)});
  }

  Switch sw_;
  RecordingPort a_, b_, c_;
  Bytes out_;
  OpenFlowSession session_{sw_, "t", out_};
};

TEST(OpenFlowHello, AgreesOn13AndRefusesEverythingElse) {
  Switch sw;
  auto hello = [&](uint8_t version, std::optional<uint32_t> bitmap) {
    Bytes out;
    OpenFlowSession session(sw, "t", out);
    session.start();
    EXPECT_EQ(out.size(), 16u);  // our HELLO, with a version bitmap
    EXPECT_EQ(out[8 + 7], 1u << kVersion);
    out.clear();
    bool open = session.handle(message(kHello, [&](Writer& w) {
      if (!bitmap) return;
      w.u16(1);
      w.u16(8);
      w.u32(*bitmap);
    }, 1, version));
    bool refused = !out.empty() && out[1] == kError && loadBe16(out.data() + 8) == kHelloFailed;
    EXPECT_EQ(open, session.negotiated());
    EXPECT_EQ(open, !refused);
    return open;
  };
  EXPECT_TRUE(hello(kVersion, std::nullopt));
  EXPECT_TRUE(hello(6, std::nullopt)) << "a newer peer without a bitmap falls back to 1.3";
  EXPECT_TRUE(hello(1, 0x12)) << "bitmap with 1.0 and 1.3";
  EXPECT_FALSE(hello(1, std::nullopt)) << "OpenFlow 1.0 only";
  EXPECT_FALSE(hello(6, 0x40)) << "bitmap without 1.3";

  Bytes out;
  OpenFlowSession session(sw, "t", out);
  EXPECT_FALSE(session.handle(message(kFeaturesRequest))) << "a request before HELLO";
  ASSERT_GE(out.size(), 12u);
  EXPECT_EQ(out[1], kError);
}

TEST_F(OpenFlowSessionTest, AnswersEchoFeaturesConfigAndBarrier) {
  auto echo = send(message(kEchoRequest, [](Writer& w) { w.u32(0xdeadbeef); }, 42));
  ASSERT_EQ(echo.size(), 1u);
  EXPECT_EQ(echo[0].type, kEchoReply);
  EXPECT_EQ(echo[0].xid, 42u);
  EXPECT_EQ(echo[0].bytes.size(), 12u);
  EXPECT_EQ(echo[0].bytes[8], 0xde);

  auto features = send(message(kFeaturesRequest));
  ASSERT_EQ(features.size(), 1u);
  EXPECT_EQ(features[0].type, kFeaturesReply);
  EXPECT_EQ(features[0].bytes.size(), 32u);
  EXPECT_EQ(features[0].bytes[20], 1u) << "n_tables";

  EXPECT_TRUE(send(message(kSetConfig, [](Writer& w) { w.u16(0); w.u16(256); })).empty());
  auto config = send(message(kGetConfigRequest));
  ASSERT_EQ(config.size(), 1u);
  EXPECT_EQ(config[0].u16(10), 256u);

  auto barrier = send(message(kBarrierRequest, {}, 9));
  ASSERT_EQ(barrier.size(), 1u);
  EXPECT_EQ(barrier[0].type, kBarrierReply);
  EXPECT_EQ(barrier[0].xid, 9u);

  expectError(message(kFeaturesRequest, [](Writer& w) { w.u32(0); }), kBadRequest, kBadLen);
  expectError(message(kEchoRequest, {}, 1, 1), kBadRequest, kBadVersion);
  expectError(message(99), kBadRequest, kBadType);
  Bytes misframed = message(kEchoRequest, [](Writer& w) { w.u32(0); });
  misframed[3] = 9;  // the header claims 9 bytes, 12 were handed over
  EXPECT_FALSE(session_.handle(misframed));
  EXPECT_EQ(replies().size(), 1u);
  expectError(message(kExperimenter, [](Writer& w) { w.u64(0); }), kBadRequest, kBadExperimenter);
  expectError(message(kMultipartRequest, [](Writer& w) { w.u16(kMpPortStats); w.u16(0); w.u32(0); w.u32(1); }),
              kBadRequest, kBadLen);
  expectError(message(kMultipartRequest, [](Writer& w) { w.u16(9); w.u16(0); w.u32(0); }), kBadRequest,
              kBadMultipart);
}

TEST_F(OpenFlowSessionTest, FlowModAddChangesForwardingOnTheSharedTable) {
  EXPECT_TRUE(send(flowMod({.oxms = kIpToB, .cookie = 0x1234})).empty());
  ASSERT_EQ(sw_.flows().size(), 1u);
  const FlowRule& rule = sw_.flows().rules()[0];
  EXPECT_EQ(rule.cookie, 0x1234u);
  EXPECT_EQ(formatFlowMatch(rule.match), "dl_type=0x0800,nw_dst=10.0.0.2");
  EXPECT_EQ(formatFlowActions(rule.actions), "drop");

  sw_.receive(2, buildFrame({.src = mac(2)}));  // b learned
  a_.sent.clear();
  c_.sent.clear();
  a_.inject(ipFrame(2));
  EXPECT_TRUE(b_.sent.empty()) << "the OpenFlow rule should drop frames to 10.0.0.2";
  a_.inject(ipFrame(3));
  EXPECT_EQ(b_.sent.size(), 1u) << "other destinations still pass";

  // The same rule again (same match and priority) replaces the actions and keeps the counters.
  EXPECT_TRUE(send(flowMod({.oxms = kIpToB, .instructions = apply(output(3))})).empty());
  ASSERT_EQ(sw_.flows().size(), 1u);
  EXPECT_EQ(sw_.flows().rules()[0].packets, 1u);
  a_.inject(ipFrame(2));
  EXPECT_EQ(c_.sent.size(), 1u);
}

TEST_F(OpenFlowSessionTest, ModifyAndDeleteSelectStrictlyOrByCoverAndCookie) {
  Bytes ip = oxm(kOxmEthType, be16(kEtherTypeIpv4));
  send(flowMod({.priority = 100, .oxms = kIpToB, .cookie = 1}));
  send(flowMod({.priority = 200, .oxms = kIpToB, .instructions = apply(output(2)), .cookie = 2}));
  send(flowMod({.priority = 50, .oxms = oxm(kOxmEthType, be16(kEtherTypeArp)), .cookie = 3}));
  ASSERT_EQ(sw_.flows().size(), 3u);

  // Non-strict modify of everything IP: both IP rules, not the ARP one.
  send(flowMod({.command = kModify, .oxms = ip, .instructions = apply(output(3))}));
  EXPECT_EQ(formatFlowActions(sw_.flows().rules()[0].actions), "output:3");
  EXPECT_EQ(formatFlowActions(sw_.flows().rules()[1].actions), "output:3");
  EXPECT_EQ(formatFlowActions(sw_.flows().rules()[2].actions), "drop");
  // Strict needs the same priority and match.
  send(flowMod({.command = kModifyStrict, .priority = 150, .oxms = kIpToB, .instructions = apply(output(1))}));
  EXPECT_EQ(formatFlowActions(sw_.flows().rules()[0].actions), "output:3");

  send(flowMod({.command = kDelete, .oxms = ip, .cookie = 2, .cookieMask = ~0ull, .table = kTableAll}));
  ASSERT_EQ(sw_.flows().size(), 2u) << "only the rule with cookie 2";
  send(flowMod({.command = kDelete, .outPort = 2}));
  EXPECT_EQ(sw_.flows().size(), 2u) << "no remaining rule outputs to port 2";
  send(flowMod({.command = kDeleteStrict, .priority = 50, .oxms = oxm(kOxmEthType, be16(kEtherTypeArp))}));
  ASSERT_EQ(sw_.flows().size(), 1u);
  send(flowMod({.command = kDelete, .table = kTableAll}));
  EXPECT_TRUE(sw_.flows().empty());
}

TEST_F(OpenFlowSessionTest, CheckOverlapRefusesARuleThatCouldMatchTheSameFrameAtItsPriority) {
  Bytes ip = oxm(kOxmEthType, be16(kEtherTypeIpv4));
  Bytes udp53 = concat({ip, oxm(kOxmIpProto, {17}), oxm(kOxmUdpDst, be16(53))});
  send(flowMod({.priority = 10, .oxms = kIpToB}));
  expectError(flowMod({.priority = 10, .oxms = udp53, .flags = kFlagCheckOverlap}), kFlowModFailed, kFmOverlap);
  EXPECT_TRUE(send(flowMod({.priority = 11, .oxms = udp53, .flags = kFlagCheckOverlap})).empty());
  EXPECT_TRUE(send(flowMod({.priority = 10, .oxms = oxm(kOxmEthType, be16(kEtherTypeArp)),
                            .flags = kFlagCheckOverlap})).empty()) << "ARP never meets IPv4";
  EXPECT_EQ(sw_.flows().size(), 3u);
}

TEST_F(OpenFlowSessionTest, MalformedFlowModsAreRefusedWithTheRightError) {
  struct Case {
    const char* what;
    Bytes request;
    uint16_t type, code;
  };
  Bytes vlanOutput = concat({Bytes{0, kActSetField, 0, 16}, oxm(kOxmEthDst, Bytes(6, 1)), Bytes(2, 0)});
  Bytes gotoTable{0, 1, 0, 8, 1, 0, 0, 0};
  Bytes truncated = flowMod({.oxms = kIpToB});
  truncated.resize(40);
  truncated[2] = 0;
  truncated[3] = 40;
  Bytes matchTooLong = flowMod({.oxms = kIpToB});
  matchTooLong[48 + 3] = 200;
  std::vector<Case> cases = {
      {"shorter than a flow-mod", truncated, kBadRequest, kBadLen},
      {"match length past the end", matchTooLong, kBadMatch, kMatchBadLen},
      {"OpenFlow 1.1 standard match", flowMod({.oxms = {}}), 0, 0},  // placeholder, replaced below
      {"OXM with a wrong length", flowMod({.oxms = Bytes{0x80, 0, kOxmEthType << 1, 3, 8, 0, 0}}), kBadMatch,
       kMatchBadLen},
      {"unknown OXM field", flowMod({.oxms = oxm(40, Bytes(2, 0))}), kBadMatch, kMatchBadField},
      {"experimenter OXM class", flowMod({.oxms = Bytes{0xff, 0xff, 0, 4, 0, 0, 0, 0}}), kBadMatch, kMatchBadField},
      {"duplicate field", flowMod({.oxms = concat({kIpToB, oxm(kOxmEthType, be16(kEtherTypeIpv4))})}), kBadMatch,
       kMatchDupField},
      {"IPv4 address without eth_type", flowMod({.oxms = oxm(kOxmIpv4Dst, ipv4(10, 0, 0, 2))}), kBadMatch,
       kMatchBadPrereq},
      {"tcp_dst with ip_proto 17",
       flowMod({.oxms = concat({kIpToB, oxm(kOxmIpProto, {17}), oxm(kOxmTcpDst, be16(80))})}), kBadMatch,
       kMatchBadPrereq},
      {"IPv4 mask with holes",
       flowMod({.oxms = concat({oxm(kOxmEthType, be16(kEtherTypeIpv4)),
                                oxm(kOxmIpv4Dst, ipv4(10, 0, 0, 0), ipv4(255, 0, 255, 0))})}),
       kBadMatch, kMatchBadMask},
      {"masked eth_type", flowMod({.oxms = oxm(kOxmEthType, be16(0x0800), be16(0xff00))}), kBadMatch, kMatchBadMask},
      {"vlan_vid without OFPVID_PRESENT", flowMod({.oxms = oxm(kOxmVlanVid, be16(10))}), kBadMatch, kMatchBadValue},
      {"GOTO_TABLE", flowMod({.oxms = kIpToB, .instructions = gotoTable}), kBadInstruction, kInstUnsupported},
      {"instruction length 4", flowMod({.oxms = kIpToB, .instructions = Bytes{0, 4, 0, 4, 0, 0, 0, 0}}),
       kBadInstruction, kInstBadLen},
      {"unknown action", flowMod({.oxms = kIpToB, .instructions = apply(Bytes{0, 11, 0, 8, 0, 0, 0, 0})}),
       kBadAction, kActBadType},
      {"action length 12", flowMod({.oxms = kIpToB, .instructions = apply(Bytes{0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 0,
                                                                               0, 0, 0, 0})}),
       kBadAction, kActBadLen},
      {"output to IN_PORT", flowMod({.oxms = kIpToB, .instructions = apply(output(kPortInPort))}), kBadAction,
       kActBadOutPort},
      {"set_field eth_dst", flowMod({.oxms = kIpToB, .instructions = apply(vlanOutput)}), kBadAction,
       kActBadSetType},
      {"table 3", flowMod({.oxms = kIpToB, .table = 3}), kFlowModFailed, kFmBadTableId},
      {"command 9", flowMod({.command = 9, .oxms = kIpToB}), kFlowModFailed, kFmBadCommand},
      {"a buffer id", flowMod({.oxms = kIpToB, .bufferId = 5}), kBadRequest, kBufferUnknown},
  };
  cases[2].request = flowMod({.oxms = kIpToB});
  cases[2].request[49] = 0;  // match type OFPMT_STANDARD
  cases[2].type = kBadMatch;
  cases[2].code = kMatchBadType;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    expectError(c.request, c.type, c.code);
    EXPECT_TRUE(sw_.flows().empty());
  }
}

TEST_F(OpenFlowSessionTest, TableMissRuleSendsPacketInAndPacketOutSendsFrames) {
  auto frame = ipFrame(2);
  a_.inject(frame);
  EXPECT_EQ(b_.sent.size(), 1u) << "no rule: the learning switch floods";
  EXPECT_TRUE(replies().empty());

  send(flowMod({.priority = 0, .instructions = apply(output(kPortController, kMaxLenNoBuffer)), .cookie = 5}));
  b_.sent.clear();
  a_.inject(frame);
  EXPECT_TRUE(b_.sent.empty());
  auto in = replies();
  ASSERT_EQ(in.size(), 1u);
  ASSERT_EQ(in[0].type, kPacketIn);
  EXPECT_EQ(in[0].bytes[14], 0u) << "reason OFPR_NO_MATCH";
  EXPECT_EQ(in[0].bytes[23], 5u) << "cookie";
  EXPECT_EQ(in[0].bytes.size(), 8 + 16 + 16 + 2 + frame.size());
  EXPECT_EQ(in[0].bytes[24 + 4 + 4 + 3], 1u) << "in_port 1 in the match";
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), in[0].bytes.end() - static_cast<ptrdiff_t>(frame.size())));

  auto packetOut = [&](uint32_t inPort, const Bytes& actions, const Bytes& data) {
    return message(kPacketOut, [&](Writer& w) {
      w.u32(kNoBuffer);
      w.u32(inPort);
      w.u16(static_cast<uint16_t>(actions.size()));
      w.zeros(6);
      w.bytes(actions.data(), actions.size());
      w.bytes(data.data(), data.size());
    });
  };
  c_.sent.clear();
  EXPECT_TRUE(send(packetOut(kPortController, output(2), frame)).empty());
  ASSERT_EQ(b_.sent.size(), 1u);
  EXPECT_EQ(b_.sent[0], frame);
  EXPECT_TRUE(send(packetOut(kPortController, output(kPortFlood), frame)).size() == 0);
  EXPECT_EQ(a_.sent.size() + b_.sent.size() + c_.sent.size(), 4u) << "flooded to all three";
  auto again = send(packetOut(1, output(kPortTable), frame));
  ASSERT_EQ(again.size(), 1u) << "OUTPUT:TABLE runs the table, whose miss rule asks the controller";
  EXPECT_EQ(again[0].type, kPacketIn);

  expectError(packetOut(kPortController, output(2), Bytes(10, 1)), kBadRequest, kBadPacket);
  expectError(packetOut(77, output(2), frame), kBadRequest, kBadPort);
  Bytes lying = packetOut(kPortController, output(2), frame);
  lying[16] = 0x7f;  // actions_len past the end
  expectError(lying, kBadRequest, kBadLen);
}

TEST_F(OpenFlowSessionTest, PortStatusDescribesTheAttachedPort) {
  session_.portStatus(true, *sw_.port(2));
  auto status = replies();
  ASSERT_EQ(status.size(), 1u);
  ASSERT_EQ(status[0].type, kPortStatus);
  ASSERT_EQ(status[0].bytes.size(), 8u + 8u + 64u);
  EXPECT_EQ(status[0].bytes[8], 0u) << "OFPPR_ADD";
  EXPECT_EQ(status[0].bytes[16 + 3], 2u) << "port_no";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(status[0].bytes.data() + 16 + 16)), "b");
}

TEST_F(OpenFlowSessionTest, FlowStatsSplitAcrossMultipartRepliesAndPortStatsCount) {
  constexpr int kRules = 1500;
  for (int i = 0; i < kRules; ++i) {
    send(flowMod({.priority = static_cast<uint16_t>(1000 + i),
                  .oxms = concat({oxm(kOxmEthType, be16(kEtherTypeIpv4)), oxm(kOxmIpProto, {6}),
                                  oxm(kOxmTcpDst, be16(static_cast<uint16_t>(i)))}),
                  .instructions = apply(output(2))}));
  }
  ASSERT_EQ(sw_.flows().size(), size_t{kRules});
  auto stats = send(message(kMultipartRequest, [](Writer& w) {
    w.u16(kMpFlow);
    w.u16(0);
    w.zeros(4);
    w.u8(kTableAll);
    w.zeros(3);
    w.u32(kPortAny);
    w.u32(0xffffffff);
    w.zeros(4);
    w.u64(0);
    w.u64(0);
    putMatch(w, {});
  }));
  ASSERT_GT(stats.size(), 1u) << "1500 entries do not fit one message";
  size_t entries = 0;
  for (size_t i = 0; i < stats.size(); ++i) {
    EXPECT_EQ(stats[i].type, kMultipartReply);
    EXPECT_EQ(stats[i].u16(10), i + 1 < stats.size() ? 1u : 0u) << "OFPMPF_REPLY_MORE on all but the last";
    for (size_t at = 16; at < stats[i].bytes.size(); at += stats[i].u16(at)) ++entries;
  }
  EXPECT_EQ(entries, size_t{kRules});

  a_.inject(ipFrame(9));
  auto ports = send(message(kMultipartRequest, [](Writer& w) {
    w.u16(kMpPortStats);
    w.u16(0);
    w.zeros(4);
    w.u32(1);
    w.zeros(4);
  }));
  ASSERT_EQ(ports.size(), 1u);
  ASSERT_EQ(ports[0].bytes.size(), 16u + 112u) << "port 1 only";
  EXPECT_EQ(ports[0].bytes[16 + 8 + 7], 1u) << "rx_packets";
}

TEST_F(OpenFlowSessionTest, RandomAndMutatedMessagesNeverCrashOrStopForwarding) {
  std::mt19937 random(1234);
  auto byte = [&] { return static_cast<uint8_t>(random()); };
  Bytes valid = flowMod({.oxms = concat({kIpToB, oxm(kOxmIpProto, {17}), oxm(kOxmUdpDst, be16(53))}),
                         .instructions = apply(concat({output(2), output(kPortController)}))});
  for (int i = 0; i < 20000; ++i) {
    Bytes request;
    if (i % 2 == 0) {
      request = valid;  // a valid flow-mod with a few bytes flipped past the header
      for (int flips = 1 + static_cast<int>(random() % 4); flips > 0; --flips)
        request[8 + random() % (request.size() - 8)] = byte();
    } else {
      request = message(static_cast<uint8_t>(random() % 32), [&](Writer& w) {
        for (size_t n = random() % 200; n > 0; --n) w.u8(byte());
      });
    }
    ASSERT_TRUE(session_.handle(request));
    out_.clear();
  }
  sw_.flows().clear();
  b_.sent.clear();
  a_.inject(ipFrame(2));
  EXPECT_EQ(b_.sent.size(), 1u) << "the switch still forwards";
  auto echo = send(message(kEchoRequest));
  ASSERT_EQ(echo.size(), 1u);
  EXPECT_EQ(echo[0].type, kEchoReply);
}

}  // namespace
}  // namespace strata::network::testing
