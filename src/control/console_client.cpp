#include "control/console_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "control/http_client.h"
#include "control/websocket.h"

namespace strata::control {
namespace {

constexpr int kReplyTimeoutMs = 10000;
constexpr size_t kMaxReplyHead = 16 * 1024;

}  // namespace

Result<ConsoleConnection> openConsole(const std::string& daemonSocket, const std::string& vm, const std::string& token) {
  auto connected = connectUnixSocket(daemonSocket);
  if (!connected) return connected.error();
  UniqueFd fd = std::move(*connected);
  std::string key = websocket::newClientKey();
  std::string request = fmt::format(
      "GET /vms/{}/console HTTP/1.1\r\nHost: strata\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {}\r\n\r\n",
      vm, key, token);
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    return errnoError(daemonSocket);

  std::string reply;
  size_t headEnd;
  while ((headEnd = reply.find("\r\n\r\n")) == std::string::npos) {
    pollfd waiting{fd.get(), POLLIN, 0};
    char buffer[4096];
    ssize_t n = ::poll(&waiting, 1, kReplyTimeoutMs) == 1 ? ::recv(fd.get(), buffer, sizeof buffer, 0) : -1;
    if (n <= 0 || reply.size() > kMaxReplyHead) return Error{"the daemon did not answer the console request"};
    reply.append(buffer, static_cast<size_t>(n));
  }
  int status = 0;
  std::sscanf(reply.c_str(), "HTTP/1.1 %d", &status);
  if (status != 101) {
    // A refusal carries a JSON error body (Connection: close): read it to the end.
    for (char buffer[4096];;) {
      pollfd waiting{fd.get(), POLLIN, 0};
      ssize_t n = ::poll(&waiting, 1, kReplyTimeoutMs) == 1 ? ::recv(fd.get(), buffer, sizeof buffer, 0) : 0;
      if (n <= 0 || reply.size() > kMaxReplyHead) break;
      reply.append(buffer, static_cast<size_t>(n));
    }
    auto body = nlohmann::json::parse(reply.substr(headEnd + 4), nullptr, false);
    std::string message = body.is_object() && body.contains("error") ? body["error"].get<std::string>() : "no reason given";
    return Error{fmt::format("HTTP {}: {}", status, message)};
  }
  std::string expected = "Sec-WebSocket-Accept: " + websocket::acceptKey(key) + "\r\n";
  if (reply.find(expected) == std::string::npos) return Error{"the daemon's WebSocket accept key is wrong"};
  return ConsoleConnection{std::move(fd), reply.substr(headEnd + 4)};
}

}  // namespace strata::control
