#include "network/offload.h"

#include <cstring>
#include <vector>

#include <fmt/core.h>

#include "network/ethernet.h"
#include "network/packet_port.h"

namespace strata::network {
namespace {

// virtio_net_hdr flags and gso_type values (virtio 1.2, 5.1.6).
constexpr uint8_t kFlagNeedsChecksum = 1;
constexpr uint8_t kFlagDataValid = 2;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcp4 = 1;
constexpr uint8_t kGsoTcp6 = 4;
constexpr uint8_t kIpProtocolTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;
constexpr size_t kIpv6HeaderBytes = 40;

uint16_t loadLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
void storeLe16(uint8_t* p, uint16_t value) {
  p[0] = static_cast<uint8_t>(value);
  p[1] = static_cast<uint8_t>(value >> 8);
}
uint32_t loadBe32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void storeBe32(uint8_t* p, uint32_t value) {
  storeBe16(p, static_cast<uint16_t>(value >> 16));
  storeBe16(p + 2, static_cast<uint16_t>(value));
}

// Where a TSO frame's IP and TCP headers are, after checking they are what the GSO type says.
struct TcpLayout {
  size_t ip = 0, tcp = 0, payload = 0;
  bool ipv4 = false;
};

Result<TcpLayout> parseTcpLayout(std::span<const uint8_t> frame, FrameOffload::Gso gso) {
  if (frame.size() < kEthernetHeaderBytes) return Error{"GSO frame shorter than an Ethernet header"};
  TcpLayout layout;
  size_t etherTypeAt = 12;
  if (loadBe16(frame.data() + 12) == kEtherTypeVlan) etherTypeAt = 16;
  layout.ip = etherTypeAt + 2;
  if (frame.size() < layout.ip + 20) return Error{"GSO frame too short for an IP header"};
  uint16_t etherType = loadBe16(frame.data() + etherTypeAt);
  const uint8_t* ip = frame.data() + layout.ip;
  if (gso == FrameOffload::Gso::Tcp4) {
    size_t ipBytes = size_t{ip[0] & 0x0fu} * 4;
    if (etherType != kEtherTypeIpv4 || ip[0] >> 4 != 4 || ipBytes < 20)
      return Error{"TCPv4 GSO frame without a valid IPv4 header"};
    if (ip[9] != kIpProtocolTcp) return Error{"TCPv4 GSO frame is not TCP"};
    if ((loadBe16(ip + 6) & 0x3fff) != 0) return Error{"TCPv4 GSO frame is an IP fragment"};
    layout.tcp = layout.ip + ipBytes;
    layout.ipv4 = true;
  } else {
    if (etherType != kEtherTypeIpv6 || ip[0] >> 4 != 6 || frame.size() < layout.ip + kIpv6HeaderBytes)
      return Error{"TCPv6 GSO frame without a valid IPv6 header"};
    if (ip[6] != kIpProtocolTcp) return Error{"TCPv6 GSO frame is not TCP right after the IPv6 header"};
    layout.tcp = layout.ip + kIpv6HeaderBytes;
  }
  if (frame.size() < layout.tcp + 20) return Error{"GSO frame too short for a TCP header"};
  size_t tcpBytes = static_cast<size_t>(frame[layout.tcp + 12] >> 4) * 4;
  if (tcpBytes < 20 || frame.size() < layout.tcp + tcpBytes) return Error{"GSO frame with a bad TCP header length"};
  layout.payload = layout.tcp + tcpBytes;
  return layout;
}

// The TCP checksum of segment (whose checksum field is zero) under the pseudo-header.
uint16_t tcpChecksum(std::span<const uint8_t> segment, const TcpLayout& layout) {
  const uint8_t* ip = segment.data() + layout.ip;
  size_t tcpLength = segment.size() - layout.tcp;
  uint32_t sum = layout.ipv4 ? checksumAdd(0, {ip + 12, 8}) : checksumAdd(0, {ip + 8, 32});
  sum += kIpProtocolTcp + static_cast<uint32_t>(tcpLength >> 16) + static_cast<uint32_t>(tcpLength & 0xffff);
  return static_cast<uint16_t>(~checksumFold(checksumAdd(sum, segment.subspan(layout.tcp))));
}

}  // namespace

void FrameOffload::shiftHeaders(int delta) {
  auto shifted = [delta](uint16_t value) {
    int result = int{value} + delta;
    return static_cast<uint16_t>(result < 0 ? 0 : result);
  };
  if (needsChecksum) checksumStart = shifted(checksumStart);
  if (gso != Gso::None) headerBytes = shifted(headerBytes);
}

bool OffloadCaps::accepts(const FrameOffload& offload) const {
  if (offload.needsChecksum && !checksum) return false;
  switch (offload.gso) {
    case FrameOffload::Gso::None: return true;
    case FrameOffload::Gso::Tcp4: return tso4;
    case FrameOffload::Gso::Tcp6: return tso6;
  }
  return false;
}

Result<void> validateOffload(const FrameOffload& offload, size_t frameBytes) {
  if (offload.needsChecksum &&
      size_t{offload.checksumStart} + offload.checksumOffset + 2 > frameBytes)
    return Error{fmt::format("checksum at {}+{} lies outside the {}-byte frame", offload.checksumStart,
                             offload.checksumOffset, frameBytes)};
  if (offload.gso != FrameOffload::Gso::None) {
    if (!offload.needsChecksum) return Error{"GSO frame without NEEDS_CSUM"};
    if (offload.segmentBytes == 0) return Error{"GSO frame with gso_size 0"};
  }
  return {};
}

Result<FrameOffload> decodeVirtioNetHeader(std::span<const uint8_t, kVirtioNetHeaderBytes> header,
                                           size_t frameBytes) {
  uint8_t flags = header[0];
  if (flags & ~(kFlagNeedsChecksum | kFlagDataValid)) return Error{fmt::format("unknown header flags {:#x}", flags)};
  FrameOffload offload;
  offload.needsChecksum = flags & kFlagNeedsChecksum;
  offload.checksumValid = flags & kFlagDataValid;
  switch (header[1]) {
    case kGsoNone: break;
    case kGsoTcp4: offload.gso = FrameOffload::Gso::Tcp4; break;
    case kGsoTcp6: offload.gso = FrameOffload::Gso::Tcp6; break;
    default: return Error{fmt::format("unsupported gso_type {:#x}", header[1])};
  }
  if (offload.gso != FrameOffload::Gso::None) {
    offload.headerBytes = loadLe16(header.data() + 2);
    offload.segmentBytes = loadLe16(header.data() + 4);
  }
  if (offload.needsChecksum) {
    offload.checksumStart = loadLe16(header.data() + 6);
    offload.checksumOffset = loadLe16(header.data() + 8);
  }
  if (auto valid = validateOffload(offload, frameBytes); !valid) return valid.error();
  return offload;
}

void encodeVirtioNetHeader(const FrameOffload& offload, std::span<uint8_t, kVirtioNetHeaderBytes> header) {
  std::memset(header.data(), 0, header.size());
  header[0] = static_cast<uint8_t>((offload.needsChecksum ? kFlagNeedsChecksum : 0) |
                                   (offload.checksumValid ? kFlagDataValid : 0));
  header[1] = offload.gso == FrameOffload::Gso::Tcp4 ? kGsoTcp4
              : offload.gso == FrameOffload::Gso::Tcp6 ? kGsoTcp6
                                                        : kGsoNone;
  storeLe16(header.data() + 2, offload.headerBytes);
  storeLe16(header.data() + 4, offload.segmentBytes);
  storeLe16(header.data() + 6, offload.checksumStart);
  storeLe16(header.data() + 8, offload.checksumOffset);
}

uint32_t checksumAdd(uint32_t sum, std::span<const uint8_t> data) {
  uint64_t wide = sum;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) wide += loadBe16(data.data() + i);
  if (i < data.size()) wide += uint32_t{data[i]} << 8;
  while (wide >> 32) wide = (wide & 0xffffffff) + (wide >> 32);
  return static_cast<uint32_t>(wide);
}

