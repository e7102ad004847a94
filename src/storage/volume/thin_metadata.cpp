#include "storage/volume/thin_metadata.h"

#include <fmt/core.h>

#include <cstring>

#include "storage/crc32c.h"
#include "storage/volume/byte_codec.h"

namespace strata::storage::volume {

namespace {
constexpr char kSuperMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'T', 'M'};
constexpr char kCheckpointMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'C', 'P'};
constexpr char kJournalMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'J', 'R'};
constexpr uint32_t kThinVersion = 1;
constexpr size_t kJournalHeader = 32;
constexpr size_t kOpBytes = 17;
constexpr uint64_t kMaxVchunk = 1ull << 40;

uint64_t roundUp4k(uint64_t v) { return (v + 4095) & ~uint64_t{4095}; }
Error thinCorrupt(const std::string& what) { return Error{"thin pool metadata is corrupt: " + what}; }

// The map of `device`, made empty if new, unless that would exceed kMaxThinDevices.
Result<ChunkMap*> deviceMap(ThinDevices& devices, uint32_t device, const char* where) {
  auto it = devices.find(device);
  if (it != devices.end()) return &it->second;
  if (devices.size() >= kMaxThinDevices)
    return thinCorrupt(fmt::format("{} names device {} beyond the {} thin devices a pool can hold", where, device,
                                   kMaxThinDevices));
  return &devices[device];
}
}  // namespace

uint32_t ChunkMap::get(uint64_t vchunk) const {
  auto it = pages_.find(vchunk / kPage);
  return it == pages_.end() ? kNoChunk : it->second[vchunk % kPage];
}

void ChunkMap::set(uint64_t vchunk, uint32_t chunk) {
  auto& page = pages_[vchunk / kPage];
  if (page.empty()) page.assign(kPage, kNoChunk);
  uint32_t& slot = page[vchunk % kPage];
  if (slot == kNoChunk) {
    ++count_;
    ++pageCounts_[vchunk / kPage];
  }
  slot = chunk;
}

void ChunkMap::erase(uint64_t vchunk) {
  auto it = pages_.find(vchunk / kPage);
  if (it == pages_.end() || it->second[vchunk % kPage] == kNoChunk) return;
  it->second[vchunk % kPage] = kNoChunk;
  --count_;
  if (--pageCounts_[vchunk / kPage] == 0) {
    pageCounts_.erase(vchunk / kPage);
    pages_.erase(it);
  }
}

Result<ThinMetaLayout> ThinMetaLayout::compute(uint64_t metaSize) {
  if (metaSize < (1 << 20)) return Error{fmt::format("thin metadata volume of {} bytes is too small", metaSize)};
  ThinMetaLayout layout;
  layout.metaSize = metaSize;
  layout.journalSize = std::min<uint64_t>(metaSize / 4, 64ull << 20) & ~uint64_t{4095};
  uint64_t rest = metaSize - 2 * kThinSuperblockSize - layout.journalSize;
  layout.checkpointSize = (rest / 2) & ~uint64_t{4095};
  layout.checkpointOffset[0] = 2 * kThinSuperblockSize;
  layout.checkpointOffset[1] = layout.checkpointOffset[0] + layout.checkpointSize;
  layout.journalOffset = layout.checkpointOffset[1] + layout.checkpointSize;
  return layout;
}

std::vector<uint8_t> encodeThinSuperblock(const ThinSuperblock& s) {
  ByteWriter w;
  w.raw(kSuperMagic, 8);
  w.u32(kThinVersion);
  w.u32(0);
  w.u64(s.sequence);
  w.u64(s.generation);
  w.u32(s.chunkSize);
  w.u32(s.checkpointArea);
  w.u64(s.checkpointLength);
  w.u32(s.checkpointCrc);
  std::vector<uint8_t> bytes = std::move(w.bytes());
  bytes.resize(kThinSuperblockSize, 0);
  storeLe32(&bytes[12], crc32c(bytes.data(), 512));
  return bytes;
}

