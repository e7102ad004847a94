// NBD wire protocol constants and big-endian field helpers (fixed newstyle
// handshake, option haggling, simple and structured replies), as specified in
// the NBD project's doc/proto.md. Shared by the server and its tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::storage::nbd {

// Magic numbers.
inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943ull;     // "NBDMAGIC"
inline constexpr uint64_t kOptionMagic = 0x49484156454F5054ull;  // "IHAVEOPT"
inline constexpr uint64_t kOptionReplyMagic = 0x3e889045565a9ull;
inline constexpr uint32_t kRequestMagic = 0x25609513u;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33efu;

// Handshake flags (server) and client flags.
inline constexpr uint16_t kFlagFixedNewstyle = 1u << 0;
inline constexpr uint16_t kFlagNoZeroes = 1u << 1;
inline constexpr uint32_t kClientFlagFixedNewstyle = 1u << 0;
inline constexpr uint32_t kClientFlagNoZeroes = 1u << 1;

// Transmission flags.
inline constexpr uint16_t kTransHasFlags = 1u << 0;
inline constexpr uint16_t kTransReadOnly = 1u << 1;
inline constexpr uint16_t kTransSendFlush = 1u << 2;
inline constexpr uint16_t kTransSendFua = 1u << 3;
inline constexpr uint16_t kTransRotational = 1u << 4;
inline constexpr uint16_t kTransSendTrim = 1u << 5;
inline constexpr uint16_t kTransSendWriteZeroes = 1u << 6;
inline constexpr uint16_t kTransSendDf = 1u << 7;
inline constexpr uint16_t kTransCanMultiConn = 1u << 8;

// Options.
enum Option : uint32_t {
  kOptExportName = 1,
  kOptAbort = 2,
  kOptList = 3,
  kOptStartTls = 5,
  kOptInfo = 6,
  kOptGo = 7,
  kOptStructuredReply = 8,
  kOptListMetaContext = 9,
  kOptSetMetaContext = 10,
};

// Option reply types.
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepMetaContext = 4;
inline constexpr uint32_t kRepErrorBit = 1u << 31;
inline constexpr uint32_t kRepErrUnsup = kRepErrorBit | 1;
inline constexpr uint32_t kRepErrPolicy = kRepErrorBit | 2;
inline constexpr uint32_t kRepErrInvalid = kRepErrorBit | 3;
inline constexpr uint32_t kRepErrPlatform = kRepErrorBit | 4;
inline constexpr uint32_t kRepErrTlsReqd = kRepErrorBit | 5;
inline constexpr uint32_t kRepErrUnknown = kRepErrorBit | 6;
inline constexpr uint32_t kRepErrShutdown = kRepErrorBit | 7;
inline constexpr uint32_t kRepErrBlockSizeReqd = kRepErrorBit | 8;
inline constexpr uint32_t kRepErrTooBig = kRepErrorBit | 9;

// NBD_OPT_INFO / NBD_OPT_GO information types.
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// Commands and command flags.
enum Command : uint16_t {
  kCmdRead = 0,
  kCmdWrite = 1,
  kCmdDisc = 2,
  kCmdFlush = 3,
  kCmdTrim = 4,
  kCmdCache = 5,
  kCmdWriteZeroes = 6,
  kCmdBlockStatus = 7,
};
inline constexpr uint16_t kCmdFlagFua = 1u << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1u << 1;
inline constexpr uint16_t kCmdFlagDf = 1u << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1u << 3;
inline constexpr uint16_t kCmdFlagFastZero = 1u << 4;

// Structured reply flags and types.
inline constexpr uint16_t kReplyFlagDone = 1u << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeOffsetHole = 2;
inline constexpr uint16_t kReplyTypeBlockStatus = 5;
inline constexpr uint16_t kReplyTypeError = (1u << 15) | 1;
inline constexpr uint16_t kReplyTypeErrorOffset = (1u << 15) | 2;

