#include "storage/nbd/nbd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "storage/nbd/nbd_connection.h"

namespace strata::storage::nbd {

NbdServer::NbdServer(EventLoop& loop, std::vector<NbdExport> exports, NbdLimits limits)
    : loop_(loop), exports_(std::move(exports)), limits_(limits) {}

NbdServer::~NbdServer() { shutdown(); }

Result<void> NbdServer::setTls(TlsPolicy policy) {
  if (policy.mode != TlsMode::Off && !policy.credentials) {
    return Error{fmt::format("TLS mode {} needs credentials", tlsModeName(policy.mode))};
  }
  tls_ = std::move(policy);
  if (tls_.mode != TlsMode::Off) {
    log::info("nbd: TLS {} with {}", tlsModeName(tls_.mode), tls_.credentials->description());
  }
  return {};
}

Result<void> NbdServer::listenOn(UniqueFd socket, const std::string& description) {
  if (::listen(socket.get(), 64) != 0) return errnoError("listen on " + description);
  int fd = socket.get();
  bool tcp = description.rfind("nbd://", 0) == 0;
  auto watched = loop_.watch(fd, EPOLLIN, [this, fd, tcp](uint32_t) { acceptClients(fd, tcp); });
  if (!watched) return watched;
  listeners_.push_back(fd);
  listenerFds_.push_back(std::move(socket));
  log::info("nbd: listening on {}", description);
  return {};
}

Result<void> NbdServer::listenUnix(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return Error{fmt::format("{}: UNIX socket path must be 1 to {} bytes", path, sizeof address.sun_path - 1)};
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) return Error{path + ": exists and is not a socket"};
    ::unlink(path.c_str());  // left behind by a server that did not exit cleanly
  }
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket.valid()) return errnoError("socket");
  if (::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return errnoError(path);
  unixPath_ = path;
  return listenOn(std::move(socket), "nbd+unix:///?socket=" + path);
}

Result<uint16_t> NbdServer::listenTcp(uint16_t port) {
  int one = 1;
  UniqueFd v4(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!v4.valid()) return errnoError("socket");
  ::setsockopt(v4.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address4{};
  address4.sin_family = AF_INET;
  address4.sin_port = htons(port);
  address4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(v4.get(), reinterpret_cast<sockaddr*>(&address4), sizeof address4) != 0) {
    return errnoError(fmt::format("127.0.0.1:{}", port));
  }
  socklen_t length = sizeof address4;
  ::getsockname(v4.get(), reinterpret_cast<sockaddr*>(&address4), &length);
  uint16_t bound = ntohs(address4.sin_port);
  if (auto listening = listenOn(std::move(v4), fmt::format("nbd://127.0.0.1:{}", bound)); !listening) {
    return listening.error();
  }

  // ::1 on the same port; a host without IPv6 loopback is served on IPv4 only.
  UniqueFd v6(::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in6 address6{};
  address6.sin6_family = AF_INET6;
  address6.sin6_port = htons(bound);
  address6.sin6_addr = in6addr_loopback;
  if (v6.valid()) {
    ::setsockopt(v6.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(v6.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (!v6.valid() || ::bind(v6.get(), reinterpret_cast<sockaddr*>(&address6), sizeof address6) != 0) {
    log::debug("nbd: not listening on [::1]:{}: {}", bound, std::strerror(errno));
    return bound;
  }
  if (auto listening = listenOn(std::move(v6), fmt::format("nbd://[::1]:{}", bound)); !listening) {
    log::warn("nbd: {}", listening.error().message);
  }
  return bound;
}

void NbdServer::acceptClients(int listener, bool tcp) {
  while (true) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    UniqueFd client(::accept4(listener, reinterpret_cast<sockaddr*>(&address), &length,
                              SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client.valid()) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) log::warn("nbd: accept: {}", std::strerror(errno));
      return;
    }
    ++acceptedCount_;
    std::string peer = fmt::format("client #{}", acceptedCount_);
    if (tcp) {
      int one = 1;
      ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      char text[INET6_ADDRSTRLEN] = "?";
      uint16_t port = 0;
      if (address.ss_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&address);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        port = ntohs(in->sin_port);
      } else if (address.ss_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        port = ntohs(in6->sin6_port);
      }
      peer += fmt::format(" ({}:{})", text, port);
    }
    if (connections_.size() >= limits_.maxConnections) {
      // Closed before the greeting: the client sees the connection end at once instead of waiting.
      log::warn("nbd: refusing {}: the connection limit ({}) is reached", peer, limits_.maxConnections);
      continue;
    }
    if (auto served = serveConnection(std::move(client), peer); !served) {
      log::warn("nbd: {}: {}", peer, served.error().message);
    }
  }
}

Result<void> NbdServer::serveConnection(UniqueFd socket, std::string peer) {
  NbdConnection::Context context{&loop_, &exports_, &limits_, &tls_,
                                 [this](NbdConnection* closed) { onConnectionClosed(closed); }};
  auto connection = std::make_shared<NbdConnection>(std::move(context), std::move(socket), std::move(peer));
  log::debug("nbd: {} connected", connection->peer());
  connections_.emplace(connection.get(), connection);
  if (auto started = connection->start(); !started) {
    connections_.erase(connection.get());
    return started;
  }
  return {};
}

void NbdServer::onConnectionClosed(NbdConnection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  if (it->second->inflight() > 0) draining_.push_back(it->second);
  connections_.erase(it);  // the caller holds its own reference while it unwinds
}

bool NbdServer::idle() {
  std::erase_if(draining_, [](const auto& connection) { return connection->inflight() == 0; });
  return connections_.empty() && draining_.empty();
}

void NbdServer::shutdown() {
  for (int fd : listeners_) loop_.unwatch(fd);
  listeners_.clear();
  listenerFds_.clear();
  if (!unixPath_.empty()) {
    ::unlink(unixPath_.c_str());
    unixPath_.clear();
  }
  std::vector<std::shared_ptr<NbdConnection>> open;
  for (auto& [pointer, connection] : connections_) open.push_back(connection);
  for (auto& connection : open) connection->close("server shutting down");
}

}  // namespace strata::storage::nbd
