#include "network/openflow_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>

#include <fmt/core.h>

#include "base/log.h"

namespace strata::network {
namespace {

constexpr size_t kMaxConnections = 16;
constexpr size_t kReadChunkBytes = 64 * 1024;
// Past this much unsent output a connection's requests wait unread (its replies are bounded
// by this plus one reply), and past kPacketInBacklog its PACKET_INs are dropped.
constexpr size_t kPauseInputBytes = 1024 * 1024;
constexpr size_t kPacketInBacklog = 256 * 1024;

Result<uint16_t> parsePort(std::string_view text) {
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || value > 65535)
    return Error{fmt::format("'{}' is not a TCP port", text)};
  return static_cast<uint16_t>(value);
}

}  // namespace

struct OpenFlowServer::Connection {
  UniqueFd fd;
  std::vector<uint8_t> input, output;
  size_t written = 0;  // of output
  uint32_t events = 0;
  uint64_t sequence = 0;  // order of acceptance
  std::unique_ptr<OpenFlowSession> session;
  size_t pending() const { return output.size() - written; }
};

OpenFlowServer::OpenFlowServer(Switch& fabric, std::string switchName, EventLoop& loop)
    : switch_(fabric), name_(std::move(switchName)), loop_(loop) {}

OpenFlowServer::~OpenFlowServer() {
  switch_.setControllerHandler(nullptr);
  for (auto& [fd, connection] : connections_) loop_.unwatch(fd);
  if (listener_.valid()) loop_.unwatch(listener_.get());
}

Result<std::unique_ptr<OpenFlowServer>> OpenFlowServer::listen(std::string_view target, Switch& fabric,
                                                               std::string switchName, EventLoop& loop) {
  if (target.rfind("ptcp:", 0) != 0) return Error{fmt::format("--openflow {}: expected ptcp:PORT[:IP]", target)};
  std::string_view rest = target.substr(5);
  std::string_view portText = rest, ipText = "127.0.0.1";
  if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    std::string_view first = rest.substr(0, colon), second = rest.substr(colon + 1);
    bool ipFirst = first.find('.') != std::string_view::npos;
    portText = ipFirst ? second : first;
    ipText = ipFirst ? first : second;
  }
  if (portText.empty()) portText = "6653";
  auto port = parsePort(portText);
  if (!port) return Error{fmt::format("--openflow {}: {}", target, port.error().message)};
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(*port);
  if (::inet_pton(AF_INET, std::string(ipText).c_str(), &address.sin_addr) != 1)
    return Error{fmt::format("--openflow {}: '{}' is not an IPv4 address", target, ipText)};

  std::unique_ptr<OpenFlowServer> server(new OpenFlowServer(fabric, std::move(switchName), loop));
  server->listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int fd = server->listener_.get();
  if (fd < 0) return errnoError("socket");
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return errnoError(fmt::format("--openflow {}: bind", target));
  if (::listen(fd, 16) != 0) return errnoError("listen");
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  server->ip_ = address.sin_addr.s_addr;
  server->port_ = ntohs(address.sin_port);
  OpenFlowServer* self = server.get();
  if (auto watched = loop.watch(fd, EPOLLIN, [self](uint32_t) { self->accept(); }); !watched) return watched.error();
  fabric.setControllerHandler([self](const PacketToController& packet) {
    self->toControllers([&packet](OpenFlowSession& session) { session.packetIn(packet); }, true);
  });
  return server;
}

std::string OpenFlowServer::address() const {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &ip_, text, sizeof text);
  return fmt::format("{}:{}", text, port_);
}

void OpenFlowServer::accept() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) return;
    if (connections_.size() >= kMaxConnections && !evictOneSilent()) {
      log::warn("switch {}: too many OpenFlow connections; refusing one", name_);
      continue;
    }
    int on = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    int raw = fd.get();
    auto connection = std::make_unique<Connection>();
    connection->fd = std::move(fd);
    connection->session = std::make_unique<OpenFlowSession>(switch_, name_, connection->output);
    connection->session->start();
    connection->events = EPOLLIN | EPOLLOUT;
    connection->sequence = nextSequence_++;
    if (!loop_.watch(raw, connection->events, [this, raw](uint32_t events) { onEvent(raw, events); })) continue;
    connections_.emplace(raw, std::move(connection));
  }
}

