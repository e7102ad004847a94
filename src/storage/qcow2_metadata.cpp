#include "storage/qcow2_metadata.h"

#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <limits>

#include "base/log.h"

namespace strata::storage::qcow2 {

namespace {

constexpr size_t kL2CacheBytes = 32u << 20;
constexpr size_t kRefblockCacheBytes = 8u << 20;
// Deferred refcount drops kept before a write-back applies them (a guest
// discarding without ever flushing): 16 bytes each.
constexpr size_t kMaxDeferredReleases = 1u << 16;

size_t tablesFor(size_t cacheBytes, uint64_t clusterSize) {
  return std::max<size_t>(16, cacheBytes / clusterSize);
}

void setRefcountIn(uint8_t* block, uint64_t index, uint32_t order, uint64_t value) {
  uint32_t bits = 1u << order;
  if (bits >= 8) {
    uint32_t bytes = bits / 8;
    uint8_t* p = block + index * bytes;
    for (int k = static_cast<int>(bytes) - 1; k >= 0; --k, value >>= 8) p[k] = static_cast<uint8_t>(value);
    return;
  }
  uint32_t perByte = 8 / bits;
  uint32_t shift = static_cast<uint32_t>(index % perByte) * bits;
  uint8_t mask = static_cast<uint8_t>(((1u << bits) - 1) << shift);
  uint8_t& byte = block[index / perByte];
  byte = static_cast<uint8_t>((byte & ~mask) | ((value << shift) & mask));
}

uint64_t roundUp(uint64_t value, uint64_t unit) { return (value + unit - 1) / unit * unit; }

}  // namespace

Metadata::Metadata(int fd, const Header& header, uint64_t fileSize, std::string name, bool writable,
                   size_t l2CacheBytes)
    : fd_(fd), header_(header), name_(std::move(name)), writable_(writable),
      fileEnd_(roundUp(fileSize, header.clusterSize())) {
  l2Cache_.maxTables = tablesFor(l2CacheBytes ? l2CacheBytes : kL2CacheBytes, header.clusterSize());
  refblockCache_.maxTables = tablesFor(kRefblockCacheBytes, header.clusterSize());
}

Error Metadata::corrupt(const std::string& what) const {
  log::error("{}: qcow2 metadata is corrupt: {}", name_, what);
  return Error{name_ + ": corrupt image: " + what};
}

Result<std::unique_ptr<Metadata>> Metadata::load(int fd, const Header& header, uint64_t fileSize, std::string name,
                                                 bool writable, size_t l2CacheBytes) {
  std::unique_ptr<Metadata> meta(new Metadata(fd, header, fileSize, std::move(name), writable, l2CacheBytes));
  auto l1 = meta->readEntries(header.l1TableOffset, header.l1Size);
  if (!l1) return l1.error();
  meta->l1_ = std::move(*l1);
  auto refTable = meta->readEntries(header.refcountTableOffset,
                                    uint64_t{header.refcountTableClusters} * header.clusterSize() / 8);
  if (!refTable) return refTable.error();
  meta->refTable_ = std::move(*refTable);
  return meta;
}

Result<std::vector<uint64_t>> Metadata::readEntries(uint64_t offset, uint64_t count) {
  if (count == 0) return std::vector<uint64_t>{};
  if (offset > fileEnd_ || count > (fileEnd_ - offset) / 8) {
    return corrupt(fmt::format("table at 0x{:x} ({} entries) lies past the end of the file", offset, count));
  }
  std::vector<uint8_t> bytes(count * 8);
  ssize_t got = ::pread(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  if (got < 0) return errnoError(name_ + ": reading metadata");
  // A table may end in the file's unwritten tail, which reads as zeroes.
  std::fill(bytes.begin() + got, bytes.end(), 0);
  std::vector<uint64_t> entries(count);
  for (uint64_t i = 0; i < count; ++i) entries[i] = loadBe64(&bytes[i * 8]);
  return entries;
}

uint64_t Metadata::maxRefcount() const {
  uint32_t bits = header_.refcountBits();
  return bits == 64 ? std::numeric_limits<uint64_t>::max() : (1ull << bits) - 1;
}

Result<Metadata::CachedTable*> Metadata::loadTable(Cache& cache, uint64_t offset) {
  auto it = cache.tables.find(offset);
  if (it != cache.tables.end()) {
    it->second.lastUse = ++useCounter_;
    it->second.fresh = false;
    return &it->second;
  }
  const uint64_t clusterSize = header_.clusterSize();
  if (!tableOffsetValid(offset)) {
    return corrupt(fmt::format("table offset 0x{:x} is unaligned or past the end of the file", offset));
  }
  evictClean(cache);
  CachedTable table;
  table.bytes.resize(clusterSize);
  ssize_t got = ::pread(fd_, table.bytes.data(), clusterSize, static_cast<off_t>(offset));
  if (got < 0) return errnoError(name_ + ": reading metadata");
  std::fill(table.bytes.begin() + got, table.bytes.end(), 0);
  table.lastUse = ++useCounter_;
  return &cache.tables.emplace(offset, std::move(table)).first->second;
}

bool Metadata::tableOffsetValid(uint64_t offset) const {
  const uint64_t clusterSize = header_.clusterSize();
  return offset % clusterSize == 0 && offset != 0 && fileEnd_ >= clusterSize && offset <= fileEnd_ - clusterSize;
}

std::optional<uint64_t> Metadata::missingL2Table(uint64_t firstCluster, uint64_t lastCluster) const {
  const uint64_t perTable = header_.l2Entries();
  for (uint64_t l1Index = firstCluster / perTable; l1Index <= lastCluster / perTable && l1Index < l1_.size();
       ++l1Index) {
    uint64_t entry = l1_[l1Index];
    uint64_t offset = entry & kL1OffsetMask;
    if ((entry & kL1ReservedMask) != 0 || offset == 0 || !tableOffsetValid(offset)) continue;
    if (l2Cache_.tables.count(offset) == 0) return offset;
  }
  return std::nullopt;
}

std::optional<uint64_t> Metadata::refblockOffset(uint64_t tableIndex) const {
  if (tableIndex >= refTable_.size()) return std::nullopt;
  uint64_t entry = refTable_[tableIndex];
  if ((entry & ~kRefTableOffsetMask) != 0 || entry == 0 || !tableOffsetValid(entry)) return std::nullopt;
  return entry;
}

std::vector<uint64_t> Metadata::missingRefblocks(uint64_t firstCluster, uint64_t lastCluster, size_t limit) const {
  std::vector<uint64_t> missing;
  const uint64_t perBlock = header_.refcountsPerBlock();
  for (uint64_t index = firstCluster / perBlock;
       index <= lastCluster / perBlock && index < refTable_.size() && missing.size() < limit; ++index) {
    auto offset = refblockOffset(index);
    if (offset && refblockCache_.tables.count(*offset) == 0) missing.push_back(*offset);
  }
  return missing;
}

void Metadata::insertTable(TableKind kind, uint64_t offset, std::vector<uint8_t> bytes) {
  Cache& cache = kind == TableKind::L2 ? l2Cache_ : refblockCache_;
  // A table created or loaded meanwhile is newer than what was read.
  if (cache.tables.count(offset) != 0 || bytes.size() != header_.clusterSize() || !tableOffsetValid(offset)) return;
  evictClean(cache);
  CachedTable table;
  table.bytes = std::move(bytes);
  table.fresh = true;
  table.lastUse = ++useCounter_;
  cache.tables.emplace(offset, std::move(table));
}

void Metadata::evictClean(Cache& cache) {
  auto& tables = cache.tables;
  while (tables.size() >= cache.maxTables) {
    auto victim = tables.end();
    for (auto it = tables.begin(); it != tables.end(); ++it) {
      if (!it->second.dirty && !it->second.fresh && (victim == tables.end() || it->second.lastUse < victim->second.lastUse)) victim = it;
    }
    if (victim == tables.end()) return;  // all dirty or fresh: they leave after the next write-back or use
    tables.erase(victim);
  }
}

void Metadata::markDirty(Cache& cache, CachedTable& table) {
  if (table.dirty) return;
  table.dirty = true;
  ++cache.dirty;
}

Metadata::CachedTable& Metadata::addNewTable(Cache& cache, uint64_t offset) {
  evictClean(cache);
  auto [it, added] = cache.tables.try_emplace(offset);
  CachedTable& table = it->second;
  if (!added && table.dirty) --cache.dirty;
  table = CachedTable{};
  table.bytes.assign(header_.clusterSize(), 0);
  table.lastUse = ++useCounter_;
  markDirty(cache, table);
  return table;
}

Result<Metadata::CachedTable*> Metadata::l2TableFor(uint64_t guestCluster, bool create) {
  uint64_t l1Index = guestCluster / header_.l2Entries();
  if (l1Index >= l1_.size()) return Error{name_ + ": guest offset beyond the L1 table"};
  uint64_t entry = l1_[l1Index];
  if ((entry & kL1ReservedMask) != 0) return corrupt(fmt::format("L1 entry {} has reserved bits set", l1Index));
  uint64_t offset = entry & kL1OffsetMask;
  if (offset == 0) {
    if (!create) return nullptr;
    auto allocated = allocateClusters(1);
    if (!allocated) return allocated.error();
    l1_[l1Index] = *allocated | kEntryCopied;
    l1Dirty_ = true;
    return &addNewTable(l2Cache_, *allocated);
  }
  return loadTable(l2Cache_, offset);
}

Result<uint64_t> Metadata::l2Entry(uint64_t guestCluster) {
  auto table = l2TableFor(guestCluster, false);
  if (!table) return table.error();
  if (*table == nullptr) return uint64_t{0};
  return loadBe64(&(*table)->bytes[(guestCluster % header_.l2Entries()) * 8]);
}

std::optional<uint64_t> Metadata::cachedL2Entry(uint64_t guestCluster) {
  const uint64_t l1Index = guestCluster / header_.l2Entries();
  if (l1Index >= l1_.size() || (l1_[l1Index] & kL1ReservedMask) != 0) return std::nullopt;
  auto it = l2Cache_.tables.find(l1_[l1Index] & kL1OffsetMask);
  if (it == l2Cache_.tables.end()) return std::nullopt;  // also for offset 0: no table is cached there
  it->second.lastUse = ++useCounter_;
  it->second.fresh = false;
  return loadBe64(&it->second.bytes[(guestCluster % header_.l2Entries()) * 8]);
}

Result<void> Metadata::setL2Entry(uint64_t guestCluster, uint64_t entry) {
  if (!writable_) return Error{name_ + ": image is read-only"};
  auto table = l2TableFor(guestCluster, true);
  if (!table) return table.error();
  storeBe64(&(*table)->bytes[(guestCluster % header_.l2Entries()) * 8], entry);
  markDirty(l2Cache_, **table);
  return {};
}

Result<Metadata::CachedTable*> Metadata::refblockFor(uint64_t clusterIndex) {
  uint64_t tableIndex = clusterIndex / header_.refcountsPerBlock();
  if (tableIndex >= refTable_.size()) return nullptr;
  uint64_t entry = refTable_[tableIndex];
  if ((entry & ~kRefTableOffsetMask) != 0) {
    return corrupt(fmt::format("refcount table entry {} has reserved bits set", tableIndex));
  }
  if (entry == 0) return nullptr;
  return loadTable(refblockCache_, entry);
}

Result<uint64_t> Metadata::refcount(uint64_t clusterIndex) {
  auto block = refblockFor(clusterIndex);
  if (!block) return block.error();
  if (*block == nullptr) return uint64_t{0};
  return refcountAt((*block)->bytes.data(), clusterIndex % header_.refcountsPerBlock(), header_.refcountOrder);
}

Result<void> Metadata::setRefcount(uint64_t clusterIndex, uint64_t value) {
  if (value > maxRefcount()) return Error{name_ + ": refcount overflow"};
  auto block = refblockFor(clusterIndex);
  if (!block) return block.error();
  if (*block == nullptr) return Error{name_ + ": internal error: no refcount block for cluster"};
  setRefcountIn((*block)->bytes.data(), clusterIndex % header_.refcountsPerBlock(), header_.refcountOrder, value);
  markDirty(refblockCache_, **block);
  return {};
}

Result<uint64_t> Metadata::findFreeRun(uint64_t count) {
  // Clusters at or past the end of the file are free whatever their stored
  // refcount says: every table and entry offset is checked against fileEnd_,
  // so nothing valid points there. The scan therefore never reads past the
  // file, however many refcount blocks a crafted image claims.
  const uint64_t endCluster = fileEnd_ / header_.clusterSize();
  const uint64_t maxClusters = kMaxHostOffset / header_.clusterSize();
  uint64_t start = freeHint_;
  uint64_t length = 0;
  for (uint64_t index = start; length < count && index < endCluster; ++index) {
    auto value = refcount(index);
    if (!value) {
      // What was scanned stays scanned: the next allocation starts here, not
      // at the old hint (a failing block would make every write rescan).
      freeHint_ = start;
      return value.error();
    }
    if (*value == 0) {
      ++length;
    } else {
      start = index + 1;
      length = 0;
    }
  }
  // As QEMU's free_cluster_index: free runs too short for this allocation are
  // skipped by later ones too, until a release moves the hint back.
  freeHint_ = start;
  if (start + count > maxClusters) return Error{name_ + ": image file is full"};
  return start;
}

Result<uint64_t> Metadata::allocateClusters(uint64_t count) {
  if (!writable_) return Error{name_ + ": image is read-only"};
  const uint64_t perBlock = header_.refcountsPerBlock();
  // Each round either succeeds or adds one refcount block (or grows the table),
  // so the loop ends; the bound only guards against a bug turning into a hang.
  for (int round = 0; round < 1 << 20; ++round) {
    auto start = findFreeRun(count);
    if (!start) return start.error();
    bool changed = false;
    for (uint64_t tableIndex = *start / perBlock; tableIndex <= (*start + count - 1) / perBlock; ++tableIndex) {
      if (tableIndex >= refTable_.size()) {
        auto grown = growRefcountTable(tableIndex);
        if (!grown) return grown.error();
        changed = true;
        break;
      }
      if (refTable_[tableIndex] == 0) {
        // Place the block in its own range but outside the run, so the run stays usable.
        uint64_t rangeStart = tableIndex * perBlock;
        uint64_t rangeEnd = rangeStart + perBlock;
        uint64_t runEnd = *start + count;
        uint64_t spot = rangeStart < *start ? rangeStart : runEnd < rangeEnd ? runEnd : *start;
        auto created = createRefblock(tableIndex, spot);
        if (!created) return created.error();
        changed = true;
        break;
      }
    }
    if (changed) continue;
    for (uint64_t i = 0; i < count; ++i) {
      auto set = setRefcount(*start + i, 1);
      if (!set) return set.error();
    }
    freeHint_ = *start + count;
    fileEnd_ = std::max(fileEnd_, (*start + count) * header_.clusterSize());
    return *start * header_.clusterSize();
  }
  return Error{name_ + ": cluster allocation did not converge"};
}

Result<void> Metadata::createRefblock(uint64_t tableIndex, uint64_t cluster) {
  // The new block lives in the range it describes (every cluster there is free,
  // since no block counted them), so it holds its own refcount.
  const uint64_t offset = cluster * header_.clusterSize();
  CachedTable& block = addNewTable(refblockCache_, offset);
  setRefcountIn(block.bytes.data(), cluster % header_.refcountsPerBlock(), header_.refcountOrder, 1);
  refTable_[tableIndex] = offset;
  refTableDirty_ = true;
  fileEnd_ = std::max(fileEnd_, offset + header_.clusterSize());
  return {};
}

Result<void> Metadata::growRefcountTable(uint64_t neededIndex) {
  const uint64_t clusterSize = header_.clusterSize();
  const uint64_t perBlock = header_.refcountsPerBlock();
  const uint64_t perCluster = clusterSize / 8;
  const uint64_t firstFree = fileEnd_ / clusterSize;  // the new table goes at the end of the file
  uint64_t entries = std::max<uint64_t>(neededIndex + 1, refTable_.size() * 2);
  uint64_t tableClusters = 0;
  std::vector<uint64_t> newBlocks;  // table indexes that get a new refcount block
  for (;;) {
    entries = roundUp(entries, perCluster);
    if (entries * 8 > kMaxRefcountTableBytes) return Error{name_ + ": refcount table cannot grow further"};
    tableClusters = entries / perCluster;
    // The new table and its new blocks need refcounts too: find the fixed point.
    size_t blockCount = 0;
    for (;;) {
      newBlocks.clear();
      uint64_t end = firstFree + tableClusters + blockCount;
      for (uint64_t index = firstFree / perBlock; index <= (end - 1) / perBlock; ++index) {
        if (index >= refTable_.size() || refTable_[index] == 0) newBlocks.push_back(index);
      }
      if (newBlocks.size() == blockCount) break;
      blockCount = newBlocks.size();
    }
    uint64_t lastIndex = (firstFree + tableClusters + blockCount - 1) / perBlock;
    if (lastIndex < entries) break;
    entries = lastIndex + 1;
  }

  const uint64_t oldOffset = header_.refcountTableOffset;
  const uint64_t oldClusters = header_.refcountTableClusters;
  refTable_.resize(entries, 0);
  for (size_t j = 0; j < newBlocks.size(); ++j) {
    uint64_t offset = (firstFree + tableClusters + j) * clusterSize;
    addNewTable(refblockCache_, offset);
    refTable_[newBlocks[j]] = offset;
  }
  fileEnd_ = (firstFree + tableClusters + newBlocks.size()) * clusterSize;
  for (uint64_t cluster = firstFree; cluster < firstFree + tableClusters + newBlocks.size(); ++cluster) {
    auto set = setRefcount(cluster, 1);
    if (!set) return set.error();
  }
  // Nothing is written here: the write-back puts the blocks, then the new
  // table, then the header's pointer to it on disk, each durable before the
  // next. Until then the file keeps pointing at the old table, which is
  // released once the header no longer does.
  header_.refcountTableOffset = firstFree * clusterSize;
  header_.refcountTableClusters = static_cast<uint32_t>(tableClusters);
  refTableDirty_ = true;
  headerDirty_ = true;
  releaseLater(oldOffset, oldClusters * clusterSize);
  return {};
}

void Metadata::releaseLater(uint64_t offset, uint64_t bytes) {
  const uint64_t clusterSize = header_.clusterSize();
  uint64_t first = offset / clusterSize;
  uint64_t last = (offset + bytes + clusterSize - 1) / clusterSize;
  if (last > first) deferredReleases_.emplace_back(first, last - first);
}

Result<Metadata::ByteRanges> Metadata::applyDeferredReleases() {
  auto releases = std::move(deferredReleases_);
  deferredReleases_.clear();
  ByteRanges freed;
  const uint64_t clusterSize = header_.clusterSize();
  for (auto [first, count] : releases) {
    for (uint64_t cluster = first; cluster < first + count; ++cluster) {
      auto value = refcount(cluster);
      if (!value) return value.error();
      if (*value == 0) {
        log::warn("{}: releasing cluster {} whose refcount is already 0", name_, cluster);
        continue;
      }
      auto set = setRefcount(cluster, *value - 1);
      if (!set) return set.error();
      if (*value > 1) continue;
      freeHint_ = std::min(freeHint_, cluster);
      if (!freed.empty() && freed.back().first + freed.back().second == cluster * clusterSize) {
        freed.back().second += clusterSize;
      } else {
        freed.emplace_back(cluster * clusterSize, clusterSize);
      }
    }
  }
  return freed;
}

bool Metadata::dirty() const {
  return l1Dirty_ || refTableDirty_ || headerDirty_ || l2Cache_.dirty > 0 || refblockCache_.dirty > 0;
}

bool Metadata::writebackDue() const {
  return l2Cache_.dirty > l2Cache_.maxTables / 2 || refblockCache_.dirty > refblockCache_.maxTables / 2 ||
         deferredReleases_.size() > kMaxDeferredReleases;
}

std::vector<Metadata::DirtyWrite> Metadata::dirtyWrites(Phase phase) const {
  std::vector<DirtyWrite> writes;
  auto fromCache = [&](const Cache& cache) {
    for (const auto& [offset, table] : cache.tables) {
      if (table.dirty) writes.push_back(DirtyWrite{offset, table.bytes.data(), table.bytes.size(), nullptr});
    }
    // In file order: neighbouring tables reach the disk as one sequential stream.
    std::sort(writes.begin(), writes.end(), [](const DirtyWrite& a, const DirtyWrite& b) { return a.offset < b.offset; });
  };
  auto serialized = [&](uint64_t offset, std::vector<uint8_t> bytes) {
    auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    writes.push_back(DirtyWrite{offset, owned->data(), owned->size(), owned});
  };
  auto entries = [](const std::vector<uint64_t>& table) {
    std::vector<uint8_t> bytes(table.size() * 8);
    for (size_t i = 0; i < table.size(); ++i) storeBe64(&bytes[i * 8], table[i]);
    return bytes;
  };
  switch (phase) {
    case Phase::RefcountBlocks:
      fromCache(refblockCache_);
      break;
    case Phase::RefcountTable:
      if (refTableDirty_) serialized(header_.refcountTableOffset, entries(refTable_));
      break;
    case Phase::Header:
      if (headerDirty_) {
        // refcount_table_offset (8 bytes) and refcount_table_clusters (4) at byte 48.
        std::vector<uint8_t> field(12);
        storeBe64(field.data(), header_.refcountTableOffset);
        storeBe32(field.data() + 8, header_.refcountTableClusters);
        serialized(48, std::move(field));
      }
      break;
    case Phase::L2Tables:
      fromCache(l2Cache_);
      break;
    case Phase::L1Table:
      if (l1Dirty_) serialized(header_.l1TableOffset, entries(l1_));
      break;
  }
  return writes;
}

void Metadata::markWritten(Phase phase, const std::vector<DirtyWrite>& writes) {
  auto clean = [&](Cache& cache) {
    for (const auto& write : writes) {
      auto it = cache.tables.find(write.offset);
      if (it != cache.tables.end() && it->second.dirty) {
        it->second.dirty = false;
        --cache.dirty;
      }
    }
  };
  switch (phase) {
    case Phase::RefcountBlocks: clean(refblockCache_); break;
    case Phase::RefcountTable: refTableDirty_ = refTableDirty_ && writes.empty(); break;
    case Phase::Header: headerDirty_ = headerDirty_ && writes.empty(); break;
    case Phase::L2Tables: clean(l2Cache_); break;
    case Phase::L1Table: l1Dirty_ = l1Dirty_ && writes.empty(); break;
  }
}

}  // namespace strata::storage::qcow2
