// The daemon's WebSocket reader (control::websocket::Reader) on a client's
// bytes, fed whole and split where the first byte says: both ways must give
// the same messages and the same verdict, and no message may exceed the limits.
#include <cstdlib>
#include <string>

#include "control/websocket.h"
#include "fuzz_targets.h"

namespace strata::fuzz {
namespace {

constexpr size_t kLimit = 4096;

void require(bool invariant) {
  if (!invariant) std::abort();
}

struct Outcome {
  std::vector<control::websocket::Message> messages;
  std::optional<control::websocket::Violation> violation;
};

Outcome readIn(std::string_view bytes, size_t split) {
  control::websocket::Reader reader(true, kLimit);
  Outcome outcome;
  outcome.violation = reader.feed(bytes.substr(0, split), outcome.messages);
  if (!outcome.violation) outcome.violation = reader.feed(bytes.substr(split), outcome.messages);
  return outcome;
}

}  // namespace

int websocketOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  Outcome whole = readIn(bytes, bytes.size()), split = readIn(bytes, data[0] % (bytes.size() + 1));
  require(whole.violation.has_value() == split.violation.has_value());
  if (whole.violation) require(whole.violation->code == split.violation->code);
  require(whole.messages.size() == split.messages.size());
  for (size_t i = 0; i < whole.messages.size(); ++i) {
    const auto& message = whole.messages[i];
    require(message.opcode == split.messages[i].opcode && message.payload == split.messages[i].payload);
    bool control = static_cast<uint8_t>(message.opcode) >= 8;
    require(message.payload.size() <= (control ? 125 : kLimit));
    require(message.opcode != control::websocket::Opcode::Continuation);
  }
  return 0;
}

}  // namespace strata::fuzz
