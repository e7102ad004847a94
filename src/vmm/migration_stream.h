// The live migration wire format and its TCP plumbing. A migration is one or
// more TCP connections ("channels"); each opens with a hello, carries page
// records and ends with the CRC-32 of everything it carried; channel 0 also
// carries the device state and, after its end, the destination's one-line
// answer ("OK" or "ERR reason"). Each pre-copy round ends with a sync record
// on every channel, which the destination answers ("SYNCED") once it applied
// everything before it: the pause then never waits for a backlog sitting in
// socket buffers, and the page rate the source measures is the destination's.
// A page always travels on the same channel
// (page number modulo the channel count), so its newer copies arrive after older ones.
// With --with-disks, channel 0 also carries the disk mirror's records (migration_disks.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "machine/guest_ram.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace strata::vmm::migration {

inline constexpr uint32_t kVersion = 2;  // 2: sync records
inline constexpr uint32_t kMaxChannels = 16;
inline constexpr uint64_t kPageBytes = 4096;
inline constexpr uint64_t kMaxStateBytes = 64ull << 20;
inline constexpr uint32_t kMaxDiskRecordBytes = 128u << 10;

struct Hello {
  uint32_t channel = 0;
  uint32_t channels = 1;
  uint64_t session = 0;  // the same on every channel of one migration
  uint64_t memoryBytes = 0;
};

// "tcp:HOST:PORT" with HOST an IPv4 address or "localhost".
struct TcpAddress {
  std::string host;
  uint16_t port = 0;
  std::string text() const;
};
Result<TcpAddress> parseTcpAddress(const std::string& text);
// Connects with a time limit; sends and receives then time out after `ioSeconds`.
Result<UniqueFd> connectTcp(const TcpAddress& address, int ioSeconds);
Result<UniqueFd> listenTcp(const TcpAddress& address);
// Waits up to timeoutMs for a connection (-1: forever).
Result<UniqueFd> acceptTcp(int listenFd, int timeoutMs, int ioSeconds);
// Send and receive time limits (and no Nagle delay) for a channel's socket.
void setTimeouts(int fd, int ioSeconds);
// The source's sends: all of it, within the socket's send time limit.
Result<void> sendAll(int fd, const uint8_t* data, size_t size);

// Buffers records for one channel and sends them; pages are zstd-compressed when asked
// (and when that makes them smaller). Not thread-safe: one sender thread.
class ChannelWriter {
 public:
  ChannelWriter(UniqueFd socket, bool compress);
  ~ChannelWriter();
  ChannelWriter(ChannelWriter&&) noexcept;
  ChannelWriter& operator=(ChannelWriter&&) = delete;

  Result<void> sendHello(const Hello& hello);
  // A zero page goes as its number only.
  Result<void> sendPage(uint64_t page, const uint8_t* data);
  Result<void> sendState(std::span<const uint8_t> state);
  // Post-copy: the pages the destination must fetch from here once it runs (migration_postcopy.h).
  Result<void> sendPostcopyPages(std::span<const uint64_t> pages);
  // One disk mirror record, at most kMaxDiskRecordBytes (its content is migration_disks' business).
  Result<void> sendDiskRecord(std::span<const uint8_t> record);
  // Everything buffered, then a sync record: awaitSync() returns once the destination applied it all.
  Result<void> sendSync();
  Result<void> awaitSync();
  Result<void> sendEnd();  // the CRC record, then everything buffered
  uint64_t bytesSent() const { return bytesSent_ + buffer_.size(); }
  int fd() const { return socket_.get(); }

 private:
  void append(const void* data, size_t size);
  Result<void> flush();
  UniqueFd socket_;
  bool compress_;
  ZSTD_CCtx_s* zstd_ = nullptr;
  std::vector<uint8_t> buffer_;
  std::vector<uint8_t> compressed_;
  uint32_t crc_ = 0;
  uint64_t bytesSent_ = 0;
};

// Reads one channel: checks the hello, writes page records into guest RAM
// (every length and page number checked) and the state record into `state`,
// answering each sync record, until the end record, whose CRC must match.
class ChannelReader {
 public:
  explicit ChannelReader(UniqueFd socket);
  ~ChannelReader();
  ChannelReader(ChannelReader&&) noexcept;
  ChannelReader& operator=(ChannelReader&&) = delete;

  Result<Hello> readHello();
  // Into `ram`; state: null on channels other than 0. The first round's pages (the
  // bulk: every page holding data) are stored without being faulted into this
  // process (GuestRam::storePageUnmapped; bench/README.md, migration throughput).
  // Pages after the first sync record, which the guest dirtied meanwhile and will
  // likely touch again at once, are stored through the mapping: faulted in here
  // before the switch-over rather than by the guest after it.
  Result<void> receive(machine::GuestRam& ram, std::vector<uint8_t>* state);
  // Set by a post-copy record: the migration switches over with these pages still at the source.
  bool postcopy() const { return postcopy_; }
  const std::vector<uint64_t>& postcopyPages() const { return postcopyPages_; }
  // Where disk records go; without one they are refused.
  using DiskSink = std::function<Result<void>(std::span<const uint8_t>)>;
  // The next record, which must be a disk record (a mirroring source sends its
  // disk manifest first, before any page); for a destination that makes its
  // disk files from that manifest before it builds the board.
  Result<std::vector<uint8_t>> readDiskRecord();
  void setDiskSink(DiskSink sink) { diskSink_ = std::move(sink); }
  int fd() const { return socket_.get(); }

 private:
  Result<void> read(void* data, size_t size);
  Result<std::vector<uint8_t>> readDiskRecordBody();  // after its kind byte
  UniqueFd socket_;
  ZSTD_DCtx_s* zstd_ = nullptr;
  std::vector<uint8_t> buffer_;
  size_t bufferAt_ = 0;
  uint32_t crc_ = 0;
  bool postcopy_ = false;
  std::vector<uint64_t> postcopyPages_;
  DiskSink diskSink_;
};

// The destination's answer on channel 0 after the end records: "OK" or "ERR reason".
Result<void> sendAnswer(int fd, const std::string& line);
Result<std::string> readAnswer(int fd);

}  // namespace strata::vmm::migration
