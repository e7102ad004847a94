#include "storage/volume_metadata.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "storage/crc32c.h"

namespace strata::storage::volume {

namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'V'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 64;

class Writer {
 public:
  void u8(uint8_t v) { bytes.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void uuid(const Uuid& u) { bytes.insert(bytes.end(), u.begin(), u.end()); }
  void string(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> bytes;
};

// Reads little-endian fields; any read past the end sets `failed` and yields zeroes.
class Reader {
 public:
  Reader(const uint8_t* data, size_t length) : data_(data), length_(length) {}
  bool failed = false;
  uint64_t raw(int bytes) {
    if (length_ - position_ < static_cast<size_t>(bytes) || position_ > length_) {
      failed = true;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{data_[position_ + i]} << (8 * i);
    position_ += static_cast<size_t>(bytes);
    return v;
  }
  uint8_t u8() { return static_cast<uint8_t>(raw(1)); }
  uint32_t u32() { return static_cast<uint32_t>(raw(4)); }
  uint64_t u64() { return raw(8); }
  Uuid uuid() {
    Uuid u{};
    for (auto& b : u) b = u8();
    return u;
  }
  std::string string(size_t maxLength) {
    uint32_t size = u32();
    if (size > maxLength || size > length_ - position_) {
      failed = true;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(data_ + position_), size);
    position_ += size;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t length_;
  size_t position_ = 0;
};

void storeLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void storeLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t loadLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{p[i]} << (8 * i);
  return v;
}
uint64_t loadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

}  // namespace

std::string uuidToString(const Uuid& u) {
  std::string s;
  for (size_t i = 0; i < u.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += fmt::format("{:02x}", u[i]);
  }
  return s;
}

std::vector<uint8_t> encodeSlot(const PoolMetadata& pool, uint32_t pvIndex) {
  Writer payload;
  payload.uuid(pool.poolUuid);
  payload.string(pool.name);
  payload.u64(pool.extentSize);
  payload.u32(static_cast<uint32_t>(pool.pvs.size()));
  for (const auto& pv : pool.pvs) {
    payload.uuid(pv.uuid);
    payload.u64(pv.extentCount);
  }
  payload.u32(static_cast<uint32_t>(pool.volumes.size()));
  for (const auto& lv : pool.volumes) {
    payload.string(lv.name);
    payload.u8(static_cast<uint8_t>(lv.layout));
    payload.u32(lv.stripes);
    payload.u64(lv.stripeSize);
    payload.u64(lv.sizeBytes);
    payload.u32(static_cast<uint32_t>(lv.segments.size()));
    for (const auto& s : lv.segments) {
      payload.u32(s.pvIndex);
      payload.u64(s.startExtent);
      payload.u64(s.extentCount);
    }
  }
  std::vector<uint8_t> slot(kHeaderSize + payload.bytes.size(), 0);
  std::copy(payload.bytes.begin(), payload.bytes.end(), slot.begin() + kHeaderSize);
  std::memcpy(slot.data(), kMagic, sizeof kMagic);
  storeLe32(&slot[8], kFormatVersion);
  storeLe64(&slot[16], pool.sequence);
  storeLe32(&slot[24], static_cast<uint32_t>(payload.bytes.size()));
  storeLe32(&slot[28], pvIndex);
  storeLe32(&slot[12], crc32c(slot.data() + 16, slot.size() - 16));
  return slot;
}

Result<DecodedSlot> decodeSlot(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return Error{"no strata physical volume label"};
  }
  if (loadLe32(&bytes[8]) != kFormatVersion) return Error{fmt::format("unsupported metadata version {}", loadLe32(&bytes[8]))};
  uint32_t payloadLength = loadLe32(&bytes[24]);
  if (payloadLength > bytes.size() - kHeaderSize || payloadLength > kSlotSize - kHeaderSize) {
    return Error{"metadata length out of range"};
  }
  if (crc32c(bytes.data() + 16, kHeaderSize - 16 + payloadLength) != loadLe32(&bytes[12])) {
    return Error{"metadata checksum mismatch"};
  }
  DecodedSlot slot;
  slot.pool.sequence = loadLe64(&bytes[16]);
  slot.pvIndex = loadLe32(&bytes[28]);
  Reader in(bytes.data() + kHeaderSize, payloadLength);
  PoolMetadata& pool = slot.pool;
  pool.poolUuid = in.uuid();
  pool.name = in.string(255);
  pool.extentSize = in.u64();
  uint32_t pvCount = in.u32();
  if (in.failed || pvCount == 0 || pvCount > kMaxPhysicalVolumes) return Error{"bad physical volume count"};
  if (pool.extentSize < 65536 || pool.extentSize > (1ull << 34) || (pool.extentSize & (pool.extentSize - 1)) != 0) {
    return Error{"bad extent size"};
  }
  for (uint32_t i = 0; i < pvCount && !in.failed; ++i) {
    PhysicalVolumeInfo pv;
    pv.uuid = in.uuid();
    pv.extentCount = in.u64();
    if (pv.extentCount > (1ull << 40)) return Error{"bad physical volume size"};
    pool.pvs.push_back(pv);
  }
  if (slot.pvIndex >= pvCount) return Error{"physical volume index out of range"};
  uint32_t lvCount = in.u32();
  if (in.failed || lvCount > kMaxVolumes) return Error{"bad logical volume count"};
  for (uint32_t i = 0; i < lvCount && !in.failed; ++i) {
    LogicalVolumeInfo lv;
    lv.name = in.string(128);
    uint8_t layout = in.u8();
    if (layout > 1) return Error{"unknown logical volume layout"};
    lv.layout = static_cast<Layout>(layout);
    lv.stripes = in.u32();
    lv.stripeSize = in.u64();
    lv.sizeBytes = in.u64();
    uint32_t segmentCount = in.u32();
    if (segmentCount > 65536) return Error{"bad segment count"};
    uint64_t extents = 0;
    for (uint32_t s = 0; s < segmentCount && !in.failed; ++s) {
      Segment seg;
      seg.pvIndex = in.u32();
      seg.startExtent = in.u64();
      seg.extentCount = in.u64();
      if (seg.pvIndex >= pvCount || seg.startExtent > pool.pvs[seg.pvIndex].extentCount ||
          seg.extentCount > pool.pvs[seg.pvIndex].extentCount - seg.startExtent) {
        return Error{"segment outside its physical volume"};
      }
      extents += seg.extentCount;
      lv.segments.push_back(seg);
    }
    if (lv.layout == Layout::Striped) {
      if (lv.stripes < 2 || lv.stripes != lv.segments.size() || lv.stripeSize < 512 ||
          pool.extentSize % lv.stripeSize != 0) {
        return Error{"bad stripe geometry for volume " + lv.name};
      }
      for (const auto& seg : lv.segments) {
        if (seg.extentCount != lv.segments[0].extentCount) return Error{"unequal stripe legs in volume " + lv.name};
      }
    }
    if (lv.sizeBytes > extents * pool.extentSize) return Error{"volume " + lv.name + " is larger than its extents"};
    pool.volumes.push_back(std::move(lv));
  }
  if (in.failed) return Error{"metadata truncated"};
  return slot;
}

}  // namespace strata::storage::volume