// Error values on the wire (Linux numbering, fixed by the protocol).
inline constexpr uint32_t kErrPerm = 1;
inline constexpr uint32_t kErrIo = 5;
inline constexpr uint32_t kErrNoMem = 12;
inline constexpr uint32_t kErrInval = 22;
inline constexpr uint32_t kErrNoSpc = 28;
inline constexpr uint32_t kErrOverflow = 75;
inline constexpr uint32_t kErrNotSup = 95;
inline constexpr uint32_t kErrShutdown = 108;

// base:allocation block status flags.
inline constexpr uint32_t kStateHole = 1u << 0;
inline constexpr uint32_t kStateZero = 1u << 1;

inline constexpr std::string_view kBaseAllocation = "base:allocation";
// The one metadata context this server offers; ids are per connection, any nonzero value.
inline constexpr uint32_t kBaseAllocationId = 1;

// Sizes of fixed-length messages.
inline constexpr size_t kHandshakeSize = 18;
inline constexpr size_t kOptionHeaderSize = 16;
inline constexpr size_t kOptionReplyHeaderSize = 20;
inline constexpr size_t kRequestSize = 28;
inline constexpr size_t kSimpleReplySize = 16;
inline constexpr size_t kStructuredReplyHeaderSize = 20;
// Strings (export names, queries) must not exceed this per the protocol.
inline constexpr size_t kMaxStringLength = 4096;

// Maps a negative errno from a BlockDevice to the protocol's error numbers.
uint32_t errnoToNbdError(int negativeErrno);
const char* optionName(uint32_t option);
const char* commandName(uint16_t command);

// Big-endian field access.
inline uint16_t loadBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t loadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline uint64_t loadBe64(const uint8_t* p) { return (uint64_t{loadBe32(p)} << 32) | loadBe32(p + 4); }
inline void storeBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void storeBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
inline void storeBe64(uint8_t* p, uint64_t v) {
  storeBe32(p, static_cast<uint32_t>(v >> 32));
  storeBe32(p + 4, static_cast<uint32_t>(v));
}

// Appends big-endian fields to a message under construction.
class WireWriter {
 public:
  explicit WireWriter(std::vector<uint8_t>& out) : out_(out) {}
  WireWriter& u16(uint16_t v) {
    size_t at = grow(2);
    storeBe16(out_.data() + at, v);
    return *this;
  }
  WireWriter& u32(uint32_t v) {
    size_t at = grow(4);
    storeBe32(out_.data() + at, v);
    return *this;
  }
  WireWriter& u64(uint64_t v) {
    size_t at = grow(8);
    storeBe64(out_.data() + at, v);
    return *this;
  }
  WireWriter& bytes(std::string_view text) {
    out_.insert(out_.end(), text.begin(), text.end());
    return *this;
  }
  WireWriter& zeroes(size_t count) {
    out_.insert(out_.end(), count, 0);
    return *this;
  }

 private:
  size_t grow(size_t n) {
    size_t at = out_.size();
    out_.resize(at + n);
    return at;
  }
  std::vector<uint8_t>& out_;
};

// Reads big-endian fields from untrusted bytes; every read is bounds-checked and
// a short buffer sets failed() instead of reading past the end.
class WireReader {
 public:
  WireReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool u16(uint16_t& v) { return take(2) ? (v = loadBe16(data_ + pos_ - 2), true) : false; }
  bool u32(uint32_t& v) { return take(4) ? (v = loadBe32(data_ + pos_ - 4), true) : false; }
  bool string(size_t length, std::string& v) {
    if (!take(length)) return false;
    v.assign(reinterpret_cast<const char*>(data_ + pos_ - length), length);
    return true;
  }
  size_t remaining() const { return size_ - pos_; }
  bool failed() const { return failed_; }

 private:
  bool take(size_t n) {
    if (failed_ || n > size_ - pos_) {
      failed_ = true;
      return false;
    }
    pos_ += n;
    return true;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace strata::storage::nbd
