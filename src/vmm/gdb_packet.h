// The GDB remote serial protocol's framing: "$payload#cs" packets with a
// modulo-256 checksum, '+'/'-' acknowledgements and the bare 0x03 interrupt.
// GdbPacketReader turns a client's untrusted byte stream into events (a bad
// checksum or an oversized packet becomes a BadPacket, never a crash), and
// framePacket() builds what the stub sends back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::vmm {

struct GdbEvent {
  enum class Kind { Packet, Interrupt, BadPacket, Ack, Nack } kind;
  std::string payload;  // Packet: the payload, escapes left as sent
};

class GdbPacketReader {
 public:
  // Longest payload accepted (what the stub announces as PacketSize).
  static constexpr size_t kMaxPayload = 0x4000;

  // Appends the events the bytes complete; a packet may span calls.
  void feed(std::string_view bytes, std::vector<GdbEvent>& events);

 private:
  enum class State { Idle, Payload, Overflow, ChecksumHigh, ChecksumLow } state_ = State::Idle;
  std::string payload_;
  uint8_t sum_ = 0;
  uint8_t expected_ = 0;
  bool overflowed_ = false;
};

// "$" + payload ('$', '#', '}' and '*' escaped) + "#" + two hex digits.
std::string framePacket(std::string_view payload);

// Hex helpers for packet fields.
std::string toHex(const uint8_t* data, size_t length);
std::string toHex(std::string_view text);
// Little-endian target byte order, `bytes` wide.
std::string toHexLittleEndian(uint64_t value, unsigned bytes);
// Empty input, odd length or a non-hex digit: nullopt.
std::optional<std::vector<uint8_t>> fromHex(std::string_view hex);
std::optional<uint64_t> parseHexNumber(std::string_view hex);
std::optional<uint64_t> fromHexLittleEndian(std::string_view hex, unsigned bytes);

}  // namespace strata::vmm
