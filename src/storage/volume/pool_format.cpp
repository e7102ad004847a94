#include "storage/volume/pool_format.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>

#include "storage/crc32c.h"
#include "storage/volume/byte_codec.h"

namespace strata::storage::volume {

namespace {

// Whether the CRC-32C stored at crcOffset matches bytes[0, checked) taken with
// that field read as zero, as it was when the block was sealed.
bool checksumMatches(const uint8_t* bytes, size_t checked, size_t crcOffset) {
  static constexpr uint8_t kZeroField[4] = {};
  uint32_t crc = crc32c(bytes, crcOffset);
  crc = crc32c(kZeroField, sizeof kZeroField, crc);
  crc = crc32c(bytes + crcOffset + 4, checked - crcOffset - 4, crc);
  return crc == loadLe32(bytes + crcOffset);
}

constexpr char kLabelMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'V'};
constexpr char kSlotMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'M', 'D'};
constexpr char kIntentMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'W', 'I'};
constexpr size_t kIntentChecked = 512;  // the header's bytes covered by its CRC
constexpr size_t kIntentCrcOffset = 12;
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kLabelChecked = 512;  // the label's bytes covered by its CRC
constexpr size_t kSlotHeaderSize = 64;
constexpr size_t kLabelCrcOffset = 12;
constexpr size_t kSlotCrcOffset = 12;
constexpr uint64_t kMaxThinBytes = 1ull << 48;

bool isPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

Error corrupt(const std::string& detail) { return Error{"pool metadata is corrupt: " + detail}; }

void encodeVolume(ByteWriter& w, const VolumeRecord& v) {
  w.u32(v.id);
  w.str(v.name);
  w.u8(static_cast<uint8_t>(v.type));
  w.u32(v.flags);
  w.u64(v.sizeBytes);
  w.u32(v.stripeSize);
  w.u32(v.mirrors);
  w.u64(v.legExtents);
  w.u32(v.dataVolume);
  w.u32(v.metaVolume);
  w.u32(v.chunkSize);
  w.u32(v.thinPool);
  w.str(v.origin);
  w.u32(static_cast<uint32_t>(v.legs.size()));
  for (const Leg& leg : v.legs) {
    w.u32(static_cast<uint32_t>(leg.runs.size()));
    for (const ExtentRun& r : leg.runs) {
      w.u32(r.pv);
      w.u64(r.start);
      w.u64(r.count);
    }
  }
}

bool decodeVolume(ByteReader& r, VolumeRecord& v, std::string& why) {
  uint8_t type = 0;
  uint32_t legCount = 0;
  if (!r.u32(v.id) || !r.str(v.name, kMaxNameLength) || !r.u8(type) || !r.u32(v.flags) || !r.u64(v.sizeBytes) ||
      !r.u32(v.stripeSize) || !r.u32(v.mirrors) || !r.u64(v.legExtents) || !r.u32(v.dataVolume) ||
      !r.u32(v.metaVolume) || !r.u32(v.chunkSize) || !r.u32(v.thinPool) || !r.str(v.origin, kMaxNameLength) ||
      !r.u32(legCount)) {
    why = "truncated volume record";
    return false;
  }
  if (type > static_cast<uint8_t>(VolumeType::Thin)) {
    why = fmt::format("volume {} has unknown type {}", v.name, type);
    return false;
  }
  v.type = static_cast<VolumeType>(type);
  if (legCount > kVolumeMaxLegs) {
    why = fmt::format("volume {} has {} legs (at most {})", v.name, legCount, kVolumeMaxLegs);
    return false;
  }
  v.legs.resize(legCount);
  for (Leg& leg : v.legs) {
    uint32_t runCount = 0;
    if (!r.u32(runCount) || runCount > kLegMaxRuns || runCount * 20ull > r.remaining()) {
      why = fmt::format("volume {} has a bad extent run count", v.name);
      return false;
    }
    leg.runs.resize(runCount);
    for (ExtentRun& run : leg.runs) {
      if (!r.u32(run.pv) || !r.u64(run.start) || !r.u64(run.count)) {
        why = "truncated extent run";
        return false;
      }
    }
  }
  return true;
}

