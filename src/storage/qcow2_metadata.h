// Qcow2Metadata: the qcow2 tables of one image file — L1 (in memory), cached L2
// tables and refcount blocks, the refcount table — plus cluster allocation.
// The owner reads missing tables asynchronously before a request needs them
// (missingL2Table/missingRefblocks, then insertTable); a table still missing is
// read synchronously as a fallback (tools, rare allocation scans). This unit
// writes nothing: changes, a grown refcount table included, stay in memory
// until the owner writes dirtyWrites() back phase by phase with a data sync in
// between (qcow2::Writeback), so the file on disk is consistent at every step:
//   refcount blocks -> refcount table -> header -> L2 tables -> L1 table
// Clusters that lose a reference are released only after the references are
// durable (applyDeferredReleases), so a crash can leak a cluster but never
// leave a referenced cluster with refcount 0 or reuse one still referenced.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "storage/qcow2_format.h"

namespace strata::storage::qcow2 {

class Metadata {
 public:
  // fd is used for positioned reads (never writes) and must stay open; fileSize bounds offsets.
  static Result<std::unique_ptr<Metadata>> load(int fd, const Header& header, uint64_t fileSize,
                                                std::string name, bool writable, size_t l2CacheBytes = 0);

  const Header& header() const { return header_; }
  uint64_t clusterSize() const { return header_.clusterSize(); }
  // One past the last byte any table or cluster may occupy (grows with allocation).
  uint64_t fileEnd() const { return fileEnd_; }

  // The L2 entry for a guest cluster (0 when its L2 table does not exist).
  Result<uint64_t> l2Entry(uint64_t guestCluster);
  // The L2 entry for a guest cluster if its L2 table is in memory: one lookup,
  // never a read. nullopt when the table is not cached, or the L1 entry is
  // empty or invalid (l2Entry then tells which).
  std::optional<uint64_t> cachedL2Entry(uint64_t guestCluster);
  // Sets an L2 entry in memory, allocating the L2 table if needed.
  Result<void> setL2Entry(uint64_t guestCluster, uint64_t entry);

  // Offset of the first L2 table guest clusters [first, last] use that is not in
  // memory. Tables with invalid offsets are not reported: using them fails.
  std::optional<uint64_t> missingL2Table(uint64_t firstCluster, uint64_t lastCluster) const;
  // Offsets of the refcount blocks describing host clusters [first, last] that
  // are not in memory, at most `limit` of them.
  std::vector<uint64_t> missingRefblocks(uint64_t firstCluster, uint64_t lastCluster, size_t limit) const;
  enum class TableKind { L2, Refblock };
  // Adds a table read from `offset` (one cluster); kept as is when already cached.
  void insertTable(TableKind kind, uint64_t offset, std::vector<uint8_t> bytes);
  // Where the next allocation starts looking for free clusters.
  uint64_t freeClusterHint() const { return freeHint_; }
  // Guest clusters whose pending refcount drops are waiting for the next flush.
  const std::vector<std::pair<uint64_t, uint64_t>>& deferredReleases() const { return deferredReleases_; }

  Result<uint64_t> refcount(uint64_t clusterIndex);
  // Allocates `count` contiguous free clusters with refcount 1; returns the byte
  // offset. Keep count <= maxAllocationRun() so new refcount blocks fit beside the run.
  Result<uint64_t> allocateClusters(uint64_t count);
  uint64_t maxAllocationRun() const { return std::max<uint64_t>(1, header_.refcountsPerBlock() / 2); }
  // Drops one reference from each cluster in [offset, offset+bytes) once the
  // metadata that stopped using them is durable (see applyDeferredReleases).
  void releaseLater(uint64_t offset, uint64_t bytes);
  bool hasDeferredReleases() const { return !deferredReleases_.empty(); }
  // Byte ranges of clusters whose refcount dropped to 0: the owner may punch them out of the file.
  using ByteRanges = std::vector<std::pair<uint64_t, uint64_t>>;  // (offset, length)
  Result<ByteRanges> applyDeferredReleases();

