// OpenFlow 1.3 wire constants (message, multipart, error, OXM, instruction and
// action numbers from the OpenFlow Switch Specification 1.3) and the bounds-
// checked big-endian reader/writer the OpenFlow units build messages with.
// Only what strata's switch speaks; nothing here trusts a length it is given.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace strata::network::openflow {

inline constexpr uint8_t kVersion = 0x04;  // OpenFlow 1.3
inline constexpr size_t kHeaderBytes = 8;
inline constexpr size_t kMaxMessageBytes = 65535;

enum MessageType : uint8_t {
  kHello = 0, kError = 1, kEchoRequest = 2, kEchoReply = 3, kExperimenter = 4,
  kFeaturesRequest = 5, kFeaturesReply = 6, kGetConfigRequest = 7, kGetConfigReply = 8, kSetConfig = 9,
  kPacketIn = 10, kPortStatus = 12, kPacketOut = 13, kFlowMod = 14,
  kMultipartRequest = 18, kMultipartReply = 19, kBarrierRequest = 20, kBarrierReply = 21,
};

enum MultipartType : uint16_t {
  kMpDesc = 0, kMpFlow = 1, kMpAggregate = 2, kMpTable = 3, kMpPortStats = 4, kMpTableFeatures = 12, kMpPortDesc = 13,
};

enum FlowModCommand : uint8_t { kAdd = 0, kModify = 1, kModifyStrict = 2, kDelete = 3, kDeleteStrict = 4 };
inline constexpr uint16_t kFlagCheckOverlap = 1 << 1, kFlagResetCounts = 1 << 2;

// Error types and the codes strata sends.
enum ErrorType : uint16_t {
  kHelloFailed = 0, kBadRequest = 1, kBadAction = 2, kBadInstruction = 3, kBadMatch = 4, kFlowModFailed = 5,
};
enum BadRequestCode : uint16_t {
  kBadVersion = 0, kBadType = 1, kBadMultipart = 2, kBadExperimenter = 3, kBadLen = 6, kBufferUnknown = 8,
  kBadTableId = 9, kBadPort = 11, kBadPacket = 12,
};
enum BadActionCode : uint16_t {
  kActBadType = 0, kActBadLen = 1, kActBadOutPort = 4, kActBadArgument = 5, kActBadSetType = 13,
  kActBadSetLen = 14, kActBadSetArgument = 15,
};
enum BadInstructionCode : uint16_t { kInstUnknown = 0, kInstUnsupported = 1, kInstBadLen = 7 };
enum BadMatchCode : uint16_t {
  kMatchBadType = 0, kMatchBadLen = 1, kMatchBadField = 6, kMatchBadValue = 7, kMatchBadMask = 8,
  kMatchBadPrereq = 9, kMatchDupField = 10,
};
enum FlowModFailedCode : uint16_t {
  kFmUnknown = 0, kFmTableFull = 1, kFmBadTableId = 2, kFmOverlap = 3, kFmBadCommand = 6,
};

// Reserved port numbers.
inline constexpr uint32_t kPortMax = 0xffffff00;
inline constexpr uint32_t kPortInPort = 0xfffffff8, kPortTable = 0xfffffff9, kPortNormal = 0xfffffffa,
                          kPortFlood = 0xfffffffb, kPortAll = 0xfffffffc, kPortController = 0xfffffffd,
                          kPortLocal = 0xfffffffe, kPortAny = 0xffffffff;
inline constexpr uint32_t kNoBuffer = 0xffffffff;
inline constexpr uint8_t kTableAll = 0xff;

// OXM (class OPENFLOW_BASIC) fields.
inline constexpr uint16_t kOxmClassBasic = 0x8000;
enum OxmField : uint8_t {
  kOxmInPort = 0, kOxmEthDst = 3, kOxmEthSrc = 4, kOxmEthType = 5, kOxmVlanVid = 6, kOxmIpProto = 10,
  kOxmIpv4Src = 11, kOxmIpv4Dst = 12, kOxmTcpSrc = 13, kOxmTcpDst = 14, kOxmUdpSrc = 15, kOxmUdpDst = 16,
  kOxmIpv6Src = 26, kOxmIpv6Dst = 27,
};
inline constexpr uint16_t kVidPresent = 0x1000;

enum InstructionType : uint16_t { kInstWriteActions = 3, kInstApplyActions = 4, kInstClearActions = 5 };
enum ActionType : uint16_t { kActOutput = 0, kActPushVlan = 17, kActPopVlan = 18, kActSetField = 25 };
inline constexpr uint16_t kMaxLenNoBuffer = 0xffff;  // OFPCML_NO_BUFFER: the whole frame to the controller

// A refusal to send back: OFPT_ERROR type and code.
struct Failure {
  uint16_t type;
  uint16_t code;
};

// Reads big-endian fields from an untrusted span; past the end it yields zeros and ok() turns false.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  void skip(size_t n) { n <= remaining() ? position_ += n : (ok_ = false, position_ = bytes_.size()); }
  std::span<const uint8_t> bytes(size_t n) {
    if (n > remaining()) {
      ok_ = false;
      position_ = bytes_.size();
      return {};
    }
    auto out = bytes_.subspan(position_, n);
    position_ += n;
    return out;
  }
  size_t remaining() const { return bytes_.size() - position_; }
  bool ok() const { return ok_; }

 private:
  uint64_t take(size_t n) {
    if (n > remaining()) {
      ok_ = false;
      position_ = bytes_.size();
      return 0;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i) value = value << 8 | bytes_[position_ + i];
    position_ += n;
    return value;
  }
  std::span<const uint8_t> bytes_;
  size_t position_ = 0;
  bool ok_ = true;
};

// Appends big-endian fields to a buffer.
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void bytes(const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + n);
  }
  void zeros(size_t n) { out_.insert(out_.end(), n, 0); }
  void padTo8(size_t from) { zeros((8 - (out_.size() - from) % 8) % 8); }
  size_t size() const { return out_.size(); }
  void patch16(size_t at, uint16_t v) {
    out_[at] = static_cast<uint8_t>(v >> 8);
    out_[at + 1] = static_cast<uint8_t>(v);
  }

 private:
  void put(uint64_t v, size_t n) {
    for (size_t i = n; i-- > 0;) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>& out_;
};

}  // namespace strata::network::openflow
