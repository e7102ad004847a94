#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "network/ethernet.h"
#include "network/offload.h"
#include "network/switch.h"
#include "switch_test_util.h"
#include "tcp_packets.h"

namespace strata::network::testing {
namespace {

std::array<uint8_t, kVirtioNetHeaderBytes> headerBytes(uint8_t flags, uint8_t gsoType, uint16_t hdrLen,
                                                       uint16_t gsoSize, uint16_t start, uint16_t offset) {
  return {flags, gsoType, static_cast<uint8_t>(hdrLen), static_cast<uint8_t>(hdrLen >> 8),
          static_cast<uint8_t>(gsoSize), static_cast<uint8_t>(gsoSize >> 8), static_cast<uint8_t>(start),
          static_cast<uint8_t>(start >> 8), static_cast<uint8_t>(offset), static_cast<uint8_t>(offset >> 8)};
}

TEST(VirtioNetHeader, DecodesWhatLinuxSendsForTso4AndEncodesItBack) {
  auto header = headerBytes(1, 1, 66, 1448, 34, 16);
  auto offload = decodeVirtioNetHeader(header, 9000);
  ASSERT_TRUE(offload) << offload.error().message;
  EXPECT_TRUE(offload->needsChecksum);
  EXPECT_EQ(offload->gso, FrameOffload::Gso::Tcp4);
  EXPECT_EQ(offload->headerBytes, 66);
  EXPECT_EQ(offload->segmentBytes, 1448);
  EXPECT_EQ(offload->checksumStart, 34);
  EXPECT_EQ(offload->checksumOffset, 16);
  std::array<uint8_t, kVirtioNetHeaderBytes> back{};
  encodeVirtioNetHeader(*offload, back);
  EXPECT_EQ(back, header);
}

TEST(VirtioNetHeader, MalformedHeadersAreRefused) {
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(0x80, 0, 0, 0, 0, 0), 100)) << "unknown flag";
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(1, 3, 42, 1000, 34, 6), 2000)) << "UFO is not offered";
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(1, 0x81, 66, 1448, 34, 16), 2000)) << "ECN is not offered";
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(1, 0, 0, 0, 90, 9), 100)) << "checksum field past the end";
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(1, 0, 0, 0, 0xffff, 0xffff), 100)) << "no 16-bit wrap";
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(0, 1, 66, 1448, 0, 0), 2000)) << "GSO without NEEDS_CSUM";
  EXPECT_FALSE(decodeVirtioNetHeader(headerBytes(1, 4, 86, 0, 54, 16), 2000)) << "gso_size 0";
  EXPECT_TRUE(decodeVirtioNetHeader(headerBytes(1, 0, 0, 0, 34, 16), 52)) << "field ends exactly at the end";
}

TEST(SoftwareChecksum, CompletesTcpOverIpv4AndIpv6) {
  for (bool ipv6 : {false, true}) {
    auto frame = tcpFrame(ipv6, 333);  // odd length: the last byte is padded
    EXPECT_FALSE(tcpChecksumVerifies(frame));
    FrameOffload offload = checksumOffload(ipv6);
    ASSERT_TRUE(completeChecksum(frame, offload));
    EXPECT_TRUE(tcpChecksumVerifies(frame)) << (ipv6 ? "IPv6" : "IPv4");
    EXPECT_TRUE(offload.checksumValid);
    EXPECT_FALSE(offload.needsChecksum);
  }
}

TEST(SoftwareChecksum, KnownUdpDatagram) {
  // 10.0.0.1:1234 -> 10.0.0.2:5678, payload "hi": the RFC 768 checksum is 0x686e.
  std::vector<uint8_t> frame(kIp + 20 + 10, 0);
  storeBe16(frame.data() + 12, kEtherTypeIpv4);
  uint8_t* udp = frame.data() + kIp + 20;
  storeBe16(udp, 1234), storeBe16(udp + 2, 5678), storeBe16(udp + 4, 10);
  udp[8] = 'h', udp[9] = 'i';
  // Pseudo-header sum: 0x0a00+0x0001+0x0a00+0x0002+17+10 = 0x141e.
  storeBe16(udp + 6, 0x141e);
  FrameOffload offload;
  offload.needsChecksum = true;
  offload.checksumStart = kIp + 20;
  offload.checksumOffset = 6;
  ASSERT_TRUE(completeChecksum(frame, offload));
  // 0x04d2 + 0x162e + 0x000a + 0x141e (field) + 0x6869 = 0x9791 -> ~ = 0x686e.
  EXPECT_EQ(loadBe16(udp + 6), 0x686e);
}

