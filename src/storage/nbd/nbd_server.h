// NbdServer: serves NbdExports over the NBD protocol on a UNIX socket and/or
// TCP on loopback (127.0.0.1 and ::1 only), many clients at once, all on one
// EventLoop thread with I/O through each export's BlockDevice, optionally over
// TLS (NBD_OPT_STARTTLS) per a TlsPolicy. Used by
// `strata nbd serve`; tests and the fuzzer hand it connected sockets directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "storage/nbd/nbd_export.h"
#include "storage/nbd/nbd_tls.h"

namespace strata::storage::nbd {

class NbdConnection;

class NbdServer {
 public:
  // The exports' devices must outlive the server and any request still in flight
  // after it (see idle()). Call every method on the loop thread, or before run().
  NbdServer(EventLoop& loop, std::vector<NbdExport> exports, NbdLimits limits = {});
  ~NbdServer();
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // Applies to clients that connect afterwards. Mode On or Require needs credentials.
  Result<void> setTls(TlsPolicy policy);
  const TlsPolicy& tls() const { return tls_; }

  // Listens on a UNIX socket; a stale socket file at path is replaced, any other file is refused.
  Result<void> listenUnix(const std::string& path);
  // Listens on 127.0.0.1 and, where the host has IPv6, ::1; port 0 picks a free
  // port. Returns the port.
  Result<uint16_t> listenTcp(uint16_t port);
  // Serves a socket that is already connected (socketpair, inherited fd).
  Result<void> serveConnection(UniqueFd socket, std::string peer);

  // Stops listening and disconnects every client.
  void shutdown();
  size_t connectionCount() const { return connections_.size(); }
  // True when no client is connected and no device request is in flight, so the
  // devices may be flushed and closed.
  bool idle();
  const std::vector<NbdExport>& exports() const { return exports_; }

 private:
  Result<void> listenOn(UniqueFd socket, const std::string& description);
  void acceptClients(int listener, bool tcp);
  void onConnectionClosed(NbdConnection* connection);

  EventLoop& loop_;
  std::vector<NbdExport> exports_;
  NbdLimits limits_;
  TlsPolicy tls_;
  std::vector<int> listeners_;  // owned by listenerFds_
  std::vector<UniqueFd> listenerFds_;
  std::string unixPath_;
  uint64_t acceptedCount_ = 0;
  std::unordered_map<NbdConnection*, std::shared_ptr<NbdConnection>> connections_;
  // Closed connections whose device requests have not all completed yet.
  std::vector<std::shared_ptr<NbdConnection>> draining_;
};

}  // namespace strata::storage::nbd
