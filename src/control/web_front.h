// WebFront: what listens on the daemon's public sockets (its UNIX socket, a
// TCP address for browsers with `--web-listen`, and TLS over TCP with `--listen`,
// decrypted here and then served like the others). It reads each connection's
// request head: a WebSocket upgrade of GET /vms/NAME/console it serves itself
// (cpp-httplib 0.11 cannot hand over a connection), everything else it passes
// byte for byte to the REST API server (ApiServer) on the daemon's private socket.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "control/console_hub.h"
#include "control/store.h"
#include "control/supervisor.h"

namespace strata::storage::nbd {
class TlsCredentials;
}

namespace strata::control {

class WebFront {
 public:
  static constexpr size_t kMaxHead = 16 * 1024;
  static constexpr size_t kMaxConnections = 256;
  static constexpr size_t kMaxInputMessage = 64 * 1024;  // one console message from a client
  static constexpr size_t kMaxBacklog = 1024 * 1024;     // output a slow viewer has not taken yet

  WebFront(Store& store, Supervisor& supervisor, std::string apiSocket);
  ~WebFront();

  Result<void> listenUnix(const std::string& path);        // mode 0600
  Result<void> listenTcp(const std::string& hostAndPort);  // HOST:PORT
  // HOST:PORT over TLS with this PEM certificate (chain) and key: the console WebSocket (wss://), the API and
  // the dashboard, with the same bearer tokens, never in the clear.
  Result<void> listenTls(const std::string& hostAndPort, const std::string& certFile, const std::string& keyFile);
  void run();   // serves until stop()
  void stop();  // safe from another thread; ends every connection

 private:
  struct Listener {
    UniqueFd fd;
    bool tls;
  };
  Result<UniqueFd> bindTcp(const std::string& hostAndPort);
  // Serves `fd` on a thread of its own that closes it, counted in connections_; false (fd
  // untouched) when kMaxConnections are being served.
  bool spawn(int fd, std::function<void(int)> serve);
  // Decrypts a TLS client onto one end of a socket pair whose other end serveConnection serves.
  void serveTls(int client);
  void serveConnection(int fd);
  void proxy(int client, const std::string& head);
  void serveConsole(int client, const struct RequestHead& request, const std::string& vmName, std::string leftover);

  Store& store_;
  Supervisor& supervisor_;
  std::string apiSocket_;
  ConsoleHub hub_;
  std::vector<Listener> listeners_;
  std::shared_ptr<storage::nbd::TlsCredentials> tls_;
  UniqueFd stopEvent_;
  std::mutex mutex_;
  std::condition_variable idle_;
  std::set<int> connections_;  // shut down by stop()
};

}  // namespace strata::control
