// The daemon's request handling end to end: the bytes are one client's
// connection to a real WebFront (head reading, console upgrade check) that
// passes them to a real ApiServer (cpp-httplib's parser, our router, tokens,
// handlers) over a store in a scratch directory. Two fixed tokens (admin
// "strata_fuzz_admin", tenant acme "strata_fuzz_acme") let inputs past the
// token check; VMs cannot start (the strata binary named does not exist).
// The daemon must answer within the deadline, the first reply must be HTTP
// with a status, an error status must carry a JSON {"error": "..."}, and a
// 500 may only be the refused start of that missing binary.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/api_server.h"
#include "control/http_client.h"
#include "control/store.h"
#include "control/supervisor.h"
#include "control/token.h"
#include "control/web_front.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace strata::fuzz {
namespace {

constexpr const char* kMissingBinary = "/nonexistent/strata-fuzz";
constexpr auto kReplyDeadline = std::chrono::seconds(20);

void require(bool invariant) {
  if (!invariant) std::abort();
}

// One daemon per process, as `strata daemon` wires it, minus the VMs.
class FuzzDaemon {
 public:
  FuzzDaemon() {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    dataDir_ = std::string(base) + "/strata-fuzz-http-" + std::to_string(::getpid());
    std::filesystem::remove_all(dataDir_);
    for (const char* dir : {"", "/vms", "/tenants/default", "/tenants/acme", "/templates"})
      std::filesystem::create_directories(dataDir_ + dir);
    auto opened = control::Store::open(dataDir_ + "/strata.db");
    require(static_cast<bool>(opened));
    store_ = std::move(*opened);
    store_->addTenant("default");
    store_->addTenant("acme");
    store_->addToken(control::tokenHash("strata_fuzz_admin"), std::nullopt);
    store_->addToken(control::tokenHash("strata_fuzz_acme"), "acme");
    supervisor_ = std::make_unique<control::Supervisor>(*store_, control::Supervisor::Options{dataDir_, kMissingBinary});
    server_ = std::make_unique<control::ApiServer>(*store_, *supervisor_,
                                                   control::ApiServer::Options{dataDir_, std::chrono::milliseconds(100)});
    require(static_cast<bool>(server_->listen(dataDir_ + "/api-server.sock")));
    front_ = std::make_unique<control::WebFront>(*store_, *supervisor_, dataDir_ + "/api-server.sock");
    require(static_cast<bool>(front_->listenUnix(socket())));
    serverThread_ = std::thread([this] { server_->run(); });
    frontThread_ = std::thread([this] { front_->run(); });
  }
  ~FuzzDaemon() {
    front_->stop();
    frontThread_.join();
    server_->stop();
    serverThread_.join();
    front_.reset();
    server_.reset();  // waits for its operations
    supervisor_.reset();
    store_.reset();
    std::filesystem::remove_all(dataDir_);
  }

  std::string socket() const { return dataDir_ + "/daemon.sock"; }

 private:
  std::string dataDir_;
  std::unique_ptr<control::Store> store_;
  std::unique_ptr<control::Supervisor> supervisor_;
  std::unique_ptr<control::ApiServer> server_;
  std::unique_ptr<control::WebFront> front_;
  std::thread serverThread_, frontThread_;
};

// Whether `reply` holds its first response whole: the head and its Content-Length of body, or
// the head of a streamed (chunked) reply, which the next requests' replies follow.
bool firstReplyWhole(const std::string& reply) {
  size_t headEnd = reply.find("\r\n\r\n");
  if (headEnd == std::string::npos) return false;
  std::string head = reply.substr(0, headEnd);
  size_t length = head.find("Content-Length: ");
  if (length == std::string::npos) return head.find("Transfer-Encoding: chunked") != std::string::npos;
  return reply.size() >= headEnd + 4 + std::strtoul(head.c_str() + length + 16, nullptr, 10);
}

// Sends the bytes, ends the client's side, and reads up to the end of the first reply (or of the
// connection: a request the daemon cannot read whole ends in its read timeout).
std::string exchange(const std::string& socket, std::string_view request) {
  auto connected = control::connectUnixSocket(socket);
  require(static_cast<bool>(connected));
  int fd = connected->get();
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the daemon may refuse and close before it has read everything
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  auto deadline = std::chrono::steady_clock::now() + kReplyDeadline;
  char buffer[16 * 1024];
  while (!firstReplyWhole(reply)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd waiting{fd, POLLIN, 0};
    int ready = left.count() > 0 ? ::poll(&waiting, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;  // libFuzzer's timeout alarm ticks every second
    require(ready == 1);                        // else a hang
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  return reply;
}

// The first reply: "HTTP/1.1 NNN ...", and for an error status a JSON body naming it (unless compressed or cut).
void checkFirstReply(const std::string& reply, bool toHead) {
  if (reply.empty()) return;  // a client that closed before its head was whole gets no answer
  require(reply.rfind("HTTP/1.1 ", 0) == 0 && reply.size() >= 12);
  int status = std::atoi(reply.substr(9, 3).c_str());
  require(status >= 100 && status <= 599);
  if (status < 400 || toHead) return;  // a reply to HEAD has no body
  size_t headEnd = reply.find("\r\n\r\n");
  require(headEnd != std::string::npos);
  std::string head = reply.substr(0, headEnd);
  size_t length = head.find("Content-Length: ");
  require(length != std::string::npos && firstReplyWhole(reply));
  // Compressed (gzip, brotli) or cut to a Range: as the client asked (cpp-httplib serves ranges of any status).
  if (head.find("Content-Encoding: ") != std::string::npos || head.find("Content-Range: ") != std::string::npos) return;
  size_t bodySize = std::strtoul(head.c_str() + length + 16, nullptr, 10);
  auto body = nlohmann::json::parse(reply.substr(headEnd + 4, bodySize), nullptr, false);
  require(body.is_object() && body.contains("error") && body["error"].is_string());
  if (status == 500) require(body["error"].get<std::string>().find(kMissingBinary) != std::string::npos);
}

}  // namespace

int httpRequestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (quietLogs(), true);
  (void)quiet;
  static FuzzDaemon daemon;
  std::string reply = exchange(daemon.socket(), {reinterpret_cast<const char*>(data), size});
  if (std::getenv("STRATA_FUZZ_DEBUG")) std::fprintf(stderr, "reply: %s\n", reply.c_str());
  checkFirstReply(reply, reply.size() > 0 && std::string_view(reinterpret_cast<const char*>(data), size).starts_with("HEAD "));
  return 0;
}

}  // namespace strata::fuzz
