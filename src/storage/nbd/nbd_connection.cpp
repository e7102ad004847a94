#include "storage/nbd/nbd_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "storage/nbd/nbd_protocol.h"

namespace strata::storage::nbd {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Reads per readiness event before yielding to other clients.
constexpr int kReadRoundsPerEvent = 8;
// Replies encrypted ahead of the socket; more waits as plaintext in the output queue.
constexpr size_t kTlsEncryptAhead = 256 * 1024;
constexpr uint16_t kKnownCommandFlags = kCmdFlagFua | kCmdFlagNoHole | kCmdFlagDf | kCmdFlagReqOne;
// Reply header room in front of READ data, so the data goes out without a copy.
constexpr size_t kSimpleReadRoom = kSimpleReplySize;
constexpr size_t kStructuredReadRoom = kStructuredReplyHeaderSize + 8;

}  // namespace

struct NbdConnection::Request {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t handle = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  std::vector<uint8_t> buffer;  // READ: reply header room + data; WRITE: payload
  size_t filled = 0;            // WRITE payload bytes received
};

NbdConnection::NbdConnection(Context context, UniqueFd socket, std::string peer)
    : context_(std::move(context)), socket_(std::move(socket)), peer_(std::move(peer)) {}

NbdConnection::~NbdConnection() = default;

Result<void> NbdConnection::start() {
  auto self = shared_from_this();
  // The timer first: if watching the socket then fails, nothing is left registered.
  if (auto limit = context_.limits->handshakeLimit; limit.count() > 0) {
    std::weak_ptr<NbdConnection> weak = self;
    auto timer = LoopTimer::create(*context_.loop, [weak] {
      if (auto connection = weak.lock()) connection->onHandshakeLimit();
    });
    if (!timer) return timer.error();
    if (auto armed = (*timer)->arm(limit); !armed) return armed;
    handshakeTimer_ = std::move(*timer);
  }
  watchedEvents_ = EPOLLIN;
  // The handler holds the connection alive while it is watched; close() unwatches.
  auto watched = context_.loop->watch(socket_.get(), watchedEvents_,
                                      [self](uint32_t events) { self->onSocketEvents(events); });
  if (!watched) return watched;
  std::vector<uint8_t> greeting;
  WireWriter(greeting).u64(kNbdMagic).u64(kOptionMagic).u16(kFlagFixedNewstyle | kFlagNoZeroes);
  queueOutput(std::move(greeting));
  return {};
}

void NbdConnection::close(const std::string& reason) {
  if (closed()) return;
  log::debug("nbd: {}: closing: {}", peer_, reason);
  context_.loop->unwatch(socket_.get());
  socket_.reset();
  output_.clear();
  outputBytes_ = 0;
  input_.clear();
  input_.shrink_to_fit();
  inputStart_ = 0;
  pendingWrite_.reset();
  tls_.reset();
  handshakeTimer_.reset();
  phase_ = Phase::Finishing;
  if (context_.onClosed) context_.onClosed(this);
}

void NbdConnection::onSocketEvents(uint32_t events) {
  if (closed()) return;
  if ((events & (EPOLLHUP | EPOLLERR)) && phase_ == Phase::TlsHandshake) {
    // A client that gives up on the handshake (say, on an untrusted certificate)
    // usually sends an alert first: read it so the log says why.
    if ((events & EPOLLIN) && wantInput()) advanceHandshake();
    if (closed()) return;
    log::warn("nbd: {}: TLS handshake failed: the client disconnected", peer_);
    close("client hung up during the TLS handshake");
    return;
  }
  if (events & EPOLLHUP) {
    // Both directions are shut: no reply can reach the client any more.
    close("client hung up");
    return;
  }
  if (events & EPOLLERR) {
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(socket_.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    close(fmt::format("socket error: {}", std::strerror(error)));
    return;
  }
  if (events & EPOLLOUT) {
    flushOutput();
    // Replies going out may lift the limits that held back input already received.
    processInput();
  }
  if (closed()) return;
  if (events & EPOLLIN) readInput();
}

// ---- input ----------------------------------------------------------------

bool NbdConnection::mayStartRequest() const {
  return inflight_ < context_.limits->maxInflightRequests &&
         heldBytes_ + bufferedOutput() < context_.limits->maxBufferedBytes;
}

bool NbdConnection::wantInput() const {
  if (phase_ == Phase::Finishing) return false;
  // The NBD_OPT_STARTTLS reply goes out in the clear before the handshake reads anything.
  if (phase_ == Phase::TlsHandshake) return output_.empty();
  return bufferedOutput() + heldBytes_ < context_.limits->maxBufferedBytes &&
         (phase_ != Phase::RequestHeader || mayStartRequest());
}

ssize_t NbdConnection::receive(uint8_t* buffer, size_t length, std::string& error) {
  ssize_t got = tls_ ? tls_->receive(buffer, length) : ::read(socket_.get(), buffer, length);
  if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    int saved = errno;
    error = tls_ ? "TLS: " + tls_->error() : fmt::format("read: {}", std::strerror(errno));
    errno = saved;
  }
  return got;
}