Result<ThinSuperblock> decodeThinSuperblock(const uint8_t* bytes, size_t length) {
  if (length < 512 || std::memcmp(bytes, kSuperMagic, 8) != 0) return Error{"no thin superblock"};
  std::vector<uint8_t> copy(bytes, bytes + 512);
  uint32_t stored = loadLe32(&copy[12]);
  storeLe32(&copy[12], 0);
  if (crc32c(copy.data(), copy.size()) != stored) return Error{"thin superblock checksum mismatch"};
  ByteReader r(bytes + 8, 504);
  ThinSuperblock s;
  uint32_t version = 0, crc = 0;
  r.u32(version);
  r.u32(crc);
  r.u64(s.sequence);
  r.u64(s.generation);
  r.u32(s.chunkSize);
  r.u32(s.checkpointArea);
  r.u64(s.checkpointLength);
  r.u32(s.checkpointCrc);
  if (version != kThinVersion) return Error{fmt::format("thin metadata version {} is not supported", version)};
  if (s.checkpointArea > 1) return thinCorrupt("checkpoint area index");
  return s;
}

std::vector<uint8_t> encodeThinCheckpoint(uint64_t generation, const ThinDevices& devices) {
  ByteWriter w;
  w.raw(kCheckpointMagic, 8);
  w.u64(generation);
  w.u32(static_cast<uint32_t>(devices.size()));
  for (const auto& [id, chunks] : devices) {
    // Runs of consecutive vchunks on consecutive data chunks, as sequential
    // writes allocate them.
    struct Run {
      uint64_t v;
      uint32_t d, n;
    };
    std::vector<Run> runs;
    chunks.forEach([&](uint64_t v, uint32_t d) {
      if (!runs.empty()) {
        Run& last = runs.back();
        if (last.v + last.n == v && static_cast<uint64_t>(last.d) + last.n == d && last.n < 0xffffffffu) {
          ++last.n;
          return;
        }
      }
      runs.push_back({v, d, 1});
    });
    w.u32(id);
    w.u32(static_cast<uint32_t>(runs.size()));
    for (const Run& run : runs) {
      w.u64(run.v);
      w.u32(run.d);
      w.u32(run.n);
    }
  }
  std::vector<uint8_t> bytes = std::move(w.bytes());
  bytes.resize(roundUp4k(bytes.size()), 0);
  return bytes;
}

Result<ThinDevices> decodeThinCheckpoint(const uint8_t* bytes, size_t length, uint64_t generation, uint64_t dataChunks) {
  ByteReader r(bytes, length);
  char magic[8];
  uint64_t gen = 0;
  uint32_t count = 0;
  if (!r.raw(magic, 8) || std::memcmp(magic, kCheckpointMagic, 8) != 0 || !r.u64(gen) || !r.u32(count))
    return thinCorrupt("bad checkpoint header");
  if (gen != generation) return thinCorrupt("checkpoint generation does not match the superblock");
  if (count > kMaxThinDevices)
    return thinCorrupt(fmt::format("checkpoint lists {} thin devices (at most {})", count, kMaxThinDevices));
  ThinDevices devices;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t id = 0, runs = 0;
    if (!r.u32(id) || !r.u32(runs) || runs * 16ull > r.remaining()) return thinCorrupt("truncated checkpoint");
    if (devices.count(id)) return thinCorrupt(fmt::format("checkpoint lists device {} twice", id));
    ChunkMap& map = devices[id];
    uint64_t previousEnd = 0;  // runs ascend and do not overlap, as encoded
    for (uint32_t k = 0; k < runs; ++k) {
      uint64_t v = 0;
      uint32_t d = 0, n = 0;
      r.u64(v);
      r.u32(d);
      r.u32(n);
      if (n == 0 || v >= kMaxVchunk || n > kMaxVchunk - v || d >= dataChunks || n > dataChunks - d)
        return thinCorrupt(fmt::format("device {} maps chunks {}+{} outside the data volume ({} chunks)", id, d, n,
                                       dataChunks));
      if (v < previousEnd)
        return thinCorrupt(fmt::format("device {} has a run at virtual chunk {} overlapping or before the previous one",
                                       id, v));
      if (n > dataChunks - map.count())
        return thinCorrupt(fmt::format("device {} maps more than the {} chunks of the data volume", id, dataChunks));
      previousEnd = v + n;
      for (uint32_t j = 0; j < n; ++j) map.set(v + j, d + j);
    }
  }
  return devices;
}

