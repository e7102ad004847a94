// WebSocket (RFC 6455) framing for the daemon's console: the handshake's
// accept key, frame encoding, and an incremental reader that turns one
// direction's bytes into whole messages and refuses what the RFC forbids
// (with the close code to send) before buffering more than its size limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::control::websocket {

enum class Opcode : uint8_t { Continuation = 0, Text = 1, Binary = 2, Close = 8, Ping = 9, Pong = 10 };

constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kTooBig = 1009;

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string acceptKey(std::string_view clientKey);
// A client's Sec-WebSocket-Key: 16 random bytes in base64.
std::string newClientKey();

// One final frame; clients mask (a fresh random key), servers do not.
std::string encodeFrame(Opcode opcode, std::string_view payload, bool masked);
// A close frame's payload: status code then reason.
std::string closePayload(uint16_t code, std::string_view reason);

struct Message {
  Opcode opcode;  // Text, Binary (reassembled from fragments), Close, Ping or Pong
  std::string payload;
};

struct Violation {
  uint16_t code;
  std::string reason;
};

class Reader {
 public:
  // A server reads masked frames only, a client unmasked ones only.
  Reader(bool expectMasked, size_t maxMessage) : expectMasked_(expectMasked), maxMessage_(maxMessage) {}

  // Consumes `data`; appends every message completed by it to `out`. After a
  // violation the stream is unusable: the caller closes with its code.
  std::optional<Violation> feed(std::string_view data, std::vector<Message>& out);

 private:
  std::optional<Violation> takeFrame(std::vector<Message>& out, bool& complete);

  bool expectMasked_;
  size_t maxMessage_;
  std::string buffer_;       // bytes of frames not yet complete
  bool fragmenting_ = false;  // a Text/Binary message is waiting for its continuation frames
  Opcode fragmentOpcode_ = Opcode::Binary;
  std::string fragments_;
};

}  // namespace strata::control::websocket