bool OpenFlowServer::evictOneSilent() {
  int oldest = -1;
  uint64_t oldestSequence = UINT64_MAX;
  for (const auto& [fd, connection] : connections_) {
    if (connection->session->negotiated() || connection->sequence >= oldestSequence) continue;
    oldest = fd;
    oldestSequence = connection->sequence;
  }
  if (oldest < 0) return false;
  close(oldest);
  return true;
}

void OpenFlowServer::close(int fd) {
  if (!connections_.count(fd)) return;
  loop_.unwatch(fd);
  connections_.erase(fd);  // closes the socket
}

void OpenFlowServer::onEvent(int fd, uint32_t events) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& connection = *it->second;
  if (events & (EPOLLERR | EPOLLHUP)) return close(fd);
  if ((events & EPOLLIN) && connection.pending() < kPauseInputBytes) {
    size_t had = connection.input.size();
    connection.input.resize(had + kReadChunkBytes);
    ssize_t got = ::recv(fd, connection.input.data() + had, kReadChunkBytes, MSG_DONTWAIT);
    connection.input.resize(had + static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return close(fd);
  }
  for (;;) {
    bool paused = connection.pending() >= kPauseInputBytes;
    size_t before = connection.input.size();
    if (!processInput(connection) || !flush(connection)) return close(fd);
    // Requests left waiting while replies backed up go on once the socket took those replies.
    bool progressed = connection.input.size() != before;
    bool resumable = paused && connection.pending() < kPauseInputBytes;
    if ((!progressed && !resumable) || connection.pending() >= kPauseInputBytes) break;
  }
  watchFor(connection);
}

bool OpenFlowServer::processInput(Connection& connection) {
  bool open = true;
  // Pausing once replies back up: a client that never reads cannot grow them.
  size_t used = connection.session->consume(
      connection.input, [&connection] { return connection.pending() < kPauseInputBytes; }, open);
  connection.input.erase(connection.input.begin(), connection.input.begin() + static_cast<ptrdiff_t>(used));
  if (!open) flush(connection);  // the refusal (e.g. HELLO_FAILED) goes out before the close, if it can
  return open;
}

bool OpenFlowServer::flush(Connection& connection) {
  while (connection.pending() > 0) {
    ssize_t sent = ::send(connection.fd.get(), connection.output.data() + connection.written, connection.pending(),
                          MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && errno == EAGAIN) break;
    if (sent <= 0) return false;
    connection.written += static_cast<size_t>(sent);
  }
  if (connection.written == connection.output.size()) {
    connection.output.clear();
    connection.written = 0;
  } else if (connection.written > kPauseInputBytes) {
    connection.output.erase(connection.output.begin(),
                            connection.output.begin() + static_cast<ptrdiff_t>(connection.written));
    connection.written = 0;
  }
  return true;
}

void OpenFlowServer::watchFor(Connection& connection) {
  uint32_t events = 0;
  if (connection.pending() < kPauseInputBytes) events |= EPOLLIN;
  if (connection.pending() > 0) events |= EPOLLOUT;
  if (events != connection.events && loop_.modify(connection.fd.get(), events)) connection.events = events;
}

void OpenFlowServer::portChanged(bool added, const Switch::PortInfo& port) {
  toControllers([&](OpenFlowSession& session) { session.portStatus(added, port); }, false);
}

void OpenFlowServer::toControllers(const std::function<void(OpenFlowSession&)>& queue, bool dropWhenBehind) {
  for (auto& [fd, connection] : connections_) {
    if (!connection->session->negotiated()) continue;
    if (dropWhenBehind && connection->pending() > kPacketInBacklog) {
      ++droppedPacketIns_;
      continue;
    }
    queue(*connection->session);
    watchFor(*connection);  // written when the socket can take it, never here on the data path
  }
}

}  // namespace strata::network