Result<void> validateLegs(const PoolRecord& pool, const VolumeRecord& v) {
  uint32_t legs = static_cast<uint32_t>(v.legs.size());
  bool needsStripe = v.type == VolumeType::Striped || v.type == VolumeType::Raid5 || v.type == VolumeType::Raid10;
  switch (v.type) {
    case VolumeType::Linear:
      if (legs != 1) return corrupt(fmt::format("linear volume {} has {} legs", v.name, legs));
      break;
    case VolumeType::Striped:
      if (legs < 1) return corrupt(fmt::format("striped volume {} has no legs", v.name));
      break;
    case VolumeType::Mirror:
      if (legs < 2 || v.mirrors != legs) return corrupt(fmt::format("mirror volume {} has {} legs", v.name, legs));
      break;
    case VolumeType::Raid5:
      if (legs < 3) return corrupt(fmt::format("raid5 volume {} has {} legs", v.name, legs));
      break;
    case VolumeType::Raid10:
      if (v.mirrors < 2 || legs % v.mirrors != 0 || legs / v.mirrors < 2)
        return corrupt(fmt::format("raid10 volume {} has {} legs for {} mirrors", v.name, legs, v.mirrors));
      break;
    default:
      break;
  }
  if (needsStripe &&
      (!isPowerOfTwo(v.stripeSize) || v.stripeSize < 4096 || v.stripeSize > pool.extentSize))
    return corrupt(fmt::format("volume {} has stripe size {}", v.name, v.stripeSize));
  if (v.legExtents == 0 || v.legExtents > (1ull << 40))
    return corrupt(fmt::format("volume {} has {} extents per leg", v.name, v.legExtents));
  for (const Leg& leg : v.legs) {
    uint64_t total = 0;
    for (const ExtentRun& run : leg.runs) {
      if (run.pv >= pool.pvs.size()) return corrupt(fmt::format("volume {} names PV #{}", v.name, run.pv));
      uint64_t pvExtents = pool.pvs[run.pv].extentCount;
      if (run.count == 0 || run.start >= pvExtents || run.count > pvExtents - run.start)
        return corrupt(fmt::format("volume {} maps extents {}+{} past the end of PV #{} ({} extents)", v.name,
                                   run.start, run.count, run.pv, pvExtents));
      total += run.count;
    }
    if (total != v.legExtents)
      return corrupt(fmt::format("volume {} has a leg of {} extents, expected {}", v.name, total, v.legExtents));
  }
  if (v.sizeBytes != volumeCapacity(v, pool.extentSize))
    return corrupt(fmt::format("volume {} size {} does not match its extents", v.name, v.sizeBytes));
  return {};
}

}  // namespace

const VolumeRecord* PoolRecord::findVolume(const std::string& volumeName) const {
  for (const auto& v : volumes)
    if (v.name == volumeName) return &v;
  return nullptr;
}
VolumeRecord* PoolRecord::findVolume(const std::string& volumeName) {
  for (auto& v : volumes)
    if (v.name == volumeName) return &v;
  return nullptr;
}
const VolumeRecord* PoolRecord::findVolumeById(uint32_t id) const {
  for (const auto& v : volumes)
    if (v.id == id) return &v;
  return nullptr;
}

const char* volumeTypeName(VolumeType type) {
  switch (type) {
    case VolumeType::Linear: return "linear";
    case VolumeType::Striped: return "striped";
    case VolumeType::Mirror: return "mirror";
    case VolumeType::Raid5: return "raid5";
    case VolumeType::Raid10: return "raid10";
    case VolumeType::ThinPool: return "thin-pool";
    case VolumeType::Thin: return "thin";
  }
  return "?";
}

Result<VolumeType> parseVolumeType(const std::string& name) {
  if (name == "linear") return VolumeType::Linear;
  if (name == "striped" || name == "raid0") return VolumeType::Striped;
  if (name == "mirror" || name == "raid1") return VolumeType::Mirror;
  if (name == "raid5") return VolumeType::Raid5;
  if (name == "raid10") return VolumeType::Raid10;
  if (name == "thin-pool") return VolumeType::ThinPool;
  if (name == "thin") return VolumeType::Thin;
  return Error{fmt::format("unknown volume type '{}' (linear, striped, mirror, raid5, raid10, thin-pool, thin)", name)};
}

