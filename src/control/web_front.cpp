#include "control/web_front.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "control/http_client.h"
#include "control/token.h"
#include "control/vm_spec.h"
#include "control/websocket.h"
#include "storage/nbd/nbd_tls.h"

namespace strata::control {

struct RequestHead {
  std::string method, path;
  std::map<std::string, std::string> headers;  // names in lower case

  std::string header(const std::string& name) const {
    auto found = headers.find(name);
    return found == headers.end() ? std::string{} : found->second;
  }
};

namespace {

constexpr int kHeadTimeoutMs = 10000;
constexpr int kSendTimeoutS = 10;
constexpr int kHandshakeTimeoutMs = 10000;
constexpr size_t kMaxTlsBacklog = 256 * 1024;  // encrypted bytes a TLS client has not taken yet

using storage::nbd::TlsSession;

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string trim(const std::string& text) {
  size_t start = text.find_first_not_of(" \t"), end = text.find_last_not_of(" \t\r");
  return start == std::string::npos ? std::string{} : text.substr(start, end - start + 1);
}

// "a, b ,c" -> {"a", "b", "c"}
std::vector<std::string> commaList(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  for (size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1)
    items.push_back(trim(text.substr(start, comma - start)));
  items.push_back(trim(text.substr(start)));
  return items;
}

std::optional<RequestHead> parseHead(const std::string& head) {
  RequestHead request;
  size_t lineEnd = head.find("\r\n");
  std::string line = head.substr(0, lineEnd);
  size_t space1 = line.find(' '), space2 = line.rfind(' ');
  if (space1 == std::string::npos || space2 == space1) return std::nullopt;
  request.method = line.substr(0, space1);
  std::string target = line.substr(space1 + 1, space2 - space1 - 1);
  request.path = target.substr(0, target.find('?'));
  for (size_t start = lineEnd + 2; start < head.size();) {
    size_t end = head.find("\r\n", start);
    if (end == std::string::npos || end == start) break;
    std::string field = head.substr(start, end - start);
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      std::string& value = request.headers[lower(field.substr(0, colon))];
      value += (value.empty() ? "" : ", ") + trim(field.substr(colon + 1));
    }
    start = end + 2;
  }
  return request;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void sendError(int fd, int status, const std::string& message) {
  static const std::map<int, const char*> reasons = {{400, "Bad Request"}, {401, "Unauthorized"}, {404, "Not Found"},
                                                     {409, "Conflict"},    {426, "Upgrade Required"},
                                                     {503, "Service Unavailable"}};
  // Replaced, not thrown on: the message may quote a client's bytes that are not UTF-8.
  std::string body = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string extra = status == 401 ? "WWW-Authenticate: Bearer\r\n" : status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "";
  sendAll(fd, fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Connection: "
                          "close\r\n\r\n{}",
                          status, reasons.at(status), body.size(), extra, body));
}

// Reads up to the end of the request head (or kMaxHead bytes, the peer's end, a timeout).
std::string readHead(int fd, bool& complete) {
  std::string head;
  complete = false;
  char buffer[4096];
  while (head.size() < WebFront::kMaxHead) {
    pollfd waiting{fd, POLLIN, 0};
    if (::poll(&waiting, 1, kHeadTimeoutMs) <= 0) break;
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    head.append(buffer, static_cast<size_t>(n));
    if (head.find("\r\n\r\n") != std::string::npos) {
      complete = true;
      break;
    }
  }
  return head;
}

// The token of a console request: "Authorization: Bearer T", or, from a
// browser (which cannot set headers on a WebSocket), the subprotocol "bearer.T".
std::string consoleToken(const RequestHead& request) {
  std::string authorization = request.header("authorization");
  if (authorization.rfind("Bearer ", 0) == 0) return authorization.substr(7);
  for (const auto& protocol : commaList(request.header("sec-websocket-protocol")))
    if (protocol.rfind("bearer.", 0) == 0) return protocol.substr(7);
  return {};
}

// Writes what the session holds for the client, waiting for room up to kSendTimeoutS.
bool flushAll(TlsSession& tls, int client) {
  while (tls.outgoingBytes() > 0) {
    if (!tls.flushTo(client)) return false;
    pollfd waiting{client, POLLOUT, 0};
    if (tls.outgoingBytes() > 0 && ::poll(&waiting, 1, kSendTimeoutS * 1000) == 0) return false;
  }
  return true;
}

// A client that has not finished its handshake within kHandshakeTimeoutMs is dropped.
bool handshake(TlsSession& tls, int client) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHandshakeTimeoutMs);
  for (;;) {
    auto step = tls.handshake();
    bool flushed = tls.flushTo(client);  // also an alert saying why the handshake failed
    if (!step) {
      log::info("TLS client refused: {}", step.error().message);
      return false;
    }
    if (!flushed) return false;
    if (*step == TlsSession::Handshake::Done) return flushAll(tls, client);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd waiting{client, static_cast<short>(POLLIN | (tls.outgoingBytes() ? POLLOUT : 0)), 0};
    int ready = left.count() > 0 ? ::poll(&waiting, 1, static_cast<int>(left.count())) : 0;
    if (ready == 0 || (ready < 0 && errno != EINTR)) return false;
  }
}

