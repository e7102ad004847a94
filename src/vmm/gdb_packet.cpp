#include "vmm/gdb_packet.h"

namespace strata::vmm {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kDigits[] = "0123456789abcdef";

}  // namespace

void GdbPacketReader::feed(std::string_view bytes, std::vector<GdbEvent>& events) {
  for (char c : bytes) {
    switch (state_) {
      case State::Idle:
        // Between packets only '$', acks and the interrupt byte mean something; noise is skipped.
        if (c == '$') {
          payload_.clear();
          sum_ = 0;
          overflowed_ = false;
          state_ = State::Payload;
        } else if (c == '\x03') {
          events.push_back({GdbEvent::Kind::Interrupt, {}});
        } else if (c == '+') {
          events.push_back({GdbEvent::Kind::Ack, {}});
        } else if (c == '-') {
          events.push_back({GdbEvent::Kind::Nack, {}});
        }
        break;
      case State::Payload:
      case State::Overflow:
        if (c == '#') {
          state_ = State::ChecksumHigh;
        } else if (c == '$') {  // a new packet started before this one ended: this one is lost
          events.push_back({GdbEvent::Kind::BadPacket, {}});
          payload_.clear();
          sum_ = 0;
          overflowed_ = false;
          state_ = State::Payload;
        } else {
          sum_ = static_cast<uint8_t>(sum_ + static_cast<uint8_t>(c));
          if (payload_.size() < kMaxPayload) payload_.push_back(c);
          else overflowed_ = true;
        }
        break;
      case State::ChecksumHigh: {
        const int digit = hexDigit(c);
        expected_ = static_cast<uint8_t>(digit < 0 ? 0 : digit << 4);
        if (digit < 0) overflowed_ = true;  // not a checksum: the packet is bad
        state_ = State::ChecksumLow;
        break;
      }
      case State::ChecksumLow: {
        const int digit = hexDigit(c);
        const bool good = digit >= 0 && !overflowed_ && static_cast<uint8_t>(expected_ | digit) == sum_;
        if (good) events.push_back({GdbEvent::Kind::Packet, std::move(payload_)});
        else events.push_back({GdbEvent::Kind::BadPacket, {}});
        payload_.clear();
        state_ = State::Idle;
        break;
      }
    }
  }
}

std::string framePacket(std::string_view payload) {
  std::string framed = "$";
  uint8_t sum = 0;
  auto put = [&](char c) {
    framed.push_back(c);
    sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  };
  for (char c : payload) {
    if (c == '$' || c == '#' || c == '}' || c == '*') {
      put('}');
      put(static_cast<char>(c ^ 0x20));
    } else {
      put(c);
    }
  }
  framed.push_back('#');
  framed.push_back(kDigits[sum >> 4]);
  framed.push_back(kDigits[sum & 15]);
  return framed;
}

std::string toHex(const uint8_t* data, size_t length) {
  std::string hex;
  hex.reserve(length * 2);
  for (size_t i = 0; i < length; ++i) {
    hex.push_back(kDigits[data[i] >> 4]);
    hex.push_back(kDigits[data[i] & 15]);
  }
  return hex;
}

std::string toHex(std::string_view text) {
  return toHex(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

std::string toHexLittleEndian(uint64_t value, unsigned bytes) {
  uint8_t raw[8];
  for (unsigned i = 0; i < 8; ++i) raw[i] = static_cast<uint8_t>(value >> (8 * i));
  return toHex(raw, bytes);
}

std::optional<std::vector<uint8_t>> fromHex(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = hexDigit(hex[i]), low = hexDigit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes.push_back(static_cast<uint8_t>(high << 4 | low));
  }
  return bytes;
}

std::optional<uint64_t> parseHexNumber(std::string_view hex) {
  if (hex.empty() || hex.size() > 16) return std::nullopt;
  uint64_t value = 0;
  for (char c : hex) {
    const int digit = hexDigit(c);
    if (digit < 0) return std::nullopt;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  return value;
}

std::optional<uint64_t> fromHexLittleEndian(std::string_view hex, unsigned bytes) {
  if (hex.size() != 2 * bytes) return std::nullopt;
  auto raw = fromHex(hex);
  if (!raw) return std::nullopt;
  uint64_t value = 0;
  for (unsigned i = 0; i < bytes; ++i) value |= static_cast<uint64_t>((*raw)[i]) << (8 * i);
  return value;
}

}  // namespace strata::vmm