const char* pvStateName(PvState state) {
  switch (state) {
    case PvState::Active: return "active";
    case PvState::Failed: return "failed";
    case PvState::Rebuilding: return "rebuilding";
  }
  return "?";
}

bool isRedundant(VolumeType type) {
  return type == VolumeType::Mirror || type == VolumeType::Raid5 || type == VolumeType::Raid10;
}

uint32_t dataLegCount(const VolumeRecord& v) {
  uint32_t legs = static_cast<uint32_t>(v.legs.size());
  switch (v.type) {
    case VolumeType::Linear: return 1;
    case VolumeType::Striped: return legs;
    case VolumeType::Mirror: return 1;
    case VolumeType::Raid5: return legs > 0 ? legs - 1 : 0;
    case VolumeType::Raid10: return v.mirrors ? legs / v.mirrors : 0;
    default: return 0;
  }
}

uint64_t volumeCapacity(const VolumeRecord& v, uint64_t extentSize) {
  return static_cast<uint64_t>(dataLegCount(v)) * v.legExtents * extentSize;
}

Result<void> checkName(const std::string& what, const std::string& name) {
  if (name.empty()) return Error{what + " name is empty"};
  if (name.size() > kMaxNameLength) return Error{fmt::format("{} name '{}' is longer than {} characters", what, name, kMaxNameLength)};
  if (name[0] == '-') return Error{fmt::format("{} name '{}' starts with '-'", what, name)};
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '+';
    if (!ok) return Error{fmt::format("{} name '{}' may hold only letters, digits, '.', '_', '-' and '+'", what, name)};
  }
  if (name == "." || name == "..") return Error{fmt::format("{} name '{}' is reserved", what, name)};
  return {};
}

std::string formatUuid(const Uuid& uuid) {
  std::string s;
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += fmt::format("{:02x}", uuid[i]);
  }
  return s;
}

Uuid randomUuid() {
  std::random_device device;
  Uuid uuid;
  for (size_t i = 0; i < uuid.size(); i += 4) {
    uint32_t r = device();
    std::memcpy(&uuid[i], &r, 4);
  }
  uuid[6] = (uuid[6] & 0x0f) | 0x40;  // version 4
  uuid[8] = (uuid[8] & 0x3f) | 0x80;
  return uuid;
}

std::vector<uint8_t> encodeLabel(const PvLabel& label) {
  ByteWriter w;
  w.raw(kLabelMagic, 8);
  w.u32(kFormatVersion);
  w.u32(0);  // CRC, patched below
  w.raw(label.poolUuid.data(), 16);
  w.raw(label.pvUuid.data(), 16);
  w.u32(label.pvIndex);
  w.u32(0);
  w.u64(label.sizeBytes);
  w.u64(label.extentSize);
  w.u64(kPvDataStart);
  std::vector<uint8_t> bytes = std::move(w.bytes());
  bytes.resize(kPvLabelSize, 0);
  storeLe32(&bytes[kLabelCrcOffset], crc32c(bytes.data(), kLabelChecked));
  return bytes;
}

Result<void> checkIntentRegionBytes(uint64_t regionBytes) {
  if (!isPowerOfTwo(regionBytes) || regionBytes < (64 << 10) || regionBytes > (1ull << 40))
    return Error{fmt::format("write-intent region size {} must be a power of two from 64 KiB to 1 TiB", regionBytes)};
  return {};
}

uint64_t intentRegionBytes(uint64_t dataBytes, uint64_t minimum) {
  uint64_t region = minimum;
  while ((dataBytes + region - 1) / region > kIntentMaxRegions) region <<= 1;
  return region;
}

