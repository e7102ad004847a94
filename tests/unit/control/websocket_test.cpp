// The RFC 6455 codec: the handshake key of the RFC's own example, frames
// round-tripped through the reader (masked, fragmented, interleaved with
// control frames, split at every byte), and each forbidden frame refused with
// its close code before its payload is buffered.
#include <gtest/gtest.h>

#include "control/websocket.h"

namespace strata::control::websocket {
namespace {

std::vector<Message> readAll(Reader& reader, std::string_view bytes) {
  std::vector<Message> messages;
  auto violation = reader.feed(bytes, messages);
  EXPECT_FALSE(violation) << violation->reason;
  return messages;
}

std::optional<Violation> refusal(std::string_view bytes, bool expectMasked = true, size_t limit = 1024) {
  Reader reader(expectMasked, limit);
  std::vector<Message> messages;
  return reader.feed(bytes, messages);
}

// A frame header by hand (masked with a zero key unless told otherwise).
std::string header(uint8_t first, uint8_t second, std::string extended = "") {
  return std::string{static_cast<char>(first), static_cast<char>(second)} + extended;
}

TEST(WebSocket, AcceptKeyMatchesTheRfcExample) {
  EXPECT_EQ(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // RFC 6455 section 1.3
  EXPECT_EQ(newClientKey().size(), 24u);
  EXPECT_NE(newClientKey(), newClientKey());
}

TEST(WebSocket, MaskedFramesRoundTripAtEveryLength) {
  for (size_t size : {0ul, 1ul, 125ul, 126ul, 65535ul, 65536ul, 200000ul}) {
    std::string payload(size, 'x');
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i * 7);
    Reader reader(true, 1 << 20);
    auto messages = readAll(reader, encodeFrame(Opcode::Binary, payload, true));
    ASSERT_EQ(messages.size(), 1u) << size;
    EXPECT_EQ(messages[0].opcode, Opcode::Binary);
    EXPECT_EQ(messages[0].payload, payload) << size;
  }
  std::string frame = encodeFrame(Opcode::Text, "hello", true);
  EXPECT_EQ(frame.find("hello"), std::string::npos) << "a client's payload goes masked";
  EXPECT_EQ(encodeFrame(Opcode::Text, "hello", false), std::string("\x81\x05hello"));
}

TEST(WebSocket, ReassemblesFragmentsAroundControlFramesFedOneByteAtATime) {
  std::string unmaskedStart = header(0x01, 0x83) + std::string(4, '\0') + "abc";  // Text, not final
  std::string ping = encodeFrame(Opcode::Ping, "p", true);
  std::string middle = header(0x00, 0x82) + std::string(4, '\0') + "de";         // continuation
  std::string last = header(0x80, 0x81) + std::string(4, '\0') + "f";            // final continuation
  std::string stream = unmaskedStart + ping + middle + last;
  Reader reader(true, 1024);
  std::vector<Message> messages;
  for (char byte : stream) ASSERT_FALSE(reader.feed(std::string_view(&byte, 1), messages));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].opcode, Opcode::Ping);
  EXPECT_EQ(messages[0].payload, "p");
  EXPECT_EQ(messages[1].opcode, Opcode::Text);
  EXPECT_EQ(messages[1].payload, "abcdef");
}

TEST(WebSocket, RefusesWhatTheRfcForbids) {
  std::string key(4, '\0');
  EXPECT_EQ(refusal(header(0x81, 0x00))->reason, "frame is not masked");
  EXPECT_EQ(refusal(encodeFrame(Opcode::Text, "x", true), false)->reason, "frame is masked");
  EXPECT_EQ(refusal(header(0xc1, 0x80) + key)->code, kProtocolError);  // RSV1 without an extension
  EXPECT_EQ(refusal(header(0x83, 0x80) + key)->reason, "unknown opcode");
  EXPECT_EQ(refusal(header(0x09, 0x80) + key)->code, kProtocolError);  // a fragmented ping
  EXPECT_EQ(refusal(header(0x89, 0xfe, std::string("\x00\x7e", 2)))->code, kProtocolError);  // 126-byte ping
  EXPECT_EQ(refusal(header(0x80, 0x81) + key + "x")->reason, "continuation of nothing");
  EXPECT_EQ(refusal(header(0x01, 0x81) + key + "x" + header(0x81, 0x81) + key + "y")->code, kProtocolError);
  EXPECT_EQ(refusal(header(0x88, 0x81) + key + "x")->reason, "close payload of one byte");
}

TEST(WebSocket, RefusesAnOversizeMessageFromItsHeaderAlone) {
  // A 2^62-byte frame announced in 10 bytes: refused without waiting for (or buffering) any of it.
  auto huge = refusal(header(0x82, 0xff, std::string("\x40\0\0\0\0\0\0\0", 8)));
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->code, kTooBig);
  EXPECT_EQ(refusal(header(0x82, 0xff, std::string("\x80\0\0\0\0\0\0\0", 8)))->code, kProtocolError);
  EXPECT_EQ(refusal(header(0x82, 0xfe, std::string("\x04\x01", 2)), true, 1024)->code, kTooBig);  // 1025 bytes
  // Fragments that add up to over the limit.
  std::string key(4, '\0');
  std::string half = std::string(600, 'a');
  EXPECT_EQ(refusal(header(0x02, 0xfe, std::string("\x02\x58", 2)) + key + half + header(0x80, 0xfe, std::string("\x02\x58", 2)))
                ->code,
            kTooBig);
}

}  // namespace
}  // namespace strata::control::websocket
