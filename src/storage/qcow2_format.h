// The qcow2 on-disk format: header fields, table entry bits, and the parsing and
// validation of a header read from an untrusted file. Everything here is pure
// (bytes in, values or errors out) so it is easy to test with hostile input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace strata::storage::qcow2 {

inline constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
inline constexpr uint32_t kMinClusterBits = 9;
inline constexpr uint32_t kMaxClusterBits = 21;  // 2 MiB, the largest QEMU creates
inline constexpr uint32_t kV3HeaderLength = 104;
inline constexpr uint32_t kHeaderLengthWithCompression = 112;
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;        // as QEMU: bounds memory and open time
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;
inline constexpr uint32_t kMaxBackingNameLength = 1023;
inline constexpr uint64_t kMaxHostOffset = 1ull << 56;      // L2 entries hold offsets up to bit 55

// Header extension types.
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kExtExternalDataFile = 0x44415441;
inline constexpr uint32_t kExtEncryption = 0x0537be77;

// Incompatible feature bits.
inline constexpr uint64_t kIncompatDirty = 1ull << 0;
inline constexpr uint64_t kIncompatCorrupt = 1ull << 1;
inline constexpr uint64_t kIncompatExternalData = 1ull << 2;
inline constexpr uint64_t kIncompatCompressionType = 1ull << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
// Compatible feature bits.
inline constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;

// L1 and L2 entry bits.
inline constexpr uint64_t kEntryCopied = 1ull << 63;     // refcount is exactly 1: writable in place
inline constexpr uint64_t kEntryCompressed = 1ull << 62;
inline constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;
inline constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL2ZeroFlag = 1ull;
inline constexpr uint64_t kL2StandardReservedMask = 0x3f000000000001feull;
inline constexpr uint64_t kRefTableOffsetMask = 0xfffffffffffffe00ull;

struct FeatureName {
  uint8_t type;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit;
  std::string name;
};

struct Header {
  uint32_t version = 3;
  uint64_t backingFileOffset = 0;
  uint32_t backingFileSize = 0;
  uint32_t clusterBits = 16;
  uint64_t size = 0;
  uint32_t cryptMethod = 0;
  uint32_t l1Size = 0;
  uint64_t l1TableOffset = 0;
  uint64_t refcountTableOffset = 0;
  uint32_t refcountTableClusters = 0;
  uint32_t nbSnapshots = 0;
  uint64_t snapshotsOffset = 0;
  uint64_t incompatibleFeatures = 0;
  uint64_t compatibleFeatures = 0;
  uint64_t autoclearFeatures = 0;
  uint32_t refcountOrder = 4;
  uint32_t headerLength = kHeaderLengthWithCompression;
  uint8_t compressionType = 0;

  // From header extensions and the backing file name field.
  std::string backingFile;
  std::string backingFormat;
  std::vector<FeatureName> featureNames;
  bool hasExternalDataFile = false;

  uint64_t clusterSize() const { return 1ull << clusterBits; }
  uint64_t l2Entries() const { return clusterSize() / 8; }
  uint32_t refcountBits() const { return 1u << refcountOrder; }
  uint64_t refcountsPerBlock() const { return clusterSize() * 8 / refcountBits(); }
  // L1 entries needed to map the whole virtual disk.
  uint64_t l1EntriesNeeded() const;
  // Bit position where a compressed cluster descriptor's sector count starts.
  uint32_t compressedSectorShift() const { return 62 - (clusterBits - 8); }
};

// Parses and validates a header from the first bytes of the file (at least one
// cluster or the whole file if smaller). fileSize bounds every table offset.
// Errors are prefixed with `name` ("x.qcow2: unsupported qcow2 version 2").
Result<Header> parseHeader(const std::vector<uint8_t>& bytes, uint64_t fileSize, const std::string& name);

// Serializes the fixed header fields (not the extensions) into 112 bytes.
std::vector<uint8_t> encodeHeaderFields(const Header& header);

// Names the incompatible feature bits in mask that we do not implement,
// using the image's feature name table when it has one.
std::string describeFeatures(const Header& header, uint64_t mask, uint8_t type);

// Big-endian helpers.
inline uint64_t loadBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}
inline uint32_t loadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint16_t loadBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void storeBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
inline void storeBe32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
inline void storeBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Entry `index` of a refcount block whose entries are 2^order bits wide.
uint64_t refcountAt(const uint8_t* block, uint64_t index, uint32_t order);

// What an L2 entry means for the guest cluster it maps.
enum class ClusterKind { Unallocated, Zero, Normal, Compressed };

struct ClusterMapping {
  ClusterKind kind;
  uint64_t hostOffset = 0;      // Normal: cluster start; Compressed: first byte of compressed data
  uint64_t compressedBytes = 0;  // Compressed: bytes to read starting at hostOffset
  bool copied = false;
};

// Decodes an L2 entry; errors on reserved bits or a misaligned offset.
Result<ClusterMapping> decodeL2Entry(uint64_t entry, const Header& header);

}  // namespace strata::storage::qcow2