std::vector<uint8_t> encodeIntentHeader(const IntentHeader& header) {
  ByteWriter w;
  w.raw(kIntentMagic, 8);
  w.u32(kFormatVersion);
  w.u32(0);  // CRC
  w.raw(header.pvUuid.data(), 16);
  w.u64(header.regionBytes);
  w.u64(header.regionCount);
  w.u64(kPvDataStart);
  auto& bytes = w.bytes();
  bytes.resize(kIntentBlockSize, 0);
  storeLe32(&bytes[kIntentCrcOffset], crc32c(bytes.data(), kIntentChecked));
  return bytes;
}

Result<IntentHeader> decodeIntentHeader(const uint8_t* bytes, size_t length, uint64_t dataBytes) {
  if (length < kIntentChecked || std::memcmp(bytes, kIntentMagic, 8) != 0)
    return Error{"write-intent bitmap header has no magic"};
  if (!checksumMatches(bytes, kIntentChecked, kIntentCrcOffset))
    return Error{"write-intent bitmap header checksum mismatch"};
  ByteReader r(bytes + 8, kIntentChecked - 8);
  IntentHeader header;
  uint32_t version = 0, crc = 0;
  uint64_t dataStart = 0;
  r.u32(version);
  r.u32(crc);
  r.raw(header.pvUuid.data(), 16);
  r.u64(header.regionBytes);
  r.u64(header.regionCount);
  r.u64(dataStart);
  if (version != kFormatVersion) return Error{fmt::format("write-intent bitmap version {} is not supported", version)};
  if (dataStart != kPvDataStart) return Error{"write-intent bitmap has an unexpected data offset"};
  if (!checkIntentRegionBytes(header.regionBytes).ok())
    return Error{fmt::format("write-intent bitmap region size {} is not sane", header.regionBytes)};
  uint64_t needed = (dataBytes + header.regionBytes - 1) / header.regionBytes;
  if (header.regionCount < needed || header.regionCount > kIntentMaxRegions)
    return Error{fmt::format("write-intent bitmap has {} regions of {} bytes for {} bytes of data", header.regionCount,
                             header.regionBytes, dataBytes)};
  return header;
}

Result<PvLabel> decodeLabel(const uint8_t* bytes, size_t length) {
  if (length < kLabelChecked || std::memcmp(bytes, kLabelMagic, 8) != 0)
    return Error{"not a strata physical volume (no label)"};
  if (!checksumMatches(bytes, kLabelChecked, kLabelCrcOffset)) return Error{"physical volume label checksum mismatch"};
  ByteReader r(bytes + 8, kLabelChecked - 8);
  PvLabel label;
  uint32_t version = 0, crc = 0, pad = 0;
  uint64_t dataStart = 0;
  r.u32(version);
  r.u32(crc);
  r.raw(label.poolUuid.data(), 16);
  r.raw(label.pvUuid.data(), 16);
  r.u32(label.pvIndex);
  r.u32(pad);
  r.u64(label.sizeBytes);
  r.u64(label.extentSize);
  r.u64(dataStart);
  if (version != kFormatVersion) return Error{fmt::format("physical volume label version {} is not supported", version)};
  if (dataStart != kPvDataStart) return Error{"physical volume label has an unexpected data offset"};
  if (label.pvIndex >= kPoolMaxPvs) return Error{fmt::format("physical volume label has index {}", label.pvIndex)};
  return label;
}

Result<std::vector<uint8_t>> encodeMetadataSlot(const PoolRecord& pool) {
  ByteWriter w;
  w.raw(kSlotMagic, 8);
  w.u32(kFormatVersion);
  w.u32(0);  // CRC
  w.u64(pool.sequence);
  w.u32(0);  // payload length
  w.u32(0);
  w.raw(pool.uuid.data(), 16);
  w.bytes().resize(kSlotHeaderSize, 0);
  w.str(pool.name);
  w.u64(pool.extentSize);
  w.u32(pool.nextVolumeId);
  w.u32(static_cast<uint32_t>(pool.pvs.size()));
  for (const PvRecord& pv : pool.pvs) {
    w.raw(pv.uuid.data(), 16);
    w.u64(pv.sizeBytes);
    w.u64(pv.extentCount);
    w.u8(static_cast<uint8_t>(pv.state));
    w.str(pv.lastPath);
  }
  w.u32(static_cast<uint32_t>(pool.volumes.size()));
  for (const VolumeRecord& v : pool.volumes) encodeVolume(w, v);
  std::vector<uint8_t> bytes = std::move(w.bytes());
  if (bytes.size() > kPvSlotSize)
    return Error{fmt::format("pool metadata needs {} bytes, more than a metadata slot holds ({})", bytes.size(),
                             kPvSlotSize)};
  storeLe32(&bytes[24], static_cast<uint32_t>(bytes.size() - kSlotHeaderSize));
  storeLe32(&bytes[kSlotCrcOffset], crc32c(bytes.data(), bytes.size()));
  return bytes;
}

