// The volume manager's on-disk metadata: which physical volumes (PVs) form a
// pool and how each logical volume (LV) maps onto their extents. Every PV holds
// two slots; a commit writes the next sequence number into the slot the
// previous commit did not use, on every PV, so a torn write always leaves the
// previous version intact. Each copy carries a CRC-32C; readers take the valid
// copy with the highest sequence number.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace strata::storage::volume {

using Uuid = std::array<uint8_t, 16>;

inline constexpr uint64_t kSlotOffset = 4096;       // slot 0; slot 1 follows
inline constexpr uint64_t kSlotSize = 256 * 1024;
inline constexpr uint64_t kDataStart = 1 << 20;     // extents start here on every PV
inline constexpr uint32_t kMaxVolumes = 4096;
inline constexpr uint32_t kMaxPhysicalVolumes = 256;

enum class Layout : uint8_t { Linear = 0, Striped = 1 };

struct Segment {
  uint32_t pvIndex = 0;
  uint64_t startExtent = 0;
  uint64_t extentCount = 0;
};

struct LogicalVolumeInfo {
  std::string name;
  Layout layout = Layout::Linear;
  uint32_t stripes = 1;          // striped: number of legs, one segment each
  uint64_t stripeSize = 65536;   // striped: bytes per chunk on one leg
  uint64_t sizeBytes = 0;
  std::vector<Segment> segments;
};

struct PhysicalVolumeInfo {
  Uuid uuid{};
  uint64_t extentCount = 0;
};

struct PoolMetadata {
  Uuid poolUuid{};
  std::string name;
  uint64_t extentSize = 4ull << 20;
  uint64_t sequence = 0;
  std::vector<PhysicalVolumeInfo> pvs;
  std::vector<LogicalVolumeInfo> volumes;
};

// One slot's bytes: header (magic, CRC, sequence, the PV's own identity) and payload.
std::vector<uint8_t> encodeSlot(const PoolMetadata& pool, uint32_t pvIndex);
struct DecodedSlot {
  PoolMetadata pool;
  uint32_t pvIndex = 0;
};
// Validates magic, CRC and every count and index against sane limits.
Result<DecodedSlot> decodeSlot(const std::vector<uint8_t>& bytes);

std::string uuidToString(const Uuid& uuid);

}  // namespace strata::storage::volume
