// The client side of a daemon VM's console WebSocket (GET /vms/NAME/console)
// over the daemon's UNIX socket: the opening handshake, for `strata vm
// console` and the tests. A refusal is an Error naming the HTTP status and the
// daemon's message.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::control {

struct ConsoleConnection {
  UniqueFd socket;
  std::string leftover;  // frame bytes that arrived with the handshake's reply
};

Result<ConsoleConnection> openConsole(const std::string& daemonSocket, const std::string& vm, const std::string& token);

}  // namespace strata::control
