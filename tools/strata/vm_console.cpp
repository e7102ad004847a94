// `strata vm console NAME`: this terminal on a daemon VM's serial console,
// over the daemon's console WebSocket. The terminal is raw while attached (so
// Ctrl-C reaches the guest); Ctrl-] leaves, as in telnet.
#include <poll.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "control/console_client.h"
#include "control/websocket.h"

namespace strata::cli {
namespace {

constexpr char kLeave = 0x1d;  // Ctrl-]
constexpr size_t kMaxServerMessage = 16 * 1024 * 1024;

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

class RawTerminal {
 public:
  RawTerminal() : active_(::isatty(0) && ::tcgetattr(0, &saved_) == 0) {
    if (!active_) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_;
};

// Runs until the user leaves, standard input ends, or the daemon closes; the reason why.
std::string relay(control::ConsoleConnection& connection) {
  using control::websocket::Opcode;
  int socket = connection.socket.get();
  auto sendFrame = [socket](Opcode opcode, std::string_view payload) {
    return writeAll(socket, control::websocket::encodeFrame(opcode, payload, true));
  };
  control::websocket::Reader reader(false, kMaxServerMessage);
  std::string received = std::move(connection.leftover);
  bool inputOpen = true;
  for (;;) {
    std::vector<control::websocket::Message> messages;
    auto violation = reader.feed(received, messages);
    received.clear();
    for (const auto& message : messages) {
      if (message.opcode == Opcode::Binary || message.opcode == Opcode::Text) writeAll(1, message.payload);
      else if (message.opcode == Opcode::Ping) sendFrame(Opcode::Pong, message.payload);
      else if (message.opcode == Opcode::Close)
        return message.payload.size() > 2 ? message.payload.substr(2) : std::string("closed by the daemon");
    }
    if (violation) return "the daemon sent a bad frame: " + violation->reason;

    pollfd waiting[2] = {{socket, POLLIN, 0}, {inputOpen ? 0 : -1, POLLIN, 0}};
    if (::poll(waiting, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return "poll failed";
    }
    char buffer[4096];
    if (waiting[1].revents) {
      ssize_t n = ::read(0, buffer, sizeof buffer);
      if (n <= 0) {
        inputOpen = false;  // piped input ended: keep showing output until the daemon closes
        continue;
      }
      std::string_view input(buffer, static_cast<size_t>(n));
      size_t leave = input.find(kLeave);
      if (!input.substr(0, leave).empty()) sendFrame(Opcode::Binary, input.substr(0, leave));
      if (leave != std::string_view::npos) {
        sendFrame(Opcode::Close, control::websocket::closePayload(1000, ""));
        return "left";
      }
    }
    if (waiting[0].revents) {
      ssize_t n = ::recv(socket, buffer, sizeof buffer, 0);
      if (n <= 0) return "the daemon closed the connection";
      received.assign(buffer, static_cast<size_t>(n));
    }
  }
}

}  // namespace

int attachVmConsole(const std::string& daemonSocket, const std::string& token, const std::string& name) {
  auto connection = control::openConsole(daemonSocket, name, token);
  if (!connection) {
    std::fprintf(stderr, "strata vm console %s: %s\n", name.c_str(), connection.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "strata: attached to %s's console (Ctrl-] leaves)\r\n", name.c_str());
  std::string why;
  {
    RawTerminal raw;
    why = relay(*connection);
  }
  std::fprintf(stderr, "\nstrata: console of %s: %s\n", name.c_str(), why.c_str());
  return 0;
}

}  // namespace strata::cli