Result<PoolRecord> decodeMetadataSlot(const uint8_t* bytes, size_t length) {
  if (length < kSlotHeaderSize || std::memcmp(bytes, kSlotMagic, 8) != 0) return Error{"no metadata in this slot"};
  uint32_t payloadLength = loadLe32(bytes + 24);
  if (payloadLength > length - kSlotHeaderSize) return corrupt("metadata length exceeds its slot");
  if (!checksumMatches(bytes, kSlotHeaderSize + payloadLength, kSlotCrcOffset))
    return Error{"pool metadata checksum mismatch"};

  PoolRecord pool;
  ByteReader header(bytes + 8, kSlotHeaderSize - 8);
  uint32_t version = 0, crc = 0, len = 0, pad = 0;
  header.u32(version);
  header.u32(crc);
  header.u64(pool.sequence);
  header.u32(len);
  header.u32(pad);
  header.raw(pool.uuid.data(), 16);
  if (version != kFormatVersion) return Error{fmt::format("pool metadata version {} is not supported", version)};

  ByteReader r(bytes + kSlotHeaderSize, payloadLength);
  uint32_t pvCount = 0;
  if (!r.str(pool.name, kMaxNameLength) || !r.u64(pool.extentSize) || !r.u32(pool.nextVolumeId) || !r.u32(pvCount))
    return corrupt("truncated pool header");
  if (pvCount == 0 || pvCount > kPoolMaxPvs) return corrupt(fmt::format("{} physical volumes", pvCount));
  pool.pvs.resize(pvCount);
  for (PvRecord& pv : pool.pvs) {
    uint8_t state = 0;
    if (!r.raw(pv.uuid.data(), 16) || !r.u64(pv.sizeBytes) || !r.u64(pv.extentCount) || !r.u8(state) ||
        !r.str(pv.lastPath, 4096))
      return corrupt("truncated physical volume record");
    if (state > static_cast<uint8_t>(PvState::Rebuilding)) return corrupt("unknown physical volume state");
    pv.state = static_cast<PvState>(state);
  }
  uint32_t volumeCount = 0;
  if (!r.u32(volumeCount)) return corrupt("truncated volume table");
  if (volumeCount > kPoolMaxVolumes) return corrupt(fmt::format("{} volumes (at most {})", volumeCount, kPoolMaxVolumes));
  pool.volumes.resize(volumeCount);
  for (VolumeRecord& v : pool.volumes) {
    std::string why;
    if (!decodeVolume(r, v, why)) return corrupt(why);
  }
  auto valid = validatePoolRecord(pool);
  if (!valid) return valid.error();
  return pool;
}