TEST(SoftwareSegmentation, CutsTso4IntoMssSegments) {
  auto frame = tcpFrame(false, 10000, 0x19);  // PSH|FIN|ACK
  std::vector<std::vector<uint8_t>> segments;
  ASSERT_TRUE(segmentTcp(frame, tsoOffload(false, 1448), [&](std::span<const uint8_t> s, const FrameOffload& o) {
    EXPECT_TRUE(o.checksumValid);
    segments.emplace_back(s.begin(), s.end());
  }));
  ASSERT_EQ(segments.size(), 7u);  // 6 x 1448 + 1312
  std::vector<uint8_t> payload;
  for (size_t i = 0; i < segments.size(); ++i) {
    const auto& s = segments[i];
    const uint8_t* ip = s.data() + kIp;
    size_t chunk = i < 6 ? 1448 : 10000 - 6 * 1448;
    ASSERT_EQ(s.size(), kIp + 40 + chunk);
    EXPECT_EQ(loadBe16(ip + 2), 40 + chunk);
    EXPECT_EQ(loadBe16(ip + 4), 0x1234 + i);
    EXPECT_EQ(checksumFold(checksumAdd(0, {ip, 20})), 0xffff) << "IP header checksum of segment " << i;
    EXPECT_TRUE(tcpChecksumVerifies(s)) << "segment " << i;
    uint32_t seq = uint32_t{ip[24]} << 24 | uint32_t{ip[25]} << 16 | uint32_t{ip[26]} << 8 | ip[27];
    EXPECT_EQ(seq, 0x10203040u + 1448 * i);
    EXPECT_EQ(ip[33], i == 6 ? 0x19 : 0x10) << "FIN and PSH only on the last segment";
    payload.insert(payload.end(), s.begin() + kIp + 40, s.end());
  }
  EXPECT_EQ(payload, std::vector<uint8_t>(frame.begin() + kIp + 40, frame.end()));
}

TEST(SoftwareSegmentation, CutsTso6IntoMssSegments) {
  auto frame = tcpFrame(true, 3000);
  std::vector<std::vector<uint8_t>> segments;
  auto keep = [&](std::span<const uint8_t> s, const FrameOffload&) { segments.emplace_back(s.begin(), s.end()); };
  ASSERT_TRUE(segmentTcp(frame, tsoOffload(true, 1428), keep));
  ASSERT_EQ(segments.size(), 3u);
  for (const auto& s : segments) {
    EXPECT_EQ(loadBe16(s.data() + kIp + 4), s.size() - kIp - 40);
    EXPECT_TRUE(tcpChecksumVerifies(s));
  }
}

TEST(SoftwareSegmentation, FramesThatDoNotMatchTheirGsoTypeAreRefused) {
  auto emitNothing = [](std::span<const uint8_t>, const FrameOffload&) { ADD_FAILURE() << "emitted a segment"; };
  auto v6 = tcpFrame(true, 3000);
  FrameOffload claimsV4 = tsoOffload(true, 1000);
  claimsV4.gso = FrameOffload::Gso::Tcp4;
  EXPECT_FALSE(segmentTcp(v6, claimsV4, emitNothing));
  auto v4 = tcpFrame(false, 3000);
  v4[kIp] = 0x44;  // IHL 4: shorter than an IPv4 header
  EXPECT_FALSE(segmentTcp(v4, tsoOffload(false, 1000), emitNothing));
  v4 = tcpFrame(false, 3000);
  v4[kIp + 9] = 17;  // UDP
  EXPECT_FALSE(segmentTcp(v4, tsoOffload(false, 1000), emitNothing));
  v4 = tcpFrame(false, 3000);
  v4[kIp + 20 + 12] = 0xf0;  // TCP data offset 60 bytes: fine, but truncate the frame below it
  v4.resize(kIp + 20 + 40);
  EXPECT_FALSE(segmentTcp(v4, tsoOffload(false, 1000), emitNothing));
  std::vector<uint8_t> runt(20, 0);
  FrameOffload tiny = tsoOffload(false, 1000);
  tiny.checksumStart = 0, tiny.checksumOffset = 0;
  EXPECT_FALSE(segmentTcp(runt, tiny, emitNothing));
}

