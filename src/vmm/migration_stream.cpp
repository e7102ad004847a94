#include "vmm/migration_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>

#include <fmt/core.h>

#include "base/crc32.h"

namespace strata::vmm::migration {
namespace {

// Layout (little-endian). Hello: "STRATAMG" | u32 version | u32 channel |
// u32 channels | u64 session | u64 memory bytes. Records: u8 kind, then
// Page: u64 page | u32 length (0: zero page, 4096: raw, less: zstd) | bytes;
// State: u32 length | bytes; End: u32 CRC-32 of every byte before the End record;
// Disk: u32 length | bytes. Postcopy (channel 0, before the state): u64 count | count x u64 page.
// Sync: nothing more; the destination answers it with the line "SYNCED".
constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'M', 'G'};
enum RecordKind : uint8_t {
  kPageRecord = 1,
  kStateRecord = 2,
  kEndRecord = 3,
  kDiskRecord = 4,
  kPostcopyRecord = 5,
  kSyncRecord = 6,
};
constexpr char kSynced[] = "SYNCED";
constexpr size_t kFlushBytes = 256 * 1024;
constexpr size_t kMaxAnswerBytes = 1024;

Result<sockaddr_in> socketAddress(const TcpAddress& address) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(address.port);
  const std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1)
    return Error{fmt::format("'{}' is not an IPv4 address", address.host)};
  return sa;
}

}  // namespace

Result<void> sendAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    ssize_t sent = ::send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Error{"the destination stopped reading (timed out)"};
    if (sent <= 0) return errnoError("sending to the destination");
    data += sent;
    size -= static_cast<size_t>(sent);
  }
  return {};
}

void setTimeouts(int fd, int ioSeconds) {
  timeval timeout{ioSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string TcpAddress::text() const { return fmt::format("tcp:{}:{}", host, port); }

Result<TcpAddress> parseTcpAddress(const std::string& text) {
  const std::string usage = fmt::format("'{}': expected tcp:HOST:PORT (HOST an IPv4 address or localhost)", text);
  if (text.rfind("tcp:", 0) != 0) return Error{usage};
  const size_t colon = text.rfind(':');
  if (colon <= 4) return Error{usage};
  TcpAddress address{text.substr(4, colon - 4), 0};
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) || std::stoul(port) > 65535)
    return Error{usage};
  address.port = static_cast<uint16_t>(std::stoul(port));
  if (auto checked = socketAddress(address); !checked) return Error{usage};
  return address;
}

Result<UniqueFd> connectTcp(const TcpAddress& address, int ioSeconds) {
  auto sa = socketAddress(address);
  if (!sa) return sa.error();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket");
  setTimeouts(fd.get(), ioSeconds);  // SO_SNDTIMEO also limits connect
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0)
    return errnoError(fmt::format("connecting to {}", address.text()));
  return fd;
}

Result<UniqueFd> listenTcp(const TcpAddress& address) {
  auto sa = socketAddress(address);
  if (!sa) return sa.error();
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0 || ::listen(fd.get(), kMaxChannels) != 0)
    return errnoError(address.text());
  return fd;
}

Result<UniqueFd> acceptTcp(int listenFd, int timeoutMs, int ioSeconds) {
  pollfd waiting{listenFd, POLLIN, 0};
  int ready;
  do ready = ::poll(&waiting, 1, timeoutMs);
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return errnoError("poll");
  if (ready == 0) return Error{"timed out waiting for the source's next channel"};
  UniqueFd fd(::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) return errnoError("accept");
  setTimeouts(fd.get(), ioSeconds);
  return fd;
}

// ---- ChannelWriter ----

ChannelWriter::ChannelWriter(UniqueFd socket, bool compress) : socket_(std::move(socket)), compress_(compress) {
  if (compress_) zstd_ = ZSTD_createCCtx();
  buffer_.reserve(kFlushBytes + 2 * kPageBytes);
  compressed_.resize(ZSTD_compressBound(kPageBytes));
}

