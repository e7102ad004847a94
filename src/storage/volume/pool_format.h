// On-disk format of a storage pool: the label at the start of every physical
// volume (PV) and the pool metadata (PVs, logical volumes and their extent
// maps) kept in two checksummed, sequence-numbered slots on every PV. A commit
// writes sequence N+1 into slot (N+1)%2, so a torn write leaves version N.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace strata::storage::volume {

using Uuid = std::array<uint8_t, 16>;

// PV layout: label | slot A | slot B | write-intent bitmap | extents.
inline constexpr uint64_t kPvLabelSize = 4096;
inline constexpr uint64_t kPvSlotSize = 1 << 20;
inline constexpr uint64_t kPvSlotOffset[2] = {1 << 20, 2 << 20};
inline constexpr uint64_t kPvIntentOffset = 3 << 20;  // header block, then the bits
inline constexpr uint64_t kPvIntentSize = 1 << 20;
inline constexpr uint64_t kPvDataStart = 4 << 20;
inline constexpr uint64_t kDefaultExtentSize = 4 << 20;

inline constexpr uint32_t kPoolMaxPvs = 256;
inline constexpr uint32_t kPoolMaxVolumes = 1024;
inline constexpr uint32_t kVolumeMaxLegs = 32;
inline constexpr uint32_t kLegMaxRuns = 4096;
inline constexpr size_t kMaxNameLength = 64;

enum class PvState : uint8_t {
  Active = 0,
  Failed = 1,      // missing or errored: its extents hold stale data until replaced
  Rebuilding = 2,  // a replacement whose rebuild has not finished
};

enum class VolumeType : uint8_t { Linear = 0, Striped = 1, Mirror = 2, Raid5 = 3, Raid10 = 4, ThinPool = 5, Thin = 6 };

inline constexpr uint32_t kVolumeHidden = 1;    // a thin pool's data or metadata volume
inline constexpr uint32_t kVolumeReadOnly = 2;  // snapshots

struct PvRecord {
  Uuid uuid{};
  uint64_t sizeBytes = 0;
  uint64_t extentCount = 0;
  PvState state = PvState::Active;
  std::string lastPath;  // where it was seen last, for status messages
};

// A contiguous range of extents on one PV.
struct ExtentRun {
  uint32_t pv = 0;
  uint64_t start = 0;
  uint64_t count = 0;
};

// One device of a volume's layout (a RAID member); its runs concatenate.
struct Leg {
  std::vector<ExtentRun> runs;
};

struct VolumeRecord {
  uint32_t id = 0;
  std::string name;
  VolumeType type = VolumeType::Linear;
  uint32_t flags = 0;
  uint64_t sizeBytes = 0;
  uint32_t stripeSize = 0;  // striped, raid5, raid10
  uint32_t mirrors = 1;     // mirror, raid10: copies of every block
  uint64_t legExtents = 0;
  std::vector<Leg> legs;
  // Thin pools: their hidden data and metadata volumes and chunk size.
  uint32_t dataVolume = 0;
  uint32_t metaVolume = 0;
  uint32_t chunkSize = 0;
  // Thin volumes: the pool they allocate from, and what they were copied from.
  uint32_t thinPool = 0;
  std::string origin;

  bool hidden() const { return flags & kVolumeHidden; }
  bool readOnly() const { return flags & kVolumeReadOnly; }
};

struct PoolRecord {
  Uuid uuid{};
  std::string name;
  uint64_t extentSize = kDefaultExtentSize;
  uint64_t sequence = 0;
  uint32_t nextVolumeId = 1;
  std::vector<PvRecord> pvs;
  std::vector<VolumeRecord> volumes;

  const VolumeRecord* findVolume(const std::string& name) const;
  VolumeRecord* findVolume(const std::string& name);
  const VolumeRecord* findVolumeById(uint32_t id) const;
};

struct PvLabel {
  Uuid poolUuid{};
  Uuid pvUuid{};
  uint32_t pvIndex = 0;
  uint64_t sizeBytes = 0;
  uint64_t extentSize = 0;
};

const char* volumeTypeName(VolumeType type);
Result<VolumeType> parseVolumeType(const std::string& name);
const char* pvStateName(PvState state);
bool isRedundant(VolumeType type);
// How many legs hold distinct data (the rest is parity or copies).
uint32_t dataLegCount(const VolumeRecord& volume);
// Bytes of a volume of this shape whose legs have legExtents extents each.
uint64_t volumeCapacity(const VolumeRecord& volume, uint64_t extentSize);
// Names of pools and volumes: letters, digits, '.', '_', '-', '+'; not starting with '-'.
Result<void> checkName(const std::string& what, const std::string& name);

std::string formatUuid(const Uuid& uuid);
Uuid randomUuid();

// The write-intent bitmap's header (the first 4 KiB of its area): one bit per
// region of the PV's data space (from kPvDataStart), set while writes to a
// redundant volume may be in flight there. An all-zero area means all clean.
inline constexpr uint64_t kIntentBlockSize = 4096;
inline constexpr uint64_t kIntentMaxRegions = (kPvIntentSize - kIntentBlockSize) * 8;
inline constexpr uint64_t kIntentDefaultRegionBytes = 64 << 20;  // md's usual chunk

struct IntentHeader {
  Uuid pvUuid{};
  uint64_t regionBytes = 0;
  uint64_t regionCount = 0;
};
// The region size for a PV whose data space is dataBytes: the smallest power
// of two from `minimum` (a power of two) whose regions fit the bitmap.
uint64_t intentRegionBytes(uint64_t dataBytes, uint64_t minimum = kIntentDefaultRegionBytes);
// Region sizes a pool may ask for.
Result<void> checkIntentRegionBytes(uint64_t regionBytes);
std::vector<uint8_t> encodeIntentHeader(const IntentHeader& header);
// Checks magic, checksum, version and that the regions are sane for a PV of
// dataBytes (power-of-two size, enough bits, no more than the area holds).
Result<IntentHeader> decodeIntentHeader(const uint8_t* bytes, size_t length, uint64_t dataBytes);

std::vector<uint8_t> encodeLabel(const PvLabel& label);
Result<PvLabel> decodeLabel(const uint8_t* bytes, size_t length);

// A slot's full bytes (header + payload); fails if the payload exceeds a slot.
Result<std::vector<uint8_t>> encodeMetadataSlot(const PoolRecord& pool);
// Checks magic, checksum, then every count, index and extent range.
Result<PoolRecord> decodeMetadataSlot(const uint8_t* bytes, size_t length);
// The structural checks decodeMetadataSlot applies (also run before each commit).
Result<void> validatePoolRecord(const PoolRecord& pool);

}  // namespace strata::storage::volume