std::vector<uint8_t> encodeThinJournalRecord(uint64_t generation, uint64_t sequence, const std::vector<ThinOp>& ops) {
  ByteWriter w;
  w.raw(kJournalMagic, 8);
  w.u32(0);  // crc
  w.u32(static_cast<uint32_t>(ops.size() * kOpBytes));
  w.u64(generation);
  w.u64(sequence);
  for (const ThinOp& op : ops) {
    w.u8(op.kind);
    w.u32(op.device);
    w.u64(op.arg);
    w.u32(op.chunk);
  }
  std::vector<uint8_t> bytes = std::move(w.bytes());
  size_t used = bytes.size();
  storeLe32(&bytes[8], crc32c(bytes.data(), used));
  bytes.resize(roundUp4k(used), 0);
  return bytes;
}

Result<ThinJournalRecord> decodeThinJournalRecord(const uint8_t* bytes, size_t length, uint64_t generation,
                                                  uint64_t sequence) {
  if (length < kJournalHeader || std::memcmp(bytes, kJournalMagic, 8) != 0) return Error{"end of journal"};
  uint32_t payload = loadLe32(bytes + 12);
  if (payload > length - kJournalHeader || payload % kOpBytes != 0) return Error{"end of journal (bad length)"};
  std::vector<uint8_t> copy(bytes, bytes + kJournalHeader + payload);
  uint32_t stored = loadLe32(&copy[8]);
  storeLe32(&copy[8], 0);
  if (crc32c(copy.data(), copy.size()) != stored) return Error{"end of journal (checksum)"};
  ByteReader r(bytes + 16, length - 16);
  uint64_t gen = 0, seq = 0;
  r.u64(gen);
  r.u64(seq);
  if (gen != generation || seq != sequence) return Error{"end of journal (stale record)"};
  ThinJournalRecord record;
  record.length = roundUp4k(kJournalHeader + payload);
  for (uint32_t i = 0; i < payload / kOpBytes; ++i) {
    ThinOp op;
    uint8_t kind = 0;
    r.u8(kind);
    r.u32(op.device);
    r.u64(op.arg);
    r.u32(op.chunk);
    op.kind = static_cast<ThinOp::Kind>(kind);
    record.ops.push_back(op);
  }
  return record;
}

Result<void> applyThinOp(ThinDevices& devices, const ThinOp& op, uint64_t dataChunks) {
  switch (op.kind) {
    case ThinOp::Map: {
      if (op.arg >= kMaxVchunk || op.chunk >= dataChunks)
        return thinCorrupt(fmt::format("journal maps device {} chunk {} to {} outside the data volume", op.device,
                                       op.arg, op.chunk));
      auto map = deviceMap(devices, op.device, "journal");
      if (!map) return map.error();
      if ((*map)->get(op.arg) == kNoChunk && (*map)->count() >= dataChunks)
        return thinCorrupt(fmt::format("journal maps more than the {} chunks of the data volume into device {}",
                                       dataChunks, op.device));
      (*map)->set(op.arg, op.chunk);
      return {};
    }
    case ThinOp::Unmap: {
      auto it = devices.find(op.device);
      if (it != devices.end()) it->second.erase(op.arg);
      return {};
    }
    case ThinOp::UnmapRange: {
      if (op.arg >= kMaxVchunk || op.chunk > kMaxVchunk - op.arg)
        return thinCorrupt(fmt::format("journal unmaps device {} chunks {}+{} past the largest thin volume",
                                       op.device, op.arg, op.chunk));
      auto it = devices.find(op.device);
      if (it != devices.end()) it->second.eraseRange(op.arg, op.arg + op.chunk, [](uint32_t) {});
      return {};
    }
    case ThinOp::Snapshot: {
      auto it = devices.find(static_cast<uint32_t>(op.arg));
      ChunkMap copy;
      if (it != devices.end()) copy = it->second;
      auto map = deviceMap(devices, op.device, "journal snapshot");
      if (!map) return map.error();
      **map = std::move(copy);
      return {};
    }
    case ThinOp::Delete:
      devices.erase(op.device);
      return {};
    case ThinOp::Truncate: {
      auto it = devices.find(op.device);
      if (it != devices.end()) it->second.truncate(op.arg, [](uint32_t) {});
      return {};
    }
  }
  return thinCorrupt(fmt::format("unknown journal operation {}", static_cast<int>(op.kind)));
}

}  // namespace strata::storage::volume