ChannelWriter::~ChannelWriter() { ZSTD_freeCCtx(zstd_); }

ChannelWriter::ChannelWriter(ChannelWriter&& other) noexcept
    : socket_(std::move(other.socket_)),
      compress_(other.compress_),
      zstd_(std::exchange(other.zstd_, nullptr)),
      buffer_(std::move(other.buffer_)),
      compressed_(std::move(other.compressed_)),
      crc_(other.crc_),
      bytesSent_(other.bytesSent_) {}

void ChannelWriter::append(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  buffer_.insert(buffer_.end(), bytes, bytes + size);
}

Result<void> ChannelWriter::flush() {
  crc_ = crc32Update(crc_, buffer_.data(), buffer_.size());
  auto sent = sendAll(socket_.get(), buffer_.data(), buffer_.size());
  bytesSent_ += buffer_.size();
  buffer_.clear();
  return sent;
}

Result<void> ChannelWriter::sendHello(const Hello& hello) {
  append(kMagic, sizeof kMagic);
  for (uint32_t word : {kVersion, hello.channel, hello.channels}) append(&word, 4);
  append(&hello.session, 8);
  append(&hello.memoryBytes, 8);
  return flush();
}

Result<void> ChannelWriter::sendPage(uint64_t page, const uint8_t* data) {
  static const uint8_t kZeroPage[kPageBytes] = {};
  const uint8_t kind = kPageRecord;
  append(&kind, 1);
  append(&page, 8);
  uint32_t length = kPageBytes;
  const uint8_t* payload = data;
  if (std::memcmp(data, kZeroPage, kPageBytes) == 0) {
    length = 0;
  } else if (zstd_ != nullptr) {
    size_t packed = ZSTD_compressCCtx(zstd_, compressed_.data(), compressed_.size(), data, kPageBytes, 1);
    if (!ZSTD_isError(packed) && packed < kPageBytes) {
      length = static_cast<uint32_t>(packed);
      payload = compressed_.data();
    }
  }
  append(&length, 4);
  append(payload, length);
  if (buffer_.size() >= kFlushBytes) return flush();
  return {};
}

Result<void> ChannelWriter::sendState(std::span<const uint8_t> state) {
  const uint8_t kind = kStateRecord;
  const uint32_t length = static_cast<uint32_t>(state.size());
  append(&kind, 1);
  append(&length, 4);
  append(state.data(), state.size());
  return flush();
}

Result<void> ChannelWriter::sendPostcopyPages(std::span<const uint64_t> pages) {
  const uint8_t kind = kPostcopyRecord;
  const uint64_t count = pages.size();
  append(&kind, 1);
  append(&count, 8);
  append(pages.data(), pages.size_bytes());
  return flush();
}

Result<void> ChannelWriter::sendDiskRecord(std::span<const uint8_t> record) {
  const uint8_t kind = kDiskRecord;
  const uint32_t length = static_cast<uint32_t>(record.size());
  append(&kind, 1);
  append(&length, 4);
  append(record.data(), record.size());
  if (buffer_.size() >= kFlushBytes) return flush();
  return {};
}

Result<void> ChannelWriter::sendSync() {
  const uint8_t kind = kSyncRecord;
  append(&kind, 1);
  return flush();
}

Result<void> ChannelWriter::awaitSync() {
  auto answer = readAnswer(socket_.get());
  if (!answer) return answer.error();
  if (answer->rfind("ERR ", 0) == 0) return Error{"the destination refused the VM: " + answer->substr(4)};
  if (*answer != kSynced) return Error{"the destination answered a sync with '" + *answer + "'"};
  return {};
}

Result<void> ChannelWriter::sendEnd() {
  const uint8_t kind = kEndRecord;
  append(&kind, 1);
  if (auto flushed = flush(); !flushed) return flushed;
  // The CRC covers everything up to and including the End kind byte.
  const uint32_t crc = crc_;
  append(&crc, 4);
  return flush();
}