void NbdConnection::readInput() {
  for (int round = 0; round < kReadRoundsPerEvent && !closed(); ++round) {
    if (phase_ == Phase::TlsHandshake) {
      if (!wantInput()) break;
      advanceHandshake();
      if (phase_ == Phase::TlsHandshake) break;  // waiting for the client (or closed)
      continue;
    }
    if (!wantInput()) break;
    ssize_t got;
    int readErrno = 0;
    std::string error;
    if (phase_ == Phase::WritePayload && inputStart_ == input_.size()) {
      // Large payloads go straight into the request buffer.
      Request& request = *pendingWrite_;
      got = receive(request.buffer.data() + request.filled, request.buffer.size() - request.filled, error);
      readErrno = errno;
      if (got > 0) request.filled += static_cast<size_t>(got);
    } else {
      if (inputStart_ > 0) {
        input_.erase(input_.begin(), input_.begin() + static_cast<ptrdiff_t>(inputStart_));
        inputStart_ = 0;
      }
      size_t used = input_.size();
      input_.resize(used + kReadChunk);
      got = receive(input_.data() + used, kReadChunk, error);
      readErrno = errno;
      input_.resize(used + static_cast<size_t>(std::max<ssize_t>(got, 0)));
    }
    if (got == 0) {
      // The client finished sending; answer what is in flight, then close.
      log::debug("nbd: {}: end of input", peer_);
      processInput();
      if (closed()) return;
      phase_ = Phase::Finishing;
      if (pendingWrite_) heldBytes_ -= pendingWrite_->buffer.size();  // its payload never came
      pendingWrite_.reset();
      updateInterest();
      finishIfIdle();
      return;
    }
    if (got < 0) {
      if (readErrno == EINTR) continue;
      if (readErrno == EAGAIN || readErrno == EWOULDBLOCK) break;
      if (tls_) log::warn("nbd: {}: {}", peer_, error);  // a broken or tampered TLS stream
      close(error);
      return;
    }
    processInput();
  }
  if (!closed()) updateInterest();
}

void NbdConnection::processInput() {
  // Device completions may arrive synchronously inside a submit and call back
  // in here; the outer loop picks up whatever they made possible.
  if (processing_) {
    reprocess_ = true;
    return;
  }
  processing_ = true;
  do {
    reprocess_ = false;
    while (!closed()) {
      bool progressed = false;
      switch (phase_) {
        case Phase::ClientFlags: progressed = processClientFlags(); break;
        case Phase::OptionHeader: progressed = processOptionHeader(); break;
        case Phase::OptionData: progressed = processOptionData(); break;
        case Phase::RequestHeader: progressed = processRequestHeader(); break;
        case Phase::WritePayload: progressed = processWritePayload(); break;
        case Phase::SkipPayload: progressed = processSkipPayload(); break;
        case Phase::TlsHandshake:  // readInput() drives the handshake
        case Phase::Finishing: break;
      }
      if (!progressed) break;
    }
  } while (reprocess_ && !closed());
  processing_ = false;
  if (!closed()) updateInterest();
}

bool NbdConnection::processClientFlags() {
  if (input_.size() - inputStart_ < 4) return false;
  uint32_t flags = loadBe32(input_.data() + inputStart_);
  inputStart_ += 4;
  if (flags & ~(kClientFlagFixedNewstyle | kClientFlagNoZeroes)) {
    close(fmt::format("unknown client flags {:#x}", flags));
    return false;
  }
  fixedNewstyle_ = flags & kClientFlagFixedNewstyle;
  noZeroes_ = flags & kClientFlagNoZeroes;
  phase_ = Phase::OptionHeader;
  return true;
}