// Copies plaintext both ways between a TLS client and `plain` until the plain
// side closes (after the client's end of stream, or on its own).
void relay(TlsSession& tls, int client, int plain) {
  bool clientOpen = true;
  char buffer[16 * 1024];
  for (;;) {
    bool buffered = clientOpen && tls.hasBufferedInput();
    pollfd waiting[2] = {
        {client, static_cast<short>((clientOpen ? POLLIN : 0) | (tls.outgoingBytes() ? POLLOUT : 0)), 0},
        {plain, static_cast<short>(tls.outgoingBytes() < kMaxTlsBacklog ? POLLIN : 0), 0}};
    if (!buffered && ::poll(waiting, 2, -1) < 0 && errno != EINTR) return;
    if (!clientOpen && (waiting[0].revents & (POLLHUP | POLLERR))) return;
    if (clientOpen && (buffered || waiting[0].revents)) {
      ssize_t n = tls.receive(reinterpret_cast<uint8_t*>(buffer), sizeof buffer);
      if (n > 0 && !sendAll(plain, {buffer, static_cast<size_t>(n)})) return;
      if (n == 0) {
        clientOpen = false;
        ::shutdown(plain, SHUT_WR);
      }
      if (n < 0 && errno != EAGAIN) return;
    }
    if (waiting[1].revents) {
      ssize_t n = ::recv(plain, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        tls.bye();
        flushAll(tls, client);
        return;
      }
      for (ssize_t sent = 0; sent < n;) {
        ssize_t taken = tls.send(reinterpret_cast<const uint8_t*>(buffer + sent), static_cast<size_t>(n - sent));
        if (taken < 0) return;
        sent += taken;
      }
    }
    if (!tls.flushTo(client)) return;
  }
}

}  // namespace

WebFront::WebFront(Store& store, Supervisor& supervisor, std::string apiSocket)
    : store_(store), supervisor_(supervisor), apiSocket_(std::move(apiSocket)),
      stopEvent_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

WebFront::~WebFront() { stop(); }