// ---- ChannelReader ----

ChannelReader::ChannelReader(UniqueFd socket) : socket_(std::move(socket)), zstd_(ZSTD_createDCtx()) {
  buffer_.reserve(kFlushBytes);
}

ChannelReader::~ChannelReader() { ZSTD_freeDCtx(zstd_); }

ChannelReader::ChannelReader(ChannelReader&& other) noexcept
    : socket_(std::move(other.socket_)),
      zstd_(std::exchange(other.zstd_, nullptr)),
      buffer_(std::move(other.buffer_)),
      bufferAt_(other.bufferAt_),
      crc_(other.crc_),
      postcopy_(other.postcopy_),
      postcopyPages_(std::move(other.postcopyPages_)),
      diskSink_(std::move(other.diskSink_)) {}

Result<void> ChannelReader::read(void* data, size_t size) {
  auto* out = static_cast<uint8_t*>(data);
  while (size > 0) {
    if (bufferAt_ == buffer_.size()) {
      buffer_.resize(kFlushBytes);
      ssize_t got = ::recv(socket_.get(), buffer_.data(), buffer_.size(), 0);
      buffer_.resize(got > 0 ? static_cast<size_t>(got) : 0);
      bufferAt_ = 0;
      if (got < 0 && errno == EINTR) continue;
      if (got == 0) return Error{"the source closed the connection mid-stream"};
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Error{"the source went silent (timed out)"};
      if (got < 0) return errnoError("receiving from the source");
    }
    size_t take = std::min(size, buffer_.size() - bufferAt_);
    std::memcpy(out, buffer_.data() + bufferAt_, take);
    crc_ = crc32Update(crc_, out, take);
    bufferAt_ += take;
    out += take;
    size -= take;
  }
  return {};
}

Result<Hello> ChannelReader::readHello() {
  char magic[8];
  uint32_t version = 0;
  Hello hello;
  if (auto got = read(magic, sizeof magic); !got) return got.error();
  if (std::memcmp(magic, kMagic, sizeof magic) != 0) return Error{"not a strata migration stream (bad magic)"};
  for (uint32_t* word : {&version, &hello.channel, &hello.channels})
    if (auto got = read(word, 4); !got) return got.error();
  for (uint64_t* word : {&hello.session, &hello.memoryBytes})
    if (auto got = read(word, 8); !got) return got.error();
  if (version != kVersion) return Error{fmt::format("migration stream version {}, this strata speaks {}", version, kVersion)};
  if (hello.channels == 0 || hello.channels > kMaxChannels || hello.channel >= hello.channels)
    return Error{fmt::format("bad channel {} of {} (at most {})", hello.channel, hello.channels, kMaxChannels)};
  return hello;
}

Result<std::vector<uint8_t>> ChannelReader::readDiskRecordBody() {
  uint32_t length = 0;
  if (auto got = read(&length, 4); !got) return got.error();
  if (length > kMaxDiskRecordBytes) return Error{fmt::format("unexpected disk record ({} bytes)", length)};
  std::vector<uint8_t> record(length);
  if (auto got = read(record.data(), length); !got) return got.error();
  return record;
}

Result<std::vector<uint8_t>> ChannelReader::readDiskRecord() {
  uint8_t kind = 0;
  if (auto got = read(&kind, 1); !got) return got.error();
  if (kind != kDiskRecord) return Error{"the source does not mirror its disks (migrate --with-disks)"};
  return readDiskRecordBody();
}

