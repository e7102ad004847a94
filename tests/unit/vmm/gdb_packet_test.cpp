// The GDB stub's packet layer on good and hostile input: framing, checksums,
// oversized and interleaved packets, noise, hex fields, endpoints, and the
// register numbering gdb-multiarch's RISC-V target description expects.
#include <gtest/gtest.h>

#include "vmm/gdb_packet.h"
#include "vmm/gdb_registers.h"
#include "vmm/gdb_stub.h"

namespace strata::vmm {
namespace {

std::vector<GdbEvent> feed(GdbPacketReader& reader, std::string_view bytes) {
  std::vector<GdbEvent> events;
  reader.feed(bytes, events);
  return events;
}

TEST(GdbPacketReader, AcceptsAPacketWithItsChecksumEvenSplitAcrossReads) {
  GdbPacketReader reader;
  EXPECT_TRUE(feed(reader, "$qSuppo").empty());
  auto events = feed(reader, "rted#37");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, GdbEvent::Kind::Packet);
  EXPECT_EQ(events[0].payload, "qSupported");
}

TEST(GdbPacketReader, RefusesWrongAndNonHexChecksums) {
  GdbPacketReader reader;
  auto events = feed(reader, "$g#00$g#zz$g#67");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, GdbEvent::Kind::BadPacket);
  EXPECT_EQ(events[1].kind, GdbEvent::Kind::BadPacket);
  EXPECT_EQ(events[2].kind, GdbEvent::Kind::Packet);
  EXPECT_EQ(events[2].payload, "g");
}

TEST(GdbPacketReader, RefusesAnOversizedPacketWithoutGrowingAndRecovers) {
  GdbPacketReader reader;
  std::string huge = "$" + std::string(GdbPacketReader::kMaxPayload * 4, 'a') + "#00";
  auto events = feed(reader, huge);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, GdbEvent::Kind::BadPacket);
  events = feed(reader, "$?#3f");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].payload, "?");
}

TEST(GdbPacketReader, SkipsNoiseAndReportsAcksAndInterrupts) {
  GdbPacketReader reader;
  auto events = feed(reader, "junk\r\n+-\x03");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, GdbEvent::Kind::Ack);
  EXPECT_EQ(events[1].kind, GdbEvent::Kind::Nack);
  EXPECT_EQ(events[2].kind, GdbEvent::Kind::Interrupt);
}

TEST(GdbPacketReader, APacketCutShortByANewOneIsBad) {
  GdbPacketReader reader;
  auto events = feed(reader, "$m80$?#3f");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, GdbEvent::Kind::BadPacket);
  EXPECT_EQ(events[1].kind, GdbEvent::Kind::Packet);
  EXPECT_EQ(events[1].payload, "?");
}

TEST(GdbFraming, ChecksumsAndEscapesWhatTheReaderTakesBack) {
  EXPECT_EQ(framePacket("OK"), "$OK#9a");
  EXPECT_EQ(framePacket(""), "$#00");
  const std::string framed = framePacket("a$b#c}d*e");
  EXPECT_EQ(framed.find_first_of("$#*", 1), framed.rfind('#'));  // only the frame's own '#'
  GdbPacketReader reader;
  auto events = feed(reader, framed);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, GdbEvent::Kind::Packet);
  EXPECT_EQ(events[0].payload, "a}\x04" "b}\x03" "c}]d}\x0a" "e");
}

TEST(GdbHex, RoundTripsAndRefusesBadDigits) {
  EXPECT_EQ(toHexLittleEndian(0x80200000, 8), "0000208000000000");
  EXPECT_EQ(fromHexLittleEndian("0000208000000000", 8), 0x80200000u);
  EXPECT_FALSE(fromHexLittleEndian("00002080", 8));
  EXPECT_FALSE(fromHex("abc"));
  EXPECT_FALSE(fromHex("zz"));
  EXPECT_FALSE(fromHex(""));
  EXPECT_EQ(parseHexNumber("ffffffff8035930e"), 0xffffffff8035930eull);
  EXPECT_FALSE(parseHexNumber("1ffffffff8035930e"));  // more than 64 bits
  EXPECT_FALSE(parseHexNumber(""));
  EXPECT_FALSE(parseHexNumber("-1"));
  EXPECT_EQ(toHex("hart 0"), "686172742030");
}

TEST(GdbEndpoint, ParsesTcpHostPortAndRefusesTheRest) {
  auto endpoint = parseGdbEndpoint("tcp:127.0.0.1:1234");
  ASSERT_TRUE(endpoint);
  EXPECT_EQ(endpoint->host, "127.0.0.1");
  EXPECT_EQ(endpoint->port, 1234);
  for (const char* bad : {"127.0.0.1:1234", "tcp:", "tcp:localhost:1", "tcp:127.0.0.1:", "tcp:127.0.0.1:99999",
                          "tcp:127.0.0.1:12x", "unix:/tmp/s"})
    EXPECT_FALSE(parseGdbEndpoint(bad)) << bad;
}

TEST(GdbTargetXml, DescribesTheFeaturesGdbChecksForRiscv) {
  const std::string& xml = gdbTargetXml();
  for (const char* part : {"<architecture>riscv:rv64</architecture>", "org.gnu.gdb.riscv.cpu", "org.gnu.gdb.riscv.fpu",
                           "org.gnu.gdb.riscv.csr", "org.gnu.gdb.riscv.virtual", "name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"32\"",
                           "name=\"fcsr\" bitsize=\"32\" type=\"int\" regnum=\"68\"", "name=\"satp\" bitsize=\"64\" type=\"int\" regnum=\"449\"",
                           "name=\"priv\" bitsize=\"64\" type=\"int\" regnum=\"4161\""})
    EXPECT_NE(xml.find(part), std::string::npos) << part;
  EXPECT_EQ(xml.find_first_of("$#}*"), std::string::npos);  // goes out unescaped
}

}  // namespace
}  // namespace strata::vmm