bool NbdConnection::processOptionHeader() {
  if (input_.size() - inputStart_ < kOptionHeaderSize) return false;
  const uint8_t* header = input_.data() + inputStart_;
  uint64_t magic = loadBe64(header);
  uint32_t option = loadBe32(header + 8);
  uint32_t length = loadBe32(header + 12);
  inputStart_ += kOptionHeaderSize;
  if (magic != kOptionMagic) {
    close(fmt::format("bad option magic {:#x}", magic));
    return false;
  }
  if (!fixedNewstyle_ && option != kOptExportName) {
    close(fmt::format("{} ({}) without fixed newstyle negotiation", optionName(option), option));
    return false;
  }
  if (length > context_.limits->maxOptionLength) {
    if (option == kOptExportName) {
      close(fmt::format("NBD_OPT_EXPORT_NAME of {} bytes", length));
      return false;
    }
    // Reading and discarding the data would let a client keep the server busy
    // indefinitely; the protocol lets the server drop such a client.
    sendOptionError(option, kRepErrTooBig,
                    fmt::format("option data of {} bytes exceeds this server's limit of {} bytes", length,
                                context_.limits->maxOptionLength));
    phase_ = Phase::Finishing;
    finishIfIdle();
    return false;
  }
  currentOption_ = option;
  optionLength_ = length;
  phase_ = Phase::OptionData;
  return true;
}

bool NbdConnection::processOptionData() {
  if (input_.size() - inputStart_ < optionLength_) return false;
  auto begin = input_.begin() + static_cast<ptrdiff_t>(inputStart_);
  std::vector<uint8_t> data(begin, begin + optionLength_);
  inputStart_ += optionLength_;
  phase_ = Phase::OptionHeader;
  handleOption(currentOption_, data);
  return true;
}

bool NbdConnection::processRequestHeader() {
  if (!mayStartRequest()) return false;
  if (input_.size() - inputStart_ < kRequestSize) return false;
  const uint8_t* header = input_.data() + inputStart_;
  inputStart_ += kRequestSize;
  uint32_t magic = loadBe32(header);
  if (magic != kRequestMagic) {
    close(fmt::format("bad request magic {:#x}", magic));
    return false;
  }
  auto request = std::make_shared<Request>();
  request->flags = loadBe16(header + 4);
  request->type = loadBe16(header + 6);
  request->handle = loadBe64(header + 8);
  request->offset = loadBe64(header + 16);
  request->length = loadBe32(header + 24);

  const NbdExport& exported = *export_;
  uint64_t size = exported.device->sizeBytes();
  bool pastEnd = request->offset > size || request->length > size - request->offset;
  bool writes = request->type == kCmdWrite || request->type == kCmdTrim || request->type == kCmdWriteZeroes;
  uint32_t error = 0;
  std::string why;
  if (request->flags & ~kKnownCommandFlags) {
    error = kErrInval;
    why = fmt::format("unsupported command flags {:#x}", request->flags);
  } else if (writes && exported.readOnly) {
    error = kErrPerm;
    why = "the export is read-only";
  } else {
    switch (request->type) {
      case kCmdRead:
      case kCmdWrite:
        if (request->length > context_.limits->maxPayload) {
          error = kErrOverflow;
          why = fmt::format("{} of {} bytes exceeds the maximum of {}", commandName(request->type),
                            request->length, context_.limits->maxPayload);
        } else if (request->length == 0) {
          error = kErrInval;
          why = "zero-length request";
        } else if (pastEnd) {
          error = request->type == kCmdRead ? kErrInval : kErrNoSpc;
          why = fmt::format("{} bytes at offset {} go past the end of the export ({} bytes)", request->length,
                            request->offset, size);
        }
        break;
      case kCmdTrim:
      case kCmdWriteZeroes:
      case kCmdBlockStatus:
        if (request->type == kCmdBlockStatus && !(structuredReplies_ && allocationContext_)) {
          error = kErrInval;
          why = "NBD_CMD_BLOCK_STATUS without a negotiated metadata context";
        } else if (request->length == 0) {
          error = kErrInval;
          why = "zero-length request";
        } else if (pastEnd) {
          error = request->type == kCmdWriteZeroes ? kErrNoSpc : kErrInval;
          why = fmt::format("{} bytes at offset {} go past the end of the export ({} bytes)", request->length,
                            request->offset, size);
        }
        break;
      case kCmdFlush:
        break;
      case kCmdDisc:
        log::debug("nbd: {}: NBD_CMD_DISC", peer_);
        phase_ = Phase::Finishing;
        finishIfIdle();
        return false;
      default:
        error = kErrInval;
        why = fmt::format("unsupported command {} ({})", request->type, commandName(request->type));
        break;
    }
  }
  if (error != 0) {
    log::debug("nbd: {}: {} refused: {}", peer_, commandName(request->type), why);
    if (request->type == kCmdWrite) {
      skipRemaining_ = request->length;
      phase_ = Phase::SkipPayload;
    }
    sendError(request->handle, error, why);
    return true;
  }
  if (request->type == kCmdWrite) {
    request->buffer.resize(request->length);
    heldBytes_ += request->length;
    pendingWrite_ = std::move(request);
    phase_ = Phase::WritePayload;
    return true;
  }
  dispatch(std::move(request));
  return true;
}

