// On-disk format of a thin pool's metadata volume and the in-memory mapping
// table it persists. Layout: two superblock slots (the valid one with the
// higher sequence wins) | two checkpoint areas (a full dump of every thin
// device's chunk map; the superblock names the current one) | a journal of
// operations appended at each flush, replayed on open until the first record
// whose checksum, generation or sequence does not match.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "base/result.h"

namespace strata::storage::volume {

inline constexpr uint32_t kNoChunk = 0xffffffff;
// Thin devices loaded metadata may hold at once: a pool has at most 1024
// volumes (kPoolMaxVolumes), and devices of removed volumes or interrupted
// snapshots live only until the next open for writing drops them.
inline constexpr uint32_t kMaxThinDevices = 2048;

// Sparse map of virtual chunk -> data chunk, in pages of 1024 entries.
class ChunkMap {
 public:
  uint32_t get(uint64_t vchunk) const;
  void set(uint64_t vchunk, uint32_t chunk);
  void erase(uint64_t vchunk);
  uint64_t count() const { return count_; }
  // Calls fn(vchunk, chunk) in ascending vchunk order.
  template <typename Fn>
  void forEach(Fn fn) const {
    for (const auto& [page, entries] : pages_)
      for (size_t i = 0; i < kPage; ++i)
        if (entries[i] != kNoChunk) fn(page * kPage + i, entries[i]);
  }
  // Removes the mappings of [first, end), visiting only the pages that hold
  // some (a huge sparse range costs nothing); calls fn(chunk) for each
  // removed and returns how many there were.
  template <typename Fn>
  uint64_t eraseRange(uint64_t first, uint64_t end, Fn fn) {
    uint64_t removed = 0;
    for (auto page = pages_.lower_bound(first / kPage); page != pages_.end() && page->first * kPage < end;) {
      uint64_t base = page->first * kPage;
      size_t from = first > base ? static_cast<size_t>(first - base) : 0;
      size_t to = static_cast<size_t>(std::min<uint64_t>(kPage, end - base));
      uint32_t inPage = 0;
      for (size_t i = from; i < to; ++i)
        if (page->second[i] != kNoChunk) {
          fn(page->second[i]);
          page->second[i] = kNoChunk;
          ++inPage;
        }
      removed += inPage;
      count_ -= inPage;
      auto counted = pageCounts_.find(page->first);
      counted->second -= inPage;
      if (counted->second == 0) {
        pageCounts_.erase(counted);
        page = pages_.erase(page);
      } else {
        ++page;
      }
    }
    return removed;
  }
  // Removes every mapping at or past vchunk; calls fn(chunk) for each removed.
  template <typename Fn>
  void truncate(uint64_t vchunk, Fn fn) {
    eraseRange(vchunk, UINT64_MAX, fn);
  }

 private:
  static constexpr size_t kPage = 1024;
  std::map<uint64_t, std::vector<uint32_t>> pages_;
  std::map<uint64_t, uint32_t> pageCounts_;
  uint64_t count_ = 0;
};

struct ThinOp {
  enum Kind : uint8_t { Map = 1, Unmap = 2, Snapshot = 3, Delete = 4, Truncate = 5, UnmapRange = 6 };
  Kind kind = Map;
  uint32_t device = 0;
  uint64_t arg = 0;          // Map/Unmap/UnmapRange: (first) vchunk; Snapshot: origin device; Truncate: first vchunk dropped
  uint32_t chunk = kNoChunk; // Map: data chunk; UnmapRange: how many vchunks
};

struct ThinMetaLayout {
  uint64_t metaSize = 0;
  uint64_t checkpointOffset[2] = {0, 0};
  uint64_t checkpointSize = 0;
  uint64_t journalOffset = 0;
  uint64_t journalSize = 0;
  static Result<ThinMetaLayout> compute(uint64_t metaSize);
};

inline constexpr uint64_t kThinSuperblockSize = 4096;

struct ThinSuperblock {
  uint64_t sequence = 0;
  uint64_t generation = 0;  // journal records of other generations are stale
  uint32_t chunkSize = 0;
  uint32_t checkpointArea = 0;
  uint64_t checkpointLength = 0;
  uint32_t checkpointCrc = 0;
};

using ThinDevices = std::map<uint32_t, ChunkMap>;

std::vector<uint8_t> encodeThinSuperblock(const ThinSuperblock& super);
Result<ThinSuperblock> decodeThinSuperblock(const uint8_t* bytes, size_t length);

// Padded to 4 KiB.
std::vector<uint8_t> encodeThinCheckpoint(uint64_t generation, const ThinDevices& devices);
Result<ThinDevices> decodeThinCheckpoint(const uint8_t* bytes, size_t length, uint64_t generation, uint64_t dataChunks);

// A record's bytes, padded to 4 KiB.
std::vector<uint8_t> encodeThinJournalRecord(uint64_t generation, uint64_t sequence, const std::vector<ThinOp>& ops);
struct ThinJournalRecord {
  std::vector<ThinOp> ops;
  uint64_t length = 0;  // bytes the record occupies
};
// Fails (the end of the journal) unless a valid record of this generation and sequence starts here.
Result<ThinJournalRecord> decodeThinJournalRecord(const uint8_t* bytes, size_t length, uint64_t generation,
                                                  uint64_t sequence);
// Rejects ops that name chunks outside the data volume, would give a device
// more mappings than the data volume has chunks (one device never maps a data
// chunk twice) or make more than kMaxThinDevices devices: what metadata can
// make the loader allocate is bounded by the pool's real size.
Result<void> applyThinOp(ThinDevices& devices, const ThinOp& op, uint64_t dataChunks);

}  // namespace strata::storage::volume