Result<void> ChannelReader::receive(machine::GuestRam& ram, std::vector<uint8_t>* state) {
  const uint64_t pages = ram.size() / kPageBytes;
  std::vector<uint8_t> packed(kPageBytes), unpacked(kPageBytes);
  bool bulk = true;  // until the first round ends
  for (;;) {
    uint8_t kind = 0;
    if (auto got = read(&kind, 1); !got) return got;
    if (kind == kEndRecord) {
      const uint32_t expected = crc_;
      uint32_t crc = 0;
      if (auto got = read(&crc, 4); !got) return got;
      if (crc != expected) return Error{fmt::format("stream checksum mismatch ({:#x} sent, {:#x} received)", crc, expected)};
      return {};
    }
    if (kind == kSyncRecord) {
      bulk = false;
      if (auto answered = sendAnswer(socket_.get(), kSynced); !answered) return answered;
      continue;
    }
    if (kind == kStateRecord) {
      uint32_t length = 0;
      if (auto got = read(&length, 4); !got) return got;
      if (state == nullptr || !state->empty() || length > kMaxStateBytes)
        return Error{fmt::format("unexpected device state record ({} bytes)", length)};
      state->resize(length);
      if (auto got = read(state->data(), length); !got) return got;
      continue;
    }
    if (kind == kPostcopyRecord) {
      uint64_t count = 0;
      if (auto got = read(&count, 8); !got) return got;
      if (state == nullptr || postcopy_ || count > pages)
        return Error{fmt::format("unexpected post-copy record ({} pages)", count)};
      postcopy_ = true;
      postcopyPages_.resize(count);
      if (auto got = read(postcopyPages_.data(), count * 8); !got) return got;
      for (uint64_t page : postcopyPages_)
        if (page >= pages) return Error{fmt::format("post-copy page {} is beyond guest RAM ({} pages)", page, pages)};
      continue;
    }
    if (kind == kDiskRecord) {
      if (!diskSink_) return Error{"unexpected disk record"};
      auto record = readDiskRecordBody();
      if (!record) return record.error();
      if (auto applied = diskSink_(*record); !applied) return applied;
      continue;
    }
    if (kind != kPageRecord) return Error{fmt::format("unknown record kind {}", kind)};
    uint64_t page = 0;
    uint32_t length = 0;
    if (auto got = read(&page, 8); !got) return got;
    if (auto got = read(&length, 4); !got) return got;
    if (page >= pages) return Error{fmt::format("page {} is beyond guest RAM ({} pages)", page, pages)};
    if (length > kPageBytes) return Error{fmt::format("page {} record of {} bytes", page, length)};
    // The bulk's pages by way of `unpacked` (storePageUnmapped), later ones straight through the mapping.
    uint8_t* target = bulk ? unpacked.data() : ram.hostBase() + page * kPageBytes;
    if (length == 0) {
      if (!bulk) std::memset(target, 0, kPageBytes);
    } else if (length == kPageBytes) {
      if (auto got = read(target, kPageBytes); !got) return got;
    } else {
      if (auto got = read(packed.data(), length); !got) return got;
      size_t size = ZSTD_decompressDCtx(zstd_, target, kPageBytes, packed.data(), length);
      if (ZSTD_isError(size) || size != kPageBytes)
        return Error{fmt::format("page {}: compressed data does not unpack to a page", page)};
    }
    if (bulk)
      if (auto stored = ram.storePageUnmapped(page * kPageBytes, length == 0 ? nullptr : target); !stored) return stored;
  }
}

Result<void> sendAnswer(int fd, const std::string& line) {
  std::string text = line.substr(0, kMaxAnswerBytes - 1) + "\n";
  return sendAll(fd, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

Result<std::string> readAnswer(int fd) {
  std::string line;
  char c;
  while (line.size() < kMaxAnswerBytes) {
    ssize_t got = ::recv(fd, &c, 1, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) return Error{"the destination closed the connection before confirming"};
    if (got < 0) return errnoError("waiting for the destination's confirmation");
    if (c == '\n') return line;
    line += c;
  }
  return Error{"the destination's answer is too long"};
}

}  // namespace strata::vmm::migration
