// NbdConnection: one client of the NBD server, from the fixed newstyle
// handshake through option haggling to the transmission phase. Runs on the
// EventLoop thread over a non-blocking socket; requests are submitted to the
// BlockDevice as they arrive and answered as they complete, so replies may go
// out of order. Every length and offset from the client is checked, and what a
// client can make the server hold is bounded by NbdLimits, and one that does
// not finish negotiating within NbdLimits::handshakeLimit is disconnected. With a TlsPolicy,
// NBD_OPT_STARTTLS upgrades the socket to TLS in the middle of option haggling.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "base/loop_timer.h"
#include "storage/nbd/nbd_export.h"
#include "storage/nbd/nbd_tls.h"

namespace strata::storage::nbd {

class NbdConnection : public std::enable_shared_from_this<NbdConnection> {
 public:
  struct Context {
    EventLoop* loop;
    const std::vector<NbdExport>* exports;
    const NbdLimits* limits;
    const TlsPolicy* tls;  // mode Off: NBD_OPT_STARTTLS is refused
    std::function<void(NbdConnection*)> onClosed;  // called once, on close
  };

  NbdConnection(Context context, UniqueFd socket, std::string peer);
  ~NbdConnection();

  // Watches the socket, starts the handshake time limit and sends the greeting.
  Result<void> start();
  // Hard disconnect: stops watching and closes the socket. Requests in flight
  // still complete on the device, but their replies are dropped.
  void close(const std::string& reason);

  bool closed() const { return !socket_.valid(); }
  // Device requests submitted and not completed (they may outlive close()).
  size_t inflight() const { return inflight_; }
  const std::string& peer() const { return peer_; }

 private:
  enum class Phase {
    ClientFlags,     // waiting for the 32-bit client flags
    OptionHeader,    // option haggling: next option header
    OptionData,      // option haggling: option payload
    TlsHandshake,    // after NBD_OPT_STARTTLS, until the TLS handshake completes
    RequestHeader,   // transmission: next request
    WritePayload,    // transmission: NBD_CMD_WRITE data into a request buffer
    SkipPayload,     // transmission: data of a refused write, discarded
    Finishing,       // no more input; close once replies are out
  };
  struct Request;

  void onSocketEvents(uint32_t events);
  void readInput();
  // read(2) on the socket, or through TLS once it is up; error explains a -1 that is not EAGAIN.
  ssize_t receive(uint8_t* buffer, size_t length, std::string& error);
  void processInput();
  bool processClientFlags();
  bool processOptionHeader();
  bool processOptionData();
  bool processRequestHeader();
  bool processWritePayload();
  bool processSkipPayload();

  // Option haggling.
  void handleOption(uint32_t option, const std::vector<uint8_t>& data);
  void handleInfoOrGo(uint32_t option, const std::vector<uint8_t>& data);
  void handleMetaContext(uint32_t option, const std::vector<uint8_t>& data);
  void handleExportName(const std::vector<uint8_t>& data);
  void handleStartTls(const std::vector<uint8_t>& data);
  void advanceHandshake();
  void enterTransmission(const NbdExport* exported);
  void onHandshakeLimit();
  const NbdExport* findExport(const std::string& name) const;
  void sendOptionReply(uint32_t option, uint32_t type, const std::vector<uint8_t>& payload = {});
  void sendOptionError(uint32_t option, uint32_t type, const std::string& message);

  // Transmission.
  void dispatch(std::shared_ptr<Request> request);
  void submitRead(std::shared_ptr<Request> request);
  void submitWrite(std::shared_ptr<Request> request);
  void replyBlockStatus(const Request& request);
  void finishWithFua(std::shared_ptr<Request> request, int result);
  void complete(const Request& request, int result, const std::string& message = {});
  void sendError(uint64_t handle, uint32_t error, const std::string& message);
  IoCompletion track(std::function<void(int)> done);
  bool mayStartRequest() const;
  bool wantInput() const;

  // Output.
  void queueOutput(std::vector<uint8_t> bytes);
  void flushOutput();
  bool writePlain();
  bool encryptAndWrite();
  bool outputPending() const;
  size_t bufferedOutput() const;  // replies not yet on the socket, plaintext and encrypted
  void updateInterest();
  void finishIfIdle();

  Context context_;
  UniqueFd socket_;
  std::string peer_;
  Phase phase_ = Phase::ClientFlags;

  // Input bytes received but not yet consumed: input_[inputStart_, input_.size()).
  std::vector<uint8_t> input_;
  size_t inputStart_ = 0;
  bool processing_ = false;  // processInput() is on the stack
  bool reprocess_ = false;   // it was called again meanwhile

  // Option haggling state.
  bool fixedNewstyle_ = false;
  bool noZeroes_ = false;
  uint32_t currentOption_ = 0;
  uint32_t optionLength_ = 0;
  bool structuredReplies_ = false;
  bool allocationContext_ = false;  // base:allocation selected
  const NbdExport* allocationExport_ = nullptr;  // the export NBD_OPT_SET_META_CONTEXT named

  // Transmission state.
  const NbdExport* export_ = nullptr;
  std::shared_ptr<Request> pendingWrite_;  // the write whose payload is arriving
  uint64_t skipRemaining_ = 0;
  size_t inflight_ = 0;
  size_t heldBytes_ = 0;  // request buffers alive, for NbdLimits::maxBufferedBytes

  // Replies not yet written to the socket.
  struct OutputChunk {
    std::vector<uint8_t> bytes;
    size_t sent = 0;
  };
  std::deque<OutputChunk> output_;
  size_t outputBytes_ = 0;
  uint32_t watchedEvents_ = 0;

  // Runs from start() until the transmission phase (absent when there is no limit).
  std::unique_ptr<LoopTimer> handshakeTimer_;

  // TLS, once NBD_OPT_STARTTLS was accepted.
  std::unique_ptr<TlsSession> tls_;
  bool tlsEstablished_ = false;
  bool tlsClosing_ = false;     // close_notify queued
  bool readScheduled_ = false;  // a readInput() is posted for input GnuTLS holds
};

}  // namespace strata::storage::nbd