Result<void> validatePoolRecord(const PoolRecord& pool) {
  if (auto n = checkName("pool", pool.name); !n) return corrupt(n.error().message);
  if (!isPowerOfTwo(pool.extentSize) || pool.extentSize < (64 << 10) || pool.extentSize > (1ull << 30))
    return corrupt(fmt::format("extent size {}", pool.extentSize));
  if (pool.pvs.empty() || pool.pvs.size() > kPoolMaxPvs) return corrupt(fmt::format("{} physical volumes", pool.pvs.size()));
  std::set<Uuid> uuids;
  for (size_t i = 0; i < pool.pvs.size(); ++i) {
    const PvRecord& pv = pool.pvs[i];
    if (!uuids.insert(pv.uuid).second) return corrupt(fmt::format("PV #{} repeats a UUID", i));
    uint64_t fit = pv.sizeBytes > kPvDataStart ? (pv.sizeBytes - kPvDataStart) / pool.extentSize : 0;
    if (pv.extentCount > fit)
      return corrupt(fmt::format("PV #{} claims {} extents but its {} bytes hold {}", i, pv.extentCount, pv.sizeBytes, fit));
  }
  if (pool.volumes.size() > kPoolMaxVolumes) return corrupt(fmt::format("{} volumes", pool.volumes.size()));

  std::set<std::string> names;
  std::set<uint32_t> ids, subVolumes;
  struct Use {
    uint32_t pv;
    uint64_t start, end;
    const std::string* owner;
  };
  std::vector<Use> uses;
  for (const VolumeRecord& v : pool.volumes) {
    if (auto n = checkName("volume", v.name); !n) return corrupt(n.error().message);
    if (!names.insert(v.name).second) return corrupt(fmt::format("volume name {} appears twice", v.name));
    if (v.id == 0 || v.id >= pool.nextVolumeId || !ids.insert(v.id).second)
      return corrupt(fmt::format("volume {} has a bad or repeated id {}", v.name, v.id));
    if (v.type == VolumeType::ThinPool || v.type == VolumeType::Thin) {
      if (!v.legs.empty()) return corrupt(fmt::format("thin volume {} has extents of its own", v.name));
      continue;
    }
    auto legs = validateLegs(pool, v);
    if (!legs) return legs;
    for (const Leg& leg : v.legs)
      for (const ExtentRun& run : leg.runs) uses.push_back({run.pv, run.start, run.start + run.count, &v.name});
  }
  std::sort(uses.begin(), uses.end(),
            [](const Use& a, const Use& b) { return a.pv != b.pv ? a.pv < b.pv : a.start < b.start; });
  for (size_t i = 1; i < uses.size(); ++i)
    if (uses[i].pv == uses[i - 1].pv && uses[i].start < uses[i - 1].end)
      return corrupt(fmt::format("volumes {} and {} overlap on PV #{} at extent {}", *uses[i - 1].owner, *uses[i].owner,
                                 uses[i].pv, uses[i].start));

  for (const VolumeRecord& v : pool.volumes) {
    if (v.type == VolumeType::ThinPool) {
      const VolumeRecord* data = pool.findVolumeById(v.dataVolume);
      const VolumeRecord* meta = pool.findVolumeById(v.metaVolume);
      auto usable = [](const VolumeRecord* s) {
        return s && s->hidden() && s->type != VolumeType::Thin && s->type != VolumeType::ThinPool;
      };
      if (!usable(data) || !usable(meta) || v.dataVolume == v.metaVolume)
        return corrupt(fmt::format("thin pool {} has no valid data and metadata volumes", v.name));
      if (!subVolumes.insert(v.dataVolume).second || !subVolumes.insert(v.metaVolume).second)
        return corrupt(fmt::format("thin pool {} shares a sub-volume", v.name));
      if (!isPowerOfTwo(v.chunkSize) || v.chunkSize < 4096 || v.chunkSize > (1u << 20) ||
          data->sizeBytes % v.chunkSize != 0 || data->sizeBytes / v.chunkSize > 0xfffffff0ull)
        return corrupt(fmt::format("thin pool {} has chunk size {}", v.name, v.chunkSize));
      if (v.sizeBytes != data->sizeBytes) return corrupt(fmt::format("thin pool {} size disagrees with its data", v.name));
    } else if (v.type == VolumeType::Thin) {
      const VolumeRecord* thinPool = pool.findVolumeById(v.thinPool);
      if (!thinPool || thinPool->type != VolumeType::ThinPool)
        return corrupt(fmt::format("thin volume {} names no thin pool", v.name));
      if (v.sizeBytes == 0 || v.sizeBytes % 4096 != 0 || v.sizeBytes > kMaxThinBytes)
        return corrupt(fmt::format("thin volume {} has size {}", v.name, v.sizeBytes));
    }
  }
  return {};
}

}  // namespace strata::storage::volume