// ------------------------------------------------------------ through the switch

class SwitchOffloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    takesAll.accepts = OffloadCaps::all();
    ASSERT_TRUE(sw.addPort("vm1", vm1, PortVlans::access(10)));
    ASSERT_TRUE(sw.addPort("vm2", vm2, PortVlans::access(10)));
    ASSERT_TRUE(sw.addPort("plain", plain, PortVlans::access(10)));
    std::array<uint16_t, 1> vlans{10};
    ASSERT_TRUE(sw.addPort("trunk", trunk, PortVlans::trunk(vlans)));
    vm2.accepts = OffloadCaps::all();
    trunk.accepts = OffloadCaps::all();
  }
  RecordingPort vm1, vm2, plain, trunk, takesAll;
  Switch sw;
};

TEST_F(SwitchOffloadTest, TsoFrameCrossesAsOneMessageOrIsSegmentedForAPlainPort) {
  auto frame = tcpFrame(false, 60000);
  vm1.inject(frame, tsoOffload(false, 1448));  // flooded: destination not learned
  ASSERT_EQ(vm2.sent.size(), 1u);
  EXPECT_EQ(vm2.sent[0], frame);
  EXPECT_EQ(vm2.offloads[0], tsoOffload(false, 1448));
  ASSERT_EQ(plain.sent.size(), 42u);  // ceil(60000 / 1448)
  for (const auto& segment : plain.sent) EXPECT_TRUE(tcpChecksumVerifies(segment));
  EXPECT_EQ(sw.port(3)->counters.txPackets, 1u);
  // The trunk gets the frame tagged; checksum start and header length move with the tag.
  ASSERT_EQ(trunk.sent.size(), 1u);
  EXPECT_EQ(trunk.sent[0].size(), frame.size() + 4);
  EXPECT_EQ(trunk.offloads[0].checksumStart, kIp + 20 + 4);
  EXPECT_EQ(trunk.offloads[0].headerBytes, kIp + 40 + 4);
}

TEST_F(SwitchOffloadTest, TagPopOnTheWayToAnAccessPortMovesChecksumStartBack) {
  auto frame = tcpFrame(false, 500);
  std::vector<uint8_t> tagged(frame.begin(), frame.begin() + 12);
  tagged.insert(tagged.end(), {0x81, 0x00, 0x00, 10});
  tagged.insert(tagged.end(), frame.begin() + 12, frame.end());
  FrameOffload offload = checksumOffload(false);
  offload.checksumStart += 4;
  trunk.inject(tagged, offload);
  ASSERT_EQ(vm2.sent.size(), 1u);
  EXPECT_EQ(vm2.sent[0], frame);
  EXPECT_EQ(vm2.offloads[0], checksumOffload(false));
  ASSERT_EQ(plain.sent.size(), 1u);  // completed in software
  EXPECT_TRUE(tcpChecksumVerifies(plain.sent[0]));
  EXPECT_TRUE(plain.offloads[0].checksumValid);
}

TEST_F(SwitchOffloadTest, BadOffloadsAreDroppedAndCounted) {
  auto frame = tcpFrame(false, 500);
  FrameOffload inL2 = checksumOffload(false);
  inL2.checksumStart = 6;  // inside the MAC header: a tag pop would move it before the frame
  vm1.inject(frame, inL2);
  FrameOffload pastEnd = checksumOffload(false);
  pastEnd.checksumOffset = 600;
  vm1.inject(frame, pastEnd);
  EXPECT_EQ(sw.drops().badOffload, 2u);
  EXPECT_TRUE(vm2.sent.empty());
  // Headers that only fail when segmented for the plain port: the others still get it.
  auto bogus = tcpFrame(false, 3000);
  bogus[kIp + 9] = 17;
  vm1.inject(bogus, tsoOffload(false, 1000));
  EXPECT_EQ(vm2.sent.size(), 1u);
  EXPECT_TRUE(plain.sent.empty());
  EXPECT_EQ(sw.drops().badOffload, 3u);
}

}  // namespace
}  // namespace strata::network::testing