  // Write-back, in this order (see qcow2::Writeback). Header is the refcount
  // table's location, dirty only after the table grew and moved.
  enum class Phase { RefcountBlocks, RefcountTable, Header, L2Tables, L1Table };
  static constexpr Phase kWriteOrder[] = {Phase::RefcountBlocks, Phase::RefcountTable, Phase::Header,
                                          Phase::L2Tables, Phase::L1Table};
  // One piece of metadata to write. `data` points into the cache (or into
  // `serialized`) and stays valid and unchanged as long as no table changes:
  // the owner holds requests off until the write-back ends.
  struct DirtyWrite {
    uint64_t offset = 0;
    const uint8_t* data = nullptr;
    size_t length = 0;
    std::shared_ptr<const std::vector<uint8_t>> serialized;  // L1, refcount table, header field
  };
  // What phase `phase` has to write (empty when none of it is dirty).
  std::vector<DirtyWrite> dirtyWrites(Phase phase) const;
  // The writes dirtyWrites(phase) returned are durable: mark them clean.
  void markWritten(Phase phase, const std::vector<DirtyWrite>& writes);
  bool dirty() const;
  // Dirty metadata has outgrown its bound (more dirty L2 tables or refcount
  // blocks than half of what their cache holds, or too many deferred
  // releases): the owner writes it back before requests change more. Keeps
  // memory bounded when the guest never flushes.
  bool writebackDue() const;
  // Tables in memory and how many of them are dirty (both caches).
  size_t cachedTables() const { return l2Cache_.tables.size() + refblockCache_.tables.size(); }
  size_t dirtyTables() const { return l2Cache_.dirty + refblockCache_.dirty; }
  // Most tables either cache keeps (clean ones are evicted beyond it).
  size_t l2CacheTables() const { return l2Cache_.maxTables; }

  // Raw table access for consistency checks.
  const std::vector<uint64_t>& l1Table() const { return l1_; }
  const std::vector<uint64_t>& refcountTable() const { return refTable_; }
  // Reads `count` big-endian 64-bit entries at offset (an L1 or L2 table elsewhere).
  Result<std::vector<uint64_t>> readEntries(uint64_t offset, uint64_t count);
  // Maximum refcount value the image's refcount width can hold.
  uint64_t maxRefcount() const;

 private:
  struct CachedTable {
    std::vector<uint8_t> bytes;
    bool dirty = false;
    // Read ahead for a waiting request and not used since: not evicted, or
    // loads for one request could evict each other forever.
    bool fresh = false;
    uint64_t lastUse = 0;
  };
  struct Cache {
    std::unordered_map<uint64_t, CachedTable> tables;
    size_t maxTables = 0;  // clean tables are evicted beyond this
    size_t dirty = 0;      // tables with `dirty` set
  };

  Metadata(int fd, const Header& header, uint64_t fileSize, std::string name, bool writable, size_t l2CacheBytes);
  Error corrupt(const std::string& what) const;
  bool tableOffsetValid(uint64_t offset) const;
  std::optional<uint64_t> refblockOffset(uint64_t tableIndex) const;
  Result<CachedTable*> loadTable(Cache& cache, uint64_t offset);
  void evictClean(Cache& cache);
  static void markDirty(Cache& cache, CachedTable& table);
  // A table newly placed at `offset` (zeroed, dirty), replacing whatever was cached there.
  CachedTable& addNewTable(Cache& cache, uint64_t offset);
  Result<CachedTable*> l2TableFor(uint64_t guestCluster, bool create);
  Result<CachedTable*> refblockFor(uint64_t clusterIndex);  // nullptr when none exists
  Result<void> setRefcount(uint64_t clusterIndex, uint64_t value);
  Result<uint64_t> findFreeRun(uint64_t count);
  Result<void> createRefblock(uint64_t tableIndex, uint64_t candidateCluster);
  Result<void> growRefcountTable(uint64_t neededIndex);

  int fd_;
  Header header_;
  std::string name_;
  bool writable_;
  uint64_t fileEnd_;
  std::vector<uint64_t> l1_;
  bool l1Dirty_ = false;
  std::vector<uint64_t> refTable_;
  bool refTableDirty_ = false;
  bool headerDirty_ = false;  // the refcount table moved; the header must point at it
  Cache l2Cache_;
  Cache refblockCache_;
  uint64_t useCounter_ = 0;
  // Where allocation scans start: clusters below are in use, or free in runs
  // a scan found too short (QEMU's free_cluster_index); releases move it back.
  uint64_t freeHint_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> deferredReleases_;  // (cluster index, count)
};

}  // namespace strata::storage::qcow2