uint16_t checksumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

Result<void> completeChecksum(std::span<uint8_t> frame, FrameOffload& offload) {
  if (!offload.needsChecksum) return {};
  if (auto valid = validateOffload(offload, frame.size()); !valid) return valid.error();
  size_t field = size_t{offload.checksumStart} + offload.checksumOffset;
  auto value = static_cast<uint16_t>(~checksumFold(checksumAdd(0, frame.subspan(offload.checksumStart))));
  // UDP (checksum at offset 6) sends a computed zero as 0xffff; zero means "no checksum" there.
  if (value == 0 && offload.checksumOffset == 6) value = 0xffff;
  storeBe16(frame.data() + field, value);
  offload = FrameOffload{};
  offload.checksumValid = true;
  return {};
}

Result<void> segmentTcp(std::span<const uint8_t> frame, const FrameOffload& offload, const FrameSink& emit) {
  if (auto valid = validateOffload(offload, frame.size()); !valid) return valid.error();
  if (offload.gso == FrameOffload::Gso::None) return Error{"not a GSO frame"};
  auto layout = parseTcpLayout(frame, offload.gso);
  if (!layout) return layout.error();
  const size_t headers = layout->payload, payload = frame.size() - headers, mss = offload.segmentBytes;
  const uint32_t firstSeq = loadBe32(frame.data() + layout->tcp + 4);
  const uint16_t firstId = layout->ipv4 ? loadBe16(frame.data() + layout->ip + 4) : 0;
  FrameOffload done;
  done.checksumValid = true;
  std::vector<uint8_t> segment;
  size_t offset = 0, index = 0;
  do {
    size_t chunk = std::min(mss, payload - offset);
    bool last = offset + chunk == payload;
    segment.assign(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(headers));
    segment.insert(segment.end(), frame.begin() + static_cast<std::ptrdiff_t>(headers + offset),
                   frame.begin() + static_cast<std::ptrdiff_t>(headers + offset + chunk));
    uint8_t* ip = segment.data() + layout->ip;
    uint8_t* tcp = segment.data() + layout->tcp;
    if (layout->ipv4) {
      storeBe16(ip + 2, static_cast<uint16_t>(segment.size() - layout->ip));
      storeBe16(ip + 4, static_cast<uint16_t>(firstId + index));
      storeBe16(ip + 10, 0);
      storeBe16(ip + 10, static_cast<uint16_t>(~checksumFold(checksumAdd(0, {ip, layout->tcp - layout->ip}))));
    } else {
      storeBe16(ip + 4, static_cast<uint16_t>(segment.size() - layout->tcp));
    }
    storeBe32(tcp + 4, firstSeq + static_cast<uint32_t>(offset));
    if (!last) tcp[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (index != 0) tcp[13] &= static_cast<uint8_t>(~kTcpCwr);
    storeBe16(tcp + 16, 0);
    storeBe16(tcp + 16, tcpChecksum(segment, *layout));
    emit(segment, done);
    offset += chunk;
    ++index;
  } while (offset < payload);
  return {};
}

Result<void> finishOffloads(std::span<const uint8_t> frame, const FrameOffload& offload, const OffloadCaps& caps,
                            const FrameSink& emit) {
  if (auto valid = validateOffload(offload, frame.size()); !valid) return valid.error();
  if (offload.plain() || caps.accepts(offload)) {
    emit(frame, offload);
    return {};
  }
  if (offload.gso != FrameOffload::Gso::None) return segmentTcp(frame, offload, emit);
  std::vector<uint8_t> copy(frame.begin(), frame.end());
  FrameOffload completed = offload;
  if (auto done = completeChecksum(copy, completed); !done) return done.error();
  emit(copy, completed);
  return {};
}

Result<void> sendFinished(PacketPort& port, std::span<const uint8_t> frame, const FrameOffload& offload) {
  return finishOffloads(frame, offload, port.acceptedOffloads(),
                        [&port](std::span<const uint8_t> out, const FrameOffload& done) { port.send(out, done); });
}

}  // namespace strata::network
