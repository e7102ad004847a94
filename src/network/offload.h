// Frame offloads: the work a frame may still need — a TCP/UDP checksum to fill
// in, a 64 KiB TCP segment to cut into MSS-sized ones — described by the
// virtio_net_hdr fields and carried with the frame from the guest that sent it
// to whoever can finish it: the receiving guest, the host kernel (a TAP with a
// vnet header), or the software fallbacks here. All offload fields come from
// guests or peers and are validated before any byte is touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "base/result.h"

namespace strata::network {

struct FrameOffload {
  enum class Gso : uint8_t { None, Tcp4, Tcp6 };
  bool needsChecksum = false;  // VIRTIO_NET_HDR_F_NEEDS_CSUM: fill in the checksum at start+offset
  bool checksumValid = false;  // VIRTIO_NET_HDR_F_DATA_VALID: checked (or computed) already
  Gso gso = Gso::None;
  uint16_t headerBytes = 0;    // hdr_len: Ethernet+IP+TCP headers of a GSO frame
  uint16_t segmentBytes = 0;   // gso_size: payload bytes per segment (the MSS)
  uint16_t checksumStart = 0;  // csum_start, from the frame's first byte
  uint16_t checksumOffset = 0; // csum_offset, from checksumStart

  bool plain() const { return !needsChecksum && gso == Gso::None; }
  // Keeps checksumStart/headerBytes right when an 802.1Q tag is pushed (+4) or popped (-4).
  void shiftHeaders(int delta);
  bool operator==(const FrameOffload&) const = default;
};

// Which offloads a port's peer can take as-is; anything else is finished in software first.
struct OffloadCaps {
  bool checksum = false;
  bool tso4 = false;
  bool tso6 = false;
  static OffloadCaps all() { return {true, true, true}; }
  bool accepts(const FrameOffload& offload) const;
};

// struct virtio_net_hdr without num_buffers (little-endian, as virtio 1.x and Linux's vnet header lay it out).
inline constexpr size_t kVirtioNetHeaderBytes = 10;
// Decodes and validates a header for a frame of frameBytes; unknown flags or GSO types,
// a checksum field outside the frame, or GSO without NEEDS_CSUM or gso_size are errors.
Result<FrameOffload> decodeVirtioNetHeader(std::span<const uint8_t, kVirtioNetHeaderBytes> header, size_t frameBytes);
void encodeVirtioNetHeader(const FrameOffload& offload, std::span<uint8_t, kVirtioNetHeaderBytes> header);
// The same checks as decoding, for an offload that is already a FrameOffload.
Result<void> validateOffload(const FrameOffload& offload, size_t frameBytes);

// Fills in the checksum NEEDS_CSUM asks for (the Internet checksum of bytes
// [checksumStart, end) stored at checksumStart+checksumOffset; the guest has put
// the pseudo-header sum there) and turns the offload into DATA_VALID.
Result<void> completeChecksum(std::span<uint8_t> frame, FrameOffload& offload);

// Cuts a TSO frame (IPv4 or IPv6 without extension headers, TCP) into frames of
// at most segmentBytes payload with complete IP and TCP checksums, passing each
// to emit. A frame whose headers do not parse, or disagree with the GSO type, is an error.
using FrameSink = std::function<void(std::span<const uint8_t> frame, const FrameOffload& offload)>;
Result<void> segmentTcp(std::span<const uint8_t> frame, const FrameOffload& offload, const FrameSink& emit);

// Hands frame to emit in the form caps accepts: as-is when it can take the
// offload, else checksummed or segmented in software. Error: the offload was
// malformed and nothing was emitted.
Result<void> finishOffloads(std::span<const uint8_t> frame, const FrameOffload& offload, const OffloadCaps& caps,
                            const FrameSink& emit);

// The ones' complement sum of data added to sum (not folded), and its fold to 16 bits.
uint32_t checksumAdd(uint32_t sum, std::span<const uint8_t> data);
uint16_t checksumFold(uint32_t sum);

}  // namespace strata::network