Result<void> WebFront::listenUnix(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Error{fmt::format("{}: path too long", path)};
  path.copy(address.sun_path, path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::unlink(path.c_str());
  mode_t previous = ::umask(0177);  // created 0600, with no window in between
  int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::umask(previous);
  if (!fd.valid() || bound != 0 || ::listen(fd.get(), SOMAXCONN) != 0) return errnoError(path);
  listeners_.push_back({std::move(fd), false});
  return {};
}

Result<UniqueFd> WebFront::bindTcp(const std::string& hostAndPort) {
  size_t colon = hostAndPort.rfind(':');
  if (colon == std::string::npos) return Error{fmt::format("{}: expected HOST:PORT", hostAndPort)};
  std::string host = hostAndPort.substr(0, colon), port = hostAndPort.substr(colon + 1);
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return Error{fmt::format("{}: {}", hostAndPort, gai_strerror(rc))};
  UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int yes = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  bool ok = fd.valid() && ::bind(fd.get(), found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd.get(), SOMAXCONN) == 0;
  ::freeaddrinfo(found);
  if (!ok) return errnoError(hostAndPort);
  return fd;
}

Result<void> WebFront::listenTcp(const std::string& hostAndPort) {
  auto fd = bindTcp(hostAndPort);
  if (!fd) return Error{"--web-listen " + fd.error().message};
  listeners_.push_back({std::move(*fd), false});
  return {};
}

Result<void> WebFront::listenTls(const std::string& hostAndPort, const std::string& certFile,
                                 const std::string& keyFile) {
  auto credentials = storage::nbd::TlsCredentials::loadX509(certFile, keyFile);
  if (!credentials) return Error{"--tls-cert/--tls-key: " + credentials.error().message};
  auto fd = bindTcp(hostAndPort);
  if (!fd) return Error{"--listen " + fd.error().message};
  tls_ = std::move(*credentials);
  listeners_.push_back({std::move(*fd), true});
  return {};
}

void WebFront::run() {
  std::vector<pollfd> waiting{{stopEvent_.get(), POLLIN, 0}};
  for (const auto& listener : listeners_) waiting.push_back({listener.fd.get(), POLLIN, 0});
  for (;;) {
    if (::poll(waiting.data(), waiting.size(), -1) < 0 && errno != EINTR) break;
    if (waiting[0].revents) break;
    for (size_t i = 1; i < waiting.size(); ++i) {
      if (!(waiting[i].revents & POLLIN)) continue;
      int fd = ::accept4(waiting[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      bool tls = listeners_[i - 1].tls;
      if (spawn(fd, [this, tls](int client) { tls ? serveTls(client) : serveConnection(client); })) continue;
      if (!tls) sendError(fd, 503, "too many connections");  // a TLS client could not read it
      ::close(fd);
    }
  }
}

bool WebFront::spawn(int fd, std::function<void(int)> serve) {
  // The lock is not held while the thread is made: ending connections, which take it, would queue
  // behind a busy accept loop and pile up to kMaxConnections.
  {
    std::lock_guard lock(mutex_);
    if (connections_.size() >= kMaxConnections) return false;
    connections_.insert(fd);
  }
  std::thread([this, fd, serve = std::move(serve)] {
    serve(fd);
    std::lock_guard lock(mutex_);
    connections_.erase(fd);
    ::close(fd);
    idle_.notify_all();
  }).detach();
  return true;
}

void WebFront::stop() {
  uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(stopEvent_.get(), &one, sizeof one);
  std::unique_lock lock(mutex_);
  for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
  idle_.wait(lock, [this] { return connections_.empty(); });
}

void WebFront::serveTls(int client) {
  auto session = TlsSession::create(*tls_, client, {});
  if (!session) return log::warn("TLS session: {}", session.error().message);
  if (!handshake(**session, client)) return;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
  UniqueFd plain(pair[1]);
  if (!spawn(pair[0], [this](int fd) { serveConnection(fd); })) {
    sendError(pair[0], 503, "too many connections");
    ::close(pair[0]);
  }
  relay(**session, client, plain.get());
}

void WebFront::serveConnection(int fd) {
  bool complete = false;
  std::string head = readHead(fd, complete);
  static const std::regex consolePath("/vms/([^/]+)/console");
  if (complete) {
    size_t end = head.find("\r\n\r\n") + 4;
    auto request = parseHead(head.substr(0, end));
    std::smatch match;
    if (request && request->method == "GET" && std::regex_match(request->path, match, consolePath) &&
        lower(request->header("upgrade")) == "websocket")
      return serveConsole(fd, *request, match[1], head.substr(end));
  }
  proxy(fd, head);
}

// Copies both ways until the API server ends the connection: it sees the
// client's bytes unchanged (keep-alive, streamed replies and all). A client's
// half-close is not passed on: cpp-httplib takes a peer's pending end of stream
// for a dead socket and drops the reply it was about to write (a client that
// sends its request and shuts down its side would get nothing); it ends the
// connection after its keep-alive timeout instead.
void WebFront::proxy(int client, const std::string& head) {
  auto api = connectUnixSocket(apiSocket_);
  if (!api) return sendError(client, 503, "the API server is not reachable");
  if (!sendAll(api->get(), head)) return;
  int ends[2] = {client, api->get()};
  bool clientOpen = true;  // reading from the client still goes on
  char buffer[64 * 1024];
  for (;;) {
    pollfd waiting[2] = {{ends[0], static_cast<short>(clientOpen ? POLLIN : 0), 0}, {ends[1], POLLIN, 0}};
    if (::poll(waiting, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (!clientOpen && (waiting[0].revents & (POLLHUP | POLLERR))) return;  // it has closed both ways: gone
    for (int i = 0; i < 2; ++i) {
      if (!waiting[i].revents) continue;
      ssize_t n = ::recv(ends[i], buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0 && sendAll(ends[1 - i], {buffer, static_cast<size_t>(n)})) continue;
      if (n > 0 || i == 1) return;  // the other side is gone, or the API server closed: done
      clientOpen = false;
    }
  }
}

void WebFront::serveConsole(int client, const RequestHead& request, const std::string& vmName, std::string leftover) {
  std::string token = consoleToken(request);
  auto principal = token.empty() ? std::nullopt : store_.principalForToken(tokenHash(token));
  if (!principal) return sendError(client, 401, token.empty() ? "missing bearer token" : "unknown token");
  auto vm = isValidName(vmName) ? store_.vm(vmName) : std::nullopt;
  if (!vm || (!principal->admin && vm->spec.tenant != principal->tenant))
    return sendError(client, 404, fmt::format("no VM {}", vmName));
  if (request.header("sec-websocket-version") != "13") return sendError(client, 426, "expected WebSocket version 13");
  std::string key = request.header("sec-websocket-key");
  if (key.size() != 24) return sendError(client, 400, "Sec-WebSocket-Key: expected 16 bytes in base64");
  if (vm->state == VmState::Stopped) return sendError(client, 409, fmt::format("{} is not running", vmName));

  // Output reaches this thread through a bounded backlog and an eventfd, so
  // the channel's reader never waits for a slow viewer.
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::mutex backlogMutex;
  std::string backlog;
  bool ended = false, overflowed = false;
  auto signal = [&wake] {
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wake.get(), &one, sizeof one);
  };
  ConsoleViewer viewer{[&](std::string_view output) {
                         std::lock_guard lock(backlogMutex);
                         if (backlog.size() + output.size() > kMaxBacklog) overflowed = true;
                         else backlog.append(output);
                         signal();
                       },
                       [&] {
                         std::lock_guard lock(backlogMutex);
                         ended = true;
                         signal();
                       }};
  VmPaths paths = supervisor_.pathsOf(vmName);
  auto attachment = hub_.attach(vmName, paths.consoleSocket, paths.console, std::move(viewer));
  if (!attachment) return sendError(client, 409, attachment.error().message);

  std::string reply = fmt::format(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
      websocket::acceptKey(key));
  auto offered = commaList(request.header("sec-websocket-protocol"));
  if (std::find(offered.begin(), offered.end(), "strata.console") != offered.end())
    reply += "Sec-WebSocket-Protocol: strata.console\r\n";
  timeval sendTimeout{kSendTimeoutS, 0};
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, sizeof sendTimeout);
  if (!sendAll(client, reply + "\r\n")) return;

  auto closeWith = [&](uint16_t code, const std::string& reason) {
    sendAll(client, websocket::encodeFrame(websocket::Opcode::Close, websocket::closePayload(code, reason), false));
  };
  websocket::Reader reader(true, kMaxInputMessage);
  std::vector<websocket::Message> messages;
  std::string input = std::move(leftover);
  char buffer[16 * 1024];
  for (;;) {
    if (!input.empty()) {
      messages.clear();
      auto violation = reader.feed(input, messages);
      input.clear();
      for (const auto& message : messages) {
        if (message.opcode == websocket::Opcode::Text || message.opcode == websocket::Opcode::Binary)
          (*attachment)->type(message.payload);
        else if (message.opcode == websocket::Opcode::Ping)
          sendAll(client, websocket::encodeFrame(websocket::Opcode::Pong, message.payload, false));
        else if (message.opcode == websocket::Opcode::Close)
          return closeWith(1000, "");
      }
      if (violation) {
        log::warn("console {}: refused a client's frame: {}", vmName, violation->reason);
        return closeWith(violation->code, violation->reason);
      }
    }
    pollfd waiting[2] = {{client, POLLIN, 0}, {wake.get(), POLLIN, 0}};
    if (::poll(waiting, 2, -1) < 0 && errno != EINTR) return;
    if (waiting[1].revents) {
      uint64_t count;
      [[maybe_unused]] auto drained = ::read(wake.get(), &count, sizeof count);
      std::string output;
      bool finished, tooSlow;
      {
        std::lock_guard lock(backlogMutex);
        output.swap(backlog);
        finished = ended, tooSlow = overflowed;
      }
      if (!output.empty() && !sendAll(client, websocket::encodeFrame(websocket::Opcode::Binary, output, false))) return;
      if (tooSlow) return closeWith(1008, "console output not read fast enough");
      if (finished) return closeWith(1000, "the VM stopped");
    }
    if (waiting[0].revents) {
      ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      input.assign(buffer, static_cast<size_t>(n));
    }
  }
}

}  // namespace strata::control
