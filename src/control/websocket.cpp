#include "control/websocket.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <cstring>
#include <utility>

#include "base/random.h"

namespace strata::control::websocket {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 section 1.3

bool isControl(Opcode opcode) { return static_cast<uint8_t>(opcode) >= 8; }

bool isKnown(uint8_t opcode) { return opcode <= 2 || (opcode >= 8 && opcode <= 10); }

std::string base64(const unsigned char* bytes, size_t size) {
  std::string text(BASE64_ENCODE_RAW_LENGTH(size), '\0');
  base64_encode_raw(text.data(), size, bytes);
  return text;
}

}  // namespace

std::string acceptKey(std::string_view clientKey) {
  std::string text = std::string(clientKey) + std::string(kGuid);
  unsigned char digest[SHA1_DIGEST_SIZE];
  sha1_ctx context;
  sha1_init(&context);
  sha1_update(&context, text.size(), reinterpret_cast<const uint8_t*>(text.data()));
  sha1_digest(&context, sizeof digest, digest);
  return base64(digest, sizeof digest);
}

std::string newClientKey() {
  unsigned char nonce[16];
  fillRandom(nonce, sizeof nonce);
  return base64(nonce, sizeof nonce);
}

std::string encodeFrame(Opcode opcode, std::string_view payload, bool masked) {
  std::string frame;
  frame.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(opcode)));
  uint8_t maskBit = masked ? 0x80 : 0;
  size_t size = payload.size();
  if (size < 126) {
    frame.push_back(static_cast<char>(maskBit | size));
  } else if (size <= 0xffff) {
    frame.push_back(static_cast<char>(maskBit | 126));
    for (int shift = 8; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(size >> shift));
  } else {
    frame.push_back(static_cast<char>(maskBit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(size >> shift));
  }
  unsigned char key[4] = {};
  if (masked) {
    fillRandom(key, sizeof key);
    frame.append(reinterpret_cast<const char*>(key), sizeof key);
  }
  size_t start = frame.size();
  frame.append(payload);
  if (masked)
    for (size_t i = 0; i < size; ++i) frame[start + i] = static_cast<char>(frame[start + i] ^ key[i % 4]);
  return frame;
}

std::string closePayload(uint16_t code, std::string_view reason) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  payload.append(reason.substr(0, 123));  // a control frame carries at most 125 bytes
  return payload;
}

std::optional<Violation> Reader::feed(std::string_view data, std::vector<Message>& out) {
  buffer_.append(data);
  for (bool complete = true; complete;)
    if (auto violation = takeFrame(out, complete)) return violation;
  return std::nullopt;
}

// Takes one frame off the buffer if it is all there (complete = true), after
// checking its header as soon as the header is there.
std::optional<Violation> Reader::takeFrame(std::vector<Message>& out, bool& complete) {
  complete = false;
  const auto* bytes = reinterpret_cast<const uint8_t*>(buffer_.data());
  size_t have = buffer_.size();
  if (have < 2) return std::nullopt;
  bool fin = bytes[0] & 0x80;
  if (bytes[0] & 0x70) return Violation{kProtocolError, "reserved bits set (no extension was agreed)"};
  uint8_t rawOpcode = bytes[0] & 0x0f;
  if (!isKnown(rawOpcode)) return Violation{kProtocolError, "unknown opcode"};
  auto opcode = static_cast<Opcode>(rawOpcode);
  bool masked = bytes[1] & 0x80;
  if (masked != expectMasked_) return Violation{kProtocolError, masked ? "frame is masked" : "frame is not masked"};
  uint64_t length = bytes[1] & 0x7f;
  size_t header = 2;
  if (length >= 126) {
    size_t extra = length == 126 ? 2 : 8;
    if (have < header + extra) return std::nullopt;
    length = 0;
    for (size_t i = 0; i < extra; ++i) length = length << 8 | bytes[header + i];
    header += extra;
    if (length >> 63) return Violation{kProtocolError, "payload length has its top bit set"};
  }
  if (isControl(opcode) && (!fin || length > 125))
    return Violation{kProtocolError, "control frame fragmented or over 125 bytes"};
  if (!isControl(opcode)) {
    if (opcode == Opcode::Continuation && !fragmenting_) return Violation{kProtocolError, "continuation of nothing"};
    if (opcode != Opcode::Continuation && fragmenting_)
      return Violation{kProtocolError, "new message before the last one's final fragment"};
    if (length > maxMessage_ || fragments_.size() + length > maxMessage_)
      return Violation{kTooBig, "message over " + std::to_string(maxMessage_) + " bytes"};
  }
  if (masked) header += 4;
  if (have < header + length) return std::nullopt;

  std::string payload = buffer_.substr(header, length);
  if (masked)
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ bytes[header - 4 + i % 4]);
  buffer_.erase(0, header + length);
  complete = true;
  if (isControl(opcode)) {
    if (opcode == Opcode::Close && payload.size() == 1) return Violation{kProtocolError, "close payload of one byte"};
    out.push_back({opcode, std::move(payload)});
    return std::nullopt;
  }
  if (opcode != Opcode::Continuation) fragmentOpcode_ = opcode;
  fragments_ += payload;
  fragmenting_ = !fin;
  if (fin) out.push_back({fragmentOpcode_, std::exchange(fragments_, {})});
  return std::nullopt;
}

}  // namespace strata::control::websocket