bool NbdConnection::processWritePayload() {
  Request& request = *pendingWrite_;
  size_t available = input_.size() - inputStart_;
  size_t take = std::min(available, request.buffer.size() - request.filled);
  std::memcpy(request.buffer.data() + request.filled, input_.data() + inputStart_, take);
  inputStart_ += take;
  request.filled += take;
  if (request.filled < request.buffer.size()) return take > 0;
  phase_ = Phase::RequestHeader;
  dispatch(std::move(pendingWrite_));
  return true;
}

bool NbdConnection::processSkipPayload() {
  size_t available = input_.size() - inputStart_;
  size_t take = static_cast<size_t>(std::min<uint64_t>(available, skipRemaining_));
  inputStart_ += take;
  skipRemaining_ -= take;
  if (skipRemaining_ > 0) return take > 0;
  phase_ = Phase::RequestHeader;
  return true;
}

// ---- option haggling --------------------------------------------------------

const NbdExport* NbdConnection::findExport(const std::string& name) const {
  const auto& exports = *context_.exports;
  if (exports.empty()) return nullptr;
  if (name.empty()) return &exports.front();
  for (const auto& candidate : exports) {
    if (candidate.name == name) return &candidate;
  }
  return nullptr;
}

namespace {
uint16_t flagsFor(const NbdExport& exported, bool structured) {
  // One process serves every connection from one device, so a flush on any
  // connection covers writes completed on all of them: multi-conn is safe.
  uint16_t flags = kTransHasFlags | kTransSendFlush | kTransCanMultiConn;
  if (exported.readOnly) {
    flags |= kTransReadOnly;
  } else {
    flags |= kTransSendFua | kTransSendTrim | kTransSendWriteZeroes;
  }
  if (structured) flags |= kTransSendDf;  // reads are never fragmented
  return flags;
}
}  // namespace

void NbdConnection::sendOptionReply(uint32_t option, uint32_t type, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> reply;
  reply.reserve(kOptionReplyHeaderSize + payload.size());
  WireWriter(reply).u64(kOptionReplyMagic).u32(option).u32(type).u32(static_cast<uint32_t>(payload.size()));
  reply.insert(reply.end(), payload.begin(), payload.end());
  queueOutput(std::move(reply));
}

void NbdConnection::sendOptionError(uint32_t option, uint32_t type, const std::string& message) {
  log::debug("nbd: {}: {} refused: {}", peer_, optionName(option), message);
  std::vector<uint8_t> text(message.begin(), message.begin() + static_cast<ptrdiff_t>(
                                                                   std::min(message.size(), kMaxStringLength)));
  sendOptionReply(option, type, text);
}

