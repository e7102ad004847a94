#include "vmm/migration_tls.h"

#include <poll.h>
#include <sys/socket.h>

#include <thread>
#include <vector>

#include <fmt/core.h>

#include "base/log.h"
#include "vmm/migration_stream.h"
#include "vmm/sandbox.h"

namespace strata::vmm::migration {
namespace {

using storage::nbd::TlsCredentials;
using storage::nbd::TlsSession;

constexpr uint8_t kTlsHandshakeRecord = 0x16;  // the first byte of every TLS ClientHello
constexpr size_t kRelayBytes = 64 * 1024;
constexpr size_t kMaxOutgoing = 1 << 20;  // encrypted bytes held before the plain side waits

Result<void> handshake(TlsSession& tls, int tcp, const std::string& peer, int ioSeconds) {
  for (;;) {
    auto step = tls.handshake();
    if (!tls.flushTo(tcp)) return Error{fmt::format("TLS handshake with the {}: {}", peer, tls.error())};
    if (!step) return Error{fmt::format("TLS handshake with the {} failed: {}", peer, step.error().message)};
    if (*step == TlsSession::Handshake::Done) return {};
    pollfd waiting{tcp, static_cast<short>(POLLIN | (tls.outgoingBytes() > 0 ? POLLOUT : 0)), 0};
    int ready = ::poll(&waiting, 1, ioSeconds * 1000);
    if (ready < 0 && errno != EINTR) return errnoError("poll");
    if (ready == 0) return Error{fmt::format("TLS handshake with the {}: timed out", peer)};
  }
}

// Moves bytes both ways until both sides ended or either failed, then closes
// both. It holds the credentials the session points into.
void relay(std::unique_ptr<TlsSession> tls, UniqueFd tcp, UniqueFd plain,
           [[maybe_unused]] std::shared_ptr<const TlsCredentials> credentials, const VmConfig& config, int ioSeconds) {
  if (auto entered = enterThreadRole(ThreadRole::Migration, config); !entered) {
    log::warn("migration TLS: sandbox: {}", entered.error().message);
    return;
  }
  std::vector<uint8_t> buffer(kRelayBytes);
  std::vector<uint8_t> toPlain;
  size_t toPlainAt = 0;
  bool tcpEnded = false, plainEnded = false;
  for (;;) {
    const bool pendingPlain = toPlainAt < toPlain.size();
    const bool decrypted = !pendingPlain && !tcpEnded && tls->hasBufferedInput();
    if (plainEnded && tls->outgoingBytes() == 0) return;  // everything written went out
    pollfd ends[2] = {
        {tcp.get(), static_cast<short>((!pendingPlain && !tcpEnded ? POLLIN : 0) | (tls->outgoingBytes() > 0 ? POLLOUT : 0)), 0},
        {plain.get(),
         static_cast<short>((!plainEnded && tls->outgoingBytes() < kMaxOutgoing ? POLLIN : 0) | (pendingPlain ? POLLOUT : 0)),
         0}};
    if (!decrypted) {
      int ready = ::poll(ends, 2, plainEnded ? ioSeconds * 1000 : -1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return;  // a peer that stopped taking the last bytes
    }
    if (decrypted || (!pendingPlain && !tcpEnded && ends[0].revents != 0)) {
      ssize_t got = tls->receive(buffer.data(), buffer.size());
      if (got > 0) {
        toPlain.assign(buffer.begin(), buffer.begin() + got);
        toPlainAt = 0;
      } else if (got == 0) {
        tcpEnded = true;
        ::shutdown(plain.get(), SHUT_WR);
      } else if (errno != EAGAIN) {
        log::warn("migration TLS: {}", tls->error());
        return;
      }
    }
    if (toPlainAt < toPlain.size()) {
      ssize_t sent = ::send(plain.get(), toPlain.data() + toPlainAt, toPlain.size() - toPlainAt, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent < 0 && errno != EAGAIN && errno != EINTR) return;
      if (sent > 0) toPlainAt += static_cast<size_t>(sent);
    }
    if (!plainEnded && ends[1].revents != 0 && (ends[1].events & POLLIN) != 0) {
      ssize_t got = ::recv(plain.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        plainEnded = true;
        tls->bye();
      }
      for (ssize_t at = 0; at < got;) {
        ssize_t taken = tls->send(buffer.data() + at, static_cast<size_t>(got - at));
        if (taken < 0) {
          log::warn("migration TLS: {}", tls->error());
          return;
        }
        at += taken;
      }
    }
    if (tls->outgoingBytes() > 0 && !tls->flushTo(tcp.get())) return;
  }
}

// Hands the session to a relay thread; the caller gets the plain end.
Result<UniqueFd> startRelay(std::unique_ptr<TlsSession> tls, UniqueFd tcp,
                            std::shared_ptr<const TlsCredentials> credentials, const VmConfig& config, int ioSeconds) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return errnoError("socketpair");
  UniqueFd plain(ends[0]), inner(ends[1]);
  setTimeouts(plain.get(), ioSeconds);
  std::thread(relay, std::move(tls), std::move(tcp), std::move(inner), std::move(credentials), std::cref(config),
              ioSeconds)
      .detach();
  return plain;
}

}  // namespace

Result<UniqueFd> acceptTlsChannel(UniqueFd tcp, std::shared_ptr<const TlsCredentials> credentials,
                                  const VmConfig& config, int ioSeconds) {
  uint8_t first = 0;
  ssize_t got = ::recv(tcp.get(), &first, 1, MSG_PEEK);
  if (got <= 0) return Error{"the source hung up before the TLS handshake"};
  if (first != kTlsHandshakeRecord) {
    (void)sendAnswer(tcp.get(), "ERR this destination requires TLS: migrate with --tls-ca (\"tls_ca\")");
    return Error{"the source sent its stream without TLS; this destination requires it (--tls-certs)"};
  }
  auto tls = TlsSession::create(*credentials, tcp.get(), {});
  if (!tls) return tls.error();
  if (auto done = handshake(**tls, tcp.get(), "source", ioSeconds); !done) return done.error();
  return startRelay(std::move(*tls), std::move(tcp), std::move(credentials), config, ioSeconds);
}

Result<UniqueFd> connectTlsChannel(UniqueFd tcp, std::shared_ptr<const TlsCredentials> authority,
                                   const std::string& host, const VmConfig& config, int ioSeconds) {
  auto tls = TlsSession::create(*authority, tcp.get(), {}, host);
  if (!tls) return tls.error();
  if (auto done = handshake(**tls, tcp.get(), "destination", ioSeconds); !done) return done.error();
  return startRelay(std::move(*tls), std::move(tcp), std::move(authority), config, ioSeconds);
}

}  // namespace strata::vmm::migration