void NbdConnection::handleOption(uint32_t option, const std::vector<uint8_t>& data) {
  log::debug("nbd: {}: {} ({} bytes)", peer_, optionName(option), data.size());
  if (context_.tls->mode == TlsMode::Require && !tlsEstablished_ && option != kOptStartTls && option != kOptAbort) {
    if (option == kOptExportName) {
      // It cannot be answered with an error; the protocol says to end the session.
      close("NBD_OPT_EXPORT_NAME without TLS, which this server requires");
      return;
    }
    return sendOptionError(option, kRepErrTlsReqd, "this server requires TLS: send NBD_OPT_STARTTLS first");
  }
  switch (option) {
    case kOptExportName:
      handleExportName(data);
      return;
    case kOptAbort:
      sendOptionReply(option, kRepAck);
      phase_ = Phase::Finishing;
      finishIfIdle();
      return;
    case kOptList:
      if (!data.empty()) return sendOptionError(option, kRepErrInvalid, "NBD_OPT_LIST takes no data");
      for (const auto& exported : *context_.exports) {
        std::vector<uint8_t> entry;
        WireWriter(entry).u32(static_cast<uint32_t>(exported.name.size())).bytes(exported.name).bytes(
            exported.description);
        sendOptionReply(option, kRepServer, entry);
      }
      sendOptionReply(option, kRepAck);
      return;
    case kOptStartTls:
      handleStartTls(data);
      return;
    case kOptInfo:
    case kOptGo:
      handleInfoOrGo(option, data);
      return;
    case kOptStructuredReply:
      if (!data.empty()) return sendOptionError(option, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
      structuredReplies_ = true;
      sendOptionReply(option, kRepAck);
      return;
    case kOptListMetaContext:
    case kOptSetMetaContext:
      handleMetaContext(option, data);
      return;
    default:
      sendOptionError(option, kRepErrUnsup, fmt::format("option {} is not supported", option));
      return;
  }
}

void NbdConnection::handleExportName(const std::vector<uint8_t>& data) {
  std::string name(data.begin(), data.end());
  const NbdExport* exported = findExport(name);
  if (exported == nullptr) {
    // NBD_OPT_EXPORT_NAME has no way to report an error but closing.
    close(fmt::format("no export named '{}'", name));
    return;
  }
  std::vector<uint8_t> reply;
  WireWriter writer(reply);
  writer.u64(exported->device->sizeBytes()).u16(flagsFor(*exported, structuredReplies_));
  if (!noZeroes_) writer.zeroes(124);
  queueOutput(std::move(reply));
  if (!closed()) enterTransmission(exported);
}

void NbdConnection::enterTransmission(const NbdExport* exported) {
  export_ = exported;
  handshakeTimer_.reset();  // negotiation is over; an idle client in transmission may stay
  log::debug("nbd: {}: serving export '{}'", peer_, exported->name);
  phase_ = Phase::RequestHeader;
}

void NbdConnection::onHandshakeLimit() {
  if (closed() || export_ != nullptr) return;
  double seconds = static_cast<double>(context_.limits->handshakeLimit.count()) / 1000.0;
  log::warn("nbd: {}: {} not finished within the handshake limit of {:g} s; disconnecting", peer_,
            phase_ == Phase::TlsHandshake ? "TLS handshake" : "negotiation", seconds);
  close("handshake limit reached");
}

void NbdConnection::handleStartTls(const std::vector<uint8_t>& data) {
  if (context_.tls->mode == TlsMode::Off) {
    return sendOptionError(kOptStartTls, kRepErrPolicy, "TLS is not enabled on this server");
  }
  if (tls_) return sendOptionError(kOptStartTls, kRepErrInvalid, "TLS is already active");
  if (!data.empty()) return sendOptionError(kOptStartTls, kRepErrInvalid, "NBD_OPT_STARTTLS takes no data");
  // Bytes after the option belong to the handshake (a client that did not wait for the reply).
  std::vector<uint8_t> early(input_.begin() + static_cast<ptrdiff_t>(inputStart_), input_.end());
  input_.clear();
  inputStart_ = 0;
  auto session = TlsSession::create(*context_.tls->credentials, socket_.get(), std::move(early));
  if (!session) {
    log::warn("nbd: {}: {}", peer_, session.error().message);
    close(session.error().message);
    return;
  }
  sendOptionReply(kOptStartTls, kRepAck);
  // What was negotiated in the clear does not carry over; the protocol has the client negotiate again.
  structuredReplies_ = false;
  allocationContext_ = false;
  allocationExport_ = nullptr;
  tls_ = std::move(*session);
  phase_ = Phase::TlsHandshake;
}

void NbdConnection::advanceHandshake() {
  auto step = tls_->handshake();
  if (!step) {
    log::warn("nbd: {}: TLS handshake failed: {}", peer_, step.error().message);
    tls_->flushTo(socket_.get());  // the alert telling the client why, if the socket takes it
    close("TLS handshake failed");
    return;
  }
  if (*step == TlsSession::Handshake::Done) {
    tlsEstablished_ = true;
    phase_ = Phase::OptionHeader;
    log::debug("nbd: {}: TLS established: {}", peer_, tls_->describe());
  }
  flushOutput();
}

void NbdConnection::handleInfoOrGo(uint32_t option, const std::vector<uint8_t>& data) {
  WireReader reader(data.data(), data.size());
  uint32_t nameLength = 0;
  std::string name;
  uint16_t count = 0;
  std::vector<uint16_t> requested;
  if (reader.u32(nameLength) && nameLength <= kMaxStringLength && reader.string(nameLength, name) &&
      reader.u16(count)) {
    for (uint16_t i = 0; i < count; ++i) {
      uint16_t type = 0;
      if (!reader.u16(type)) break;
      requested.push_back(type);
    }
  }
  if (reader.failed() || nameLength > kMaxStringLength || reader.remaining() != 0) {
    return sendOptionError(option, kRepErrInvalid, fmt::format("malformed {} data", optionName(option)));
  }
  const NbdExport* exported = findExport(name);
  if (exported == nullptr) {
    return sendOptionError(option, kRepErrUnknown, fmt::format("no export named '{}'", name));
  }

  std::vector<uint8_t> info;
  WireWriter(info).u16(kInfoExport).u64(exported->device->sizeBytes()).u16(flagsFor(*exported, structuredReplies_));
  sendOptionReply(option, kRepInfo, info);
  // Sent whether asked for or not, as the protocol allows: clients learn the 32 MiB cap.
  info.clear();
  WireWriter(info).u16(kInfoBlockSize).u32(1).u32(context_.limits->preferredBlockSize).u32(
      context_.limits->maxPayload);
  sendOptionReply(option, kRepInfo, info);
  bool sentName = false, sentDescription = false;
  for (uint16_t type : requested) {
    if (type == kInfoName && !sentName) {
      info.clear();
      WireWriter(info).u16(kInfoName).bytes(exported->name);
      sendOptionReply(option, kRepInfo, info);
      sentName = true;
    } else if (type == kInfoDescription && !sentDescription && !exported->description.empty()) {
      info.clear();
      WireWriter(info).u16(kInfoDescription).bytes(exported->description);
      sendOptionReply(option, kRepInfo, info);
      sentDescription = true;
    }
  }
  sendOptionReply(option, kRepAck);
  if (option == kOptGo && !closed()) {
    if (allocationExport_ != exported) allocationContext_ = false;
    enterTransmission(exported);
  }
}

void NbdConnection::handleMetaContext(uint32_t option, const std::vector<uint8_t>& data) {
  if (!structuredReplies_) {
    return sendOptionError(option, kRepErrInvalid, "metadata contexts need structured replies first");
  }
  WireReader reader(data.data(), data.size());
  uint32_t nameLength = 0, count = 0;
  std::string name;
  std::vector<std::string> queries;
  bool malformed = false;
  if (reader.u32(nameLength) && nameLength <= kMaxStringLength && reader.string(nameLength, name) &&
      reader.u32(count)) {
    for (uint32_t i = 0; i < count; ++i) {
      uint32_t length = 0;
      std::string query;
      if (!reader.u32(length) || length > kMaxStringLength || !reader.string(length, query)) {
        malformed = true;
        break;
      }
      queries.push_back(std::move(query));
    }
  }
  if (malformed || reader.failed() || nameLength > kMaxStringLength || reader.remaining() != 0) {
    return sendOptionError(option, kRepErrInvalid, fmt::format("malformed {} data", optionName(option)));
  }
  const NbdExport* exported = findExport(name);
  if (exported == nullptr) {
    return sendOptionError(option, kRepErrUnknown, fmt::format("no export named '{}'", name));
  }
  bool set = option == kOptSetMetaContext;
  bool matches = false;
  if (queries.empty()) {
    matches = !set;  // an empty LIST asks for every context; an empty SET selects none
  }
  for (const auto& query : queries) {
    if (query == kBaseAllocation || (!set && query == "base:")) matches = true;
  }
  if (matches) {
    std::vector<uint8_t> reply;
    WireWriter(reply).u32(set ? kBaseAllocationId : 0).bytes(kBaseAllocation);
    sendOptionReply(option, kRepMetaContext, reply);
  }
  if (set) {
    allocationContext_ = matches;
    allocationExport_ = exported;
  }
  sendOptionReply(option, kRepAck);
}

// ---- transmission ---------------------------------------------------------

IoCompletion NbdConnection::track(std::function<void(int)> done) {
  ++inflight_;
  return [self = shared_from_this(), done = std::move(done)](int result) {
    --self->inflight_;
    if (self->closed()) return;  // the client is gone; its reply has nowhere to go
    done(result);
    if (self->closed()) return;
    self->processInput();  // a finished request may let held-back input proceed
    self->finishIfIdle();
  };
}

void NbdConnection::dispatch(std::shared_ptr<Request> request) {
  BlockDevice& device = *export_->device;
  auto afterDevice = [this, request](int result) { finishWithFua(request, result); };
  switch (request->type) {
    case kCmdRead:
      submitRead(std::move(request));
      return;
    case kCmdWrite:
      submitWrite(std::move(request));
      return;
    case kCmdFlush:
      device.flush(track([this, request](int result) { complete(*request, result); }));
      return;
    case kCmdTrim:
      device.discard(request->offset, request->length, track(afterDevice));
      return;
    case kCmdWriteZeroes:
      device.writeZeroes(request->offset, request->length, track(afterDevice));
      return;
    case kCmdBlockStatus:
      replyBlockStatus(*request);
      return;
    default:
      sendError(request->handle, kErrInval, "unsupported command");
      return;
  }
}

void NbdConnection::submitRead(std::shared_ptr<Request> request) {
  size_t room = structuredReplies_ ? kStructuredReadRoom : kSimpleReadRoom;
  request->buffer.resize(room + request->length);
  heldBytes_ += request->buffer.size();
  iovec data{request->buffer.data() + room, request->length};
  export_->device->readv(request->offset, {data}, track([this, request, room](int result) {
    heldBytes_ -= request->buffer.size();
    if (result < 0) {
      request->buffer = {};
      sendError(request->handle, errnoToNbdError(result),
                fmt::format("read of {} bytes at offset {}: {}", request->length, request->offset,
                            std::strerror(-result)));
      return;
    }
    uint8_t* header = request->buffer.data();
    if (room == kStructuredReadRoom) {
      storeBe32(header, kStructuredReplyMagic);
      storeBe16(header + 4, kReplyFlagDone);
      storeBe16(header + 6, kReplyTypeOffsetData);
      storeBe64(header + 8, request->handle);
      storeBe32(header + 16, 8 + request->length);
      storeBe64(header + 20, request->offset);
    } else {
      storeBe32(header, kSimpleReplyMagic);
      storeBe32(header + 4, 0);
      storeBe64(header + 8, request->handle);
    }
    queueOutput(std::move(request->buffer));
  }));
}

void NbdConnection::submitWrite(std::shared_ptr<Request> request) {
  iovec data{request->buffer.data(), request->buffer.size()};
  export_->device->writev(request->offset, {data}, track([this, request](int result) {
    heldBytes_ -= request->buffer.size();
    request->buffer = {};
    finishWithFua(request, result);
  }));
}

void NbdConnection::finishWithFua(std::shared_ptr<Request> request, int result) {
  if (result >= 0 && (request->flags & kCmdFlagFua)) {
    // Forced unit access: the reply waits until the data is durable.
    export_->device->flush(track([this, request](int flushed) { complete(*request, flushed); }));
    return;
  }
  complete(*request, result);
}

void NbdConnection::replyBlockStatus(const Request& request) {
  // The descriptors: u32 length, u32 flags, merged where neighbours agree.
  std::vector<std::pair<uint32_t, uint32_t>> extents;
  size_t limit = (request.flags & kCmdFlagReqOne) ? 1 : context_.limits->maxBlockStatusExtents;
  uint64_t position = request.offset;
  uint64_t end = request.offset + request.length;
  while (position < end) {
    AllocationExtent extent{end - position, 0};
    if (export_->blockStatus) {
      auto status = export_->blockStatus(position, end - position);
      if (!status) {
        sendError(request.handle, kErrIo, status.error().message);
        return;
      }
      if (status->length == 0 || status->length > end - position) {
        sendError(request.handle, kErrIo, "block status source returned an out-of-range extent");
        return;
      }
      extent = *status;
    }
    if (!extents.empty() && extents.back().second == extent.flags) {
      extents.back().first += static_cast<uint32_t>(extent.length);
    } else {
      if (extents.size() == limit) break;
      extents.emplace_back(static_cast<uint32_t>(extent.length), extent.flags);
    }
    position += extent.length;
  }
  std::vector<uint8_t> reply;
  uint32_t payload = 4 + 8 * static_cast<uint32_t>(extents.size());
  WireWriter writer(reply);
  writer.u32(kStructuredReplyMagic).u16(kReplyFlagDone).u16(kReplyTypeBlockStatus).u64(request.handle).u32(payload);
  writer.u32(kBaseAllocationId);
  for (auto [length, flags] : extents) writer.u32(length).u32(flags);
  queueOutput(std::move(reply));
}

void NbdConnection::complete(const Request& request, int result, const std::string& message) {
  if (result < 0) {
    sendError(request.handle, errnoToNbdError(result),
              message.empty() ? fmt::format("{} of {} bytes at offset {}: {}", commandName(request.type),
                                            request.length, request.offset, std::strerror(-result))
                              : message);
    return;
  }
  std::vector<uint8_t> reply;
  WireWriter(reply).u32(kSimpleReplyMagic).u32(0).u64(request.handle);
  queueOutput(std::move(reply));
}

void NbdConnection::sendError(uint64_t handle, uint32_t error, const std::string& message) {
  std::vector<uint8_t> reply;
  WireWriter writer(reply);
  if (structuredReplies_) {
    std::string text = message.substr(0, kMaxStringLength);
    writer.u32(kStructuredReplyMagic).u16(kReplyFlagDone).u16(kReplyTypeError).u64(handle);
    writer.u32(static_cast<uint32_t>(6 + text.size())).u32(error).u16(static_cast<uint16_t>(text.size())).bytes(text);
  } else {
    writer.u32(kSimpleReplyMagic).u32(error).u64(handle);
  }
  queueOutput(std::move(reply));
}

// ---- output ---------------------------------------------------------------

void NbdConnection::queueOutput(std::vector<uint8_t> bytes) {
  if (closed() || bytes.empty()) return;
  outputBytes_ += bytes.size();
  output_.push_back(OutputChunk{std::move(bytes), 0});
  flushOutput();
}

void NbdConnection::flushOutput() {
  if (closed()) return;
  // Before TLS is up the queue goes out as it is (the STARTTLS reply included).
  bool written = (tlsEstablished_ || writePlain()) && (!tls_ || encryptAndWrite());
  if (!written || closed()) return;
  updateInterest();
  finishIfIdle();
}

bool NbdConnection::writePlain() {
  while (!output_.empty()) {
    iovec vectors[64];
    size_t count = 0;
    for (auto it = output_.begin(); it != output_.end() && count < 64; ++it, ++count) {
      vectors[count] = iovec{it->bytes.data() + it->sent, it->bytes.size() - it->sent};
    }
    msghdr message{};
    message.msg_iov = vectors;
    message.msg_iovlen = count;
    ssize_t sent = ::sendmsg(socket_.get(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close(fmt::format("write: {}", std::strerror(errno)));
      return false;
    }
    size_t remaining = static_cast<size_t>(sent);
    outputBytes_ -= remaining;
    while (remaining > 0) {
      OutputChunk& front = output_.front();
      size_t take = std::min(remaining, front.bytes.size() - front.sent);
      front.sent += take;
      remaining -= take;
      if (front.sent == front.bytes.size()) output_.pop_front();
    }
  }
  return true;
}

bool NbdConnection::encryptAndWrite() {
  while (true) {
    if (!tls_->flushTo(socket_.get())) {
      close(tls_->error());
      return false;
    }
    // Encrypt more only once the socket took the last batch, so memory stays bounded.
    if (!tlsEstablished_ || tls_->outgoingBytes() > 0 || output_.empty()) return true;
    while (!output_.empty() && tls_->outgoingBytes() < kTlsEncryptAhead) {
      OutputChunk& front = output_.front();
      ssize_t taken = tls_->send(front.bytes.data() + front.sent, front.bytes.size() - front.sent);
      if (taken <= 0) {
        log::warn("nbd: {}: TLS: {}", peer_, tls_->error());
        close("TLS: " + tls_->error());
        return false;
      }
      front.sent += static_cast<size_t>(taken);
      outputBytes_ -= static_cast<size_t>(taken);
      if (front.sent == front.bytes.size()) output_.pop_front();
    }
  }
}

bool NbdConnection::outputPending() const { return !output_.empty() || (tls_ && tls_->outgoingBytes() > 0); }

size_t NbdConnection::bufferedOutput() const { return outputBytes_ + (tls_ ? tls_->outgoingBytes() : 0); }

void NbdConnection::updateInterest() {
  if (closed()) return;
  bool input = wantInput();
  uint32_t events = (input ? EPOLLIN : 0u) | (outputPending() ? EPOLLOUT : 0u);
  if (input && tls_ && !readScheduled_ && tls_->hasBufferedInput()) {
    // Input GnuTLS already holds never makes the socket readable: come back for it.
    readScheduled_ = true;
    context_.loop->post([self = shared_from_this()] {
      self->readScheduled_ = false;
      if (!self->closed()) self->readInput();
    });
  }
  if (events == watchedEvents_) return;
  watchedEvents_ = events;
  if (auto modified = context_.loop->modify(socket_.get(), events); !modified) {
    close(modified.error().message);
  }
}

void NbdConnection::finishIfIdle() {
  if (closed() || phase_ != Phase::Finishing || inflight_ > 0 || outputPending()) return;
  if (tlsEstablished_ && !tlsClosing_) {
    tlsClosing_ = true;
    tls_->bye();    // close_notify, so the client knows nothing was cut off
    flushOutput();  // comes back here once it is out
    return;
  }
  close("session finished");
}

}  // namespace strata::storage::nbd
