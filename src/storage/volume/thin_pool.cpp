#include "storage/volume/thin_pool.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/log.h"
#include "storage/crc32c.h"
#include "storage/sync_io.h"
#include "storage/volume/io_util.h"
#include "storage/volume/thin_volume.h"

namespace strata::storage::volume {

namespace {
constexpr uint32_t kQuarantined = 0xffffffff;
// Whole chunks one step of a discard or write-zeroes unmaps before it yields
// to the loop: the work and memory per step are bounded whatever the
// request's length (a guest may ask for 2^32 sectors at once).
constexpr uint64_t kUnmapStepChunks = 1 << 14;
}  // namespace

struct ThinPoolEngine::ChunkRequest {
  enum Kind { Read, Write, Zero, Discard } kind = Read;
  uint32_t device = 0;
  uint64_t vchunk = 0;
  uint64_t offset = 0;  // within the chunk
  uint64_t length = 0;
  std::vector<iovec> buffers;
  IoCompletion done;
  bool fullChunk(uint32_t chunkSize) const { return offset == 0 && length == chunkSize; }
};

ThinPoolEngine::ThinPoolEngine(std::shared_ptr<Pool> pool, const VolumeRecord& thinPool)
    : pool_(std::move(pool)), name_(thinPool.name), chunkSize_(thinPool.chunkSize) {}

ThinPoolEngine::~ThinPoolEngine() = default;

Result<void> ThinPoolEngine::format(BlockDevice& meta, EventLoop& loop, uint32_t chunkSize) {
  auto layout = ThinMetaLayout::compute(meta.sizeBytes());
  if (!layout) return layout.error();
  auto checkpoint = encodeThinCheckpoint(1, {});
  ThinSuperblock super{1, 1, chunkSize, 0, checkpoint.size(), crc32c(checkpoint.data(), checkpoint.size())};
  auto superBytes = encodeThinSuperblock(super);
  auto buffer = makeAlignedBuffer(checkpoint.size());
  std::memcpy(buffer.get(), checkpoint.data(), checkpoint.size());
  if (auto w = writeSync(meta, loop, layout->checkpointOffset[0], buffer.get(), checkpoint.size()); !w) return w;
  if (auto f = flushSync(meta, loop); !f) return f;
  // Slot B first zeroed, then slot A holds sequence 1.
  auto zero = makeAlignedBuffer(2 * kThinSuperblockSize);
  std::memcpy(zero.get() + kThinSuperblockSize * (super.sequence % 2), superBytes.data(), superBytes.size());
  if (auto w = writeSync(meta, loop, 0, zero.get(), 2 * kThinSuperblockSize); !w) return w;
  return flushSync(meta, loop);
}

Result<std::shared_ptr<ThinPoolEngine>> ThinPoolEngine::open(std::shared_ptr<Pool> pool, const VolumeRecord& thinPool) {
  const VolumeRecord* data = pool->record().findVolumeById(thinPool.dataVolume);
  const VolumeRecord* meta = pool->record().findVolumeById(thinPool.metaVolume);
  if (!data || !meta) return Error{fmt::format("thin pool {} lost its data or metadata volume", thinPool.name)};
  std::shared_ptr<ThinPoolEngine> engine(new ThinPoolEngine(pool, thinPool));
  auto dataDevice = pool->openLeggedVolume(*data, pool->readOnly());
  if (!dataDevice) return dataDevice.error();
  auto metaDevice = pool->openLeggedVolume(*meta, pool->readOnly());
  if (!metaDevice) return metaDevice.error();
  engine->data_ = std::move(*dataDevice);
  engine->meta_ = std::move(*metaDevice);
  if (auto loaded = engine->load(); !loaded) return Error{fmt::format("thin pool {}: {}", thinPool.name, loaded.error().message)};
  return engine;
}

Result<void> ThinPoolEngine::load() {
  EventLoop& loop = pool_->loop();
  auto layout = ThinMetaLayout::compute(meta_->sizeBytes());
  if (!layout) return layout.error();
  layout_ = *layout;

  auto supers = makeAlignedBuffer(2 * kThinSuperblockSize);
  if (auto r = readSync(*meta_, loop, 0, supers.get(), 2 * kThinSuperblockSize); !r) return r;
  bool found = false;
  std::string why;
  for (int slot = 0; slot < 2; ++slot) {
    auto s = decodeThinSuperblock(supers.get() + slot * kThinSuperblockSize, kThinSuperblockSize);
    if (!s) {
      why += fmt::format(" slot {}: {};", slot, s.error().message);
      continue;
    }
    if (!found || s->sequence > super_.sequence) super_ = *s;
    found = true;
  }
  if (!found) return Error{"metadata has no valid superblock:" + why};
  if (super_.chunkSize != chunkSize_)
    return Error{fmt::format("metadata chunk size {} disagrees with the pool record ({})", super_.chunkSize, chunkSize_)};
  if (super_.checkpointLength > layout_.checkpointSize || super_.checkpointLength % 4096 != 0)
    return Error{"metadata checkpoint length is out of range"};

  uint64_t dataChunks = data_->sizeBytes() / chunkSize_;
  auto checkpoint = makeAlignedBuffer(super_.checkpointLength);
  if (auto r = readSync(*meta_, loop, layout_.checkpointOffset[super_.checkpointArea], checkpoint.get(),
                        super_.checkpointLength);
      !r)
    return r;
  if (crc32c(checkpoint.get(), super_.checkpointLength) != super_.checkpointCrc)
    return Error{"metadata checkpoint checksum mismatch"};
  auto devices = decodeThinCheckpoint(checkpoint.get(), super_.checkpointLength, super_.generation, dataChunks);
  if (!devices) return devices.error();
  devices_ = std::move(*devices);
  checkpoint.reset();

  auto journal = makeAlignedBuffer(layout_.journalSize);
  if (auto r = readSync(*meta_, loop, layout_.journalOffset, journal.get(), layout_.journalSize); !r) return r;
  journalTail_ = 0;
  journalSeq_ = 0;
  while (journalTail_ < layout_.journalSize) {
    auto record = decodeThinJournalRecord(journal.get() + journalTail_, layout_.journalSize - journalTail_,
                                          super_.generation, journalSeq_ + 1);
    if (!record) break;
    for (const ThinOp& op : record->ops)
      if (auto applied = applyThinOp(devices_, op, dataChunks); !applied) return applied;
    journalTail_ += record->length;
    ++journalSeq_;
  }
  recount();

  // Devices no thin volume names are leftovers of an interrupted snapshot or remove.
  std::vector<uint32_t> orphans;
  for (const auto& [id, chunks] : devices_) {
    const VolumeRecord* v = pool_->record().findVolumeById(id);
    if (!v || v->type != VolumeType::Thin || v->thinPool != pool_->record().findVolume(name_)->id) orphans.push_back(id);
  }
  if (!orphans.empty() && !pool_->readOnly()) {
    for (uint32_t id : orphans) {
      log::info("thin pool {}: dropping orphaned thin device {}", name_, id);
      devices_[id].forEach([&](uint64_t, uint32_t chunk) { decref(chunk); });
      devices_.erase(id);
      pendingOps_.push_back({ThinOp::Delete, id, 0, kNoChunk});
    }
    if (auto c = commitSync(); !c) return c;
  }
  return {};
}

void ThinPoolEngine::recount() {
  uint64_t dataChunks = data_->sizeBytes() / chunkSize_;
  refcounts_.assign(dataChunks, 0);
  for (const auto& [id, chunks] : devices_) chunks.forEach([&](uint64_t, uint32_t c) { ++refcounts_[c]; });
  usedChunks_ = static_cast<uint64_t>(std::count_if(refcounts_.begin(), refcounts_.end(), [](uint32_t r) { return r > 0; }));
}

uint64_t ThinPoolEngine::mappedChunks(uint32_t device) const {
  auto it = devices_.find(device);
  return it == devices_.end() ? 0 : it->second.count();
}

uint64_t ThinPoolEngine::metadataUsedBytes() const {
  return 2 * kThinSuperblockSize + super_.checkpointLength + journalTail_;
}

std::unique_ptr<BlockDevice> ThinPoolEngine::openThin(uint32_t device, uint64_t sizeBytes, bool readOnly) {
  return std::make_unique<ThinVolume>(shared_from_this(), device, sizeBytes, readOnly, pool_->loop());
}

bool ThinPoolEngine::allocate(uint32_t& chunk) {
  uint64_t n = refcounts_.size();
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t c = (allocCursor_ + i) % n;
    if (refcounts_[c] == 0) {
      refcounts_[c] = 1;
      ++usedChunks_;
      allocCursor_ = c + 1;
      chunk = static_cast<uint32_t>(c);
      warnedFull_ = false;
      return true;
    }
  }
  if (!warnedFull_) {
    log::error("thin pool {} is out of data space ({} chunks of {} KiB in use); writes that need new chunks fail "
               "with ENOSPC until it is extended (strata volume resize) or space is freed",
               name_, usedChunks_, chunkSize_ >> 10);
    warnedFull_ = true;
  }
  return false;
}

void ThinPoolEngine::decref(uint32_t chunk) {
  if (chunk >= refcounts_.size() || refcounts_[chunk] == 0 || refcounts_[chunk] == kQuarantined) return;
  if (--refcounts_[chunk] == 0) {
    // Not reusable until the journal no longer references it durably.
    refcounts_[chunk] = kQuarantined;
    if (!pendingFree_.empty() && pendingFree_.back().first + pendingFree_.back().count == chunk)
      ++pendingFree_.back().count;  // runs, as sequential writes allocated them
    else
      pendingFree_.push_back({chunk, 1});
    --usedChunks_;
  }
}

void ThinPoolEngine::map(uint32_t device, uint64_t vchunk, uint32_t chunk) {
  devices_[device].set(vchunk, chunk);
  pendingOps_.push_back({ThinOp::Map, device, vchunk, chunk});
}

void ThinPoolEngine::unmap(uint32_t device, uint64_t vchunk) {
  devices_[device].erase(vchunk);
  pendingOps_.push_back({ThinOp::Unmap, device, vchunk, kNoChunk});
}

// --- request path

void ThinPoolEngine::read(uint32_t device, uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = iovecLength(buffers);
  if (length == 0) return completeSoon(pool_->loop(), std::move(done), 0);
  auto found = devices_.find(device);
  const ChunkMap* chunks = found == devices_.end() ? nullptr : &found->second;
  // Where the chunk under request byte `at` starts on the data volume; kZeroes
  // when unmapped; nullopt while an allocation or copy-on-write holds it.
  constexpr uint64_t kZeroes = UINT64_MAX;
  auto locate = [&](uint64_t at) -> std::optional<uint64_t> {
    uint64_t vchunk = (offset + at) / chunkSize_;
    if (!busyChunks_.empty() && busyChunks_.count({device, vchunk})) return std::nullopt;
    uint32_t chunk = chunks ? chunks->get(vchunk) : kNoChunk;
    return chunk == kNoChunk ? kZeroes : static_cast<uint64_t>(chunk) * chunkSize_;
  };
  if (offset % chunkSize_ + length <= chunkSize_) {
    // Inside one mapped chunk (the usual small read): straight through, no run list.
    auto where = locate(0);
    if (where && *where != kZeroes) return data_->readv(*where + offset % chunkSize_, std::move(buffers), std::move(done));
  }
  // Runs of the request: mapped chunks adjacent on the data volume become one read.
  struct Run {
    uint64_t at, length;
    std::optional<uint64_t> dataOffset;  // kZeroes: unmapped; nullopt: busy, one chunk
  };
  std::vector<Run> runs;
  for (uint64_t at = 0; at < length;) {
    uint64_t within = (offset + at) % chunkSize_;
    uint64_t n = std::min<uint64_t>(chunkSize_ - within, length - at);
    auto where = locate(at);
    if (where && *where != kZeroes) *where += within;
    Run* last = runs.empty() ? nullptr : &runs.back();
    bool extends = last && where && last->dataOffset &&
                   (*where == kZeroes ? *last->dataOffset == kZeroes
                                      : *last->dataOffset != kZeroes && *last->dataOffset + last->length == *where);
    if (extends)
      last->length += n;
    else
      runs.push_back({at, n, where});
    at += n;
  }
  if (runs.size() == 1 && runs[0].dataOffset && *runs[0].dataOffset != kZeroes) {
    // The common case: straight through to the data volume.
    data_->readv(*runs[0].dataOffset, std::move(buffers), std::move(done));
    return;
  }
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  for (const Run& run : runs) {
    if (!run.dataOffset) {
      auto request = std::make_shared<ChunkRequest>();
      request->kind = ChunkRequest::Read;
      request->device = device;
      request->vchunk = (offset + run.at) / chunkSize_;
      request->offset = (offset + run.at) % chunkSize_;
      request->length = run.length;
      request->buffers = sliceIovecs(buffers, run.at, run.length);
      request->done = join->add();
      chunkOp(std::move(request));
    } else if (*run.dataOffset == kZeroes) {
      zeroIovecs(buffers, run.at, run.length);
    } else {
      data_->readv(*run.dataOffset, sliceIovecs(buffers, run.at, run.length), join->add());
    }
  }
  join->arm();
}

void ThinPoolEngine::write(uint32_t device, uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (failed_) return completeSoon(pool_->loop(), std::move(done), -EIO);
  uint64_t length = iovecLength(buffers);
  splitChunks(ChunkRequest::Write, device, offset, length, std::move(buffers), std::move(done));
}

void ThinPoolEngine::zero(uint32_t device, uint64_t offset, uint64_t length, bool discard, IoCompletion done) {
  if (failed_) return completeSoon(pool_->loop(), std::move(done), -EIO);
  int kind = discard ? ChunkRequest::Discard : ChunkRequest::Zero;
  uint64_t end = offset + length;
  uint64_t firstWhole = (offset + chunkSize_ - 1) / chunkSize_, endWhole = end / chunkSize_;
  if (firstWhole >= endWhole) return splitChunks(kind, device, offset, length, {}, std::move(done));
  // Whole chunks leave the map range by range; only the partial chunks at
  // either end take the per-chunk path (a write of zeroes into a mapped chunk).
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  uint64_t head = firstWhole * chunkSize_, tail = endWhole * chunkSize_;
  if (offset < head) splitChunks(kind, device, offset, head - offset, {}, join->add());
  if (tail < end) splitChunks(kind, device, tail, end - tail, {}, join->add());
  dropWholeChunks(kind, device, firstWhole, endWhole, join, join->add());
  join->arm();
}

void ThinPoolEngine::dropWholeChunks(int kind, uint32_t device, uint64_t first, uint64_t end,
                                     std::shared_ptr<IoJoin> join, IoCompletion step) {
  if (failed_) return completeSoon(pool_->loop(), std::move(step), -EIO);
  uint64_t stop = std::min(end, first + kUnmapStepChunks);
  // A chunk an allocation or copy-on-write holds waits for it and then goes
  // the per-chunk way; the runs between such chunks are unmapped at once.
  uint64_t runStart = first;
  for (auto busy = busyChunks_.lower_bound({device, first});
       busy != busyChunks_.end() && busy->first.first == device && busy->first.second < stop; ++busy) {
    uint64_t vchunk = busy->first.second;
    unmapRun(device, runStart, vchunk);
    runStart = vchunk + 1;
    auto request = std::make_shared<ChunkRequest>();
    request->kind = static_cast<ChunkRequest::Kind>(kind);
    request->device = device;
    request->vchunk = vchunk;
    request->length = chunkSize_;
    request->done = join->add();
    busy->second.push_back([this, request] { chunkOp(request); });
  }
  unmapRun(device, runStart, stop);
  if (stop == end) return completeSoon(pool_->loop(), std::move(step), 0);
  pool_->loop().post([this, self = shared_from_this(), kind, device, stop, end, join, step = std::move(step)]() mutable {
    dropWholeChunks(kind, device, stop, end, std::move(join), std::move(step));
  });
}

void ThinPoolEngine::unmapRun(uint32_t device, uint64_t first, uint64_t end) {
  auto it = devices_.find(device);
  if (it == devices_.end() || first >= end) return;
  // One journal op for the run, however many chunks it held (unmapped ones are no-ops on replay).
  if (it->second.eraseRange(first, end, [&](uint32_t chunk) { decref(chunk); }) > 0)
    pendingOps_.push_back({ThinOp::UnmapRange, device, first, static_cast<uint32_t>(end - first)});
}

void ThinPoolEngine::splitChunks(int kind, uint32_t device, uint64_t offset, uint64_t length,
                                 std::vector<iovec> buffers, IoCompletion done) {
  if (length == 0) return completeSoon(pool_->loop(), std::move(done), 0);
  // Inside one chunk (the usual case) the request needs no join.
  bool single = offset % chunkSize_ + length <= chunkSize_;
  auto join = single ? nullptr : IoJoin::make(pool_->loop(), std::move(done));
  IovecCursor cursor(buffers);
  for (uint64_t at = 0; at < length;) {
    auto request = std::make_shared<ChunkRequest>();
    request->kind = static_cast<ChunkRequest::Kind>(kind);
    request->device = device;
    request->vchunk = (offset + at) / chunkSize_;
    request->offset = (offset + at) % chunkSize_;
    request->length = std::min<uint64_t>(chunkSize_ - request->offset, length - at);
    if (single)
      request->buffers = std::move(buffers);
    else
      cursor.take(request->length, request->buffers);
    request->done = single ? std::move(done) : join->add();
    at += request->length;
    chunkOp(std::move(request));
  }
  if (join) join->arm();
}

void ThinPoolEngine::chunkOp(std::shared_ptr<ChunkRequest> request) {
  auto key = std::make_pair(request->device, request->vchunk);
  auto busy = busyChunks_.find(key);
  if (busy != busyChunks_.end()) {
    // Wait for the allocation or copy-on-write in progress on this chunk.
    busy->second.push_back([this, request] { chunkOp(request); });
    return;
  }
  if (request->kind == ChunkRequest::Read) {
    uint32_t chunk = devices_.count(request->device) ? devices_[request->device].get(request->vchunk) : kNoChunk;
    if (chunk == kNoChunk) {
      zeroIovecs(request->buffers, 0, request->length);
      return completeSoon(pool_->loop(), std::move(request->done), 0);
    }
    data_->readv(static_cast<uint64_t>(chunk) * chunkSize_ + request->offset, request->buffers, std::move(request->done));
    return;
  }
  busyChunks_[key];
  auto original = std::move(request->done);
  request->done = [this, key, original = std::move(original)](int result) {
    // Unlock first so the waiters see the new mapping, then complete.
    auto it = busyChunks_.find(key);
    if (it != busyChunks_.end()) {
      auto waiters = std::move(it->second);
      busyChunks_.erase(it);
      for (auto& w : waiters) pool_->loop().post(std::move(w));
    }
    original(result);
  };
  chunkOpLocked(std::move(request));
}

void ThinPoolEngine::chunkOpLocked(std::shared_ptr<ChunkRequest> request) {
  if (failed_) return completeSoon(pool_->loop(), std::move(request->done), -EIO);
  ChunkMap& chunks = devices_[request->device];
  uint32_t current = chunks.get(request->vchunk);
  bool full = request->fullChunk(chunkSize_);

  if (request->kind == ChunkRequest::Discard || request->kind == ChunkRequest::Zero) {
    if (current == kNoChunk || request->kind == ChunkRequest::Discard) {
      // Unmapped already reads as zeroes; a partial discard is advisory.
      if (current != kNoChunk && full) {
        unmap(request->device, request->vchunk);
        decref(current);
      }
      return completeSoon(pool_->loop(), std::move(request->done), 0);
    }
    if (full) {
      unmap(request->device, request->vchunk);
      decref(current);
      return completeSoon(pool_->loop(), std::move(request->done), 0);
    }
    // Part of a mapped chunk: an ordinary write of zeroes.
    auto zeroes = std::make_shared<AlignedBuffer>(makeAlignedBuffer(request->length));
    request->kind = ChunkRequest::Write;
    request->buffers = {iovec{zeroes->get(), request->length}};
    auto done = std::move(request->done);
    request->done = [zeroes, done = std::move(done)](int result) { done(result); };
  }

  if (current != kNoChunk && refcounts_[current] == 1) {
    data_->writev(static_cast<uint64_t>(current) * chunkSize_ + request->offset, request->buffers,
                  std::move(request->done));
    return;
  }
  // Allocate on first write, or break the sharing of a snapshot's chunk.
  uint32_t fresh = 0;
  if (!allocate(fresh)) return completeSoon(pool_->loop(), std::move(request->done), -ENOSPC);
  auto finish = [this, request, fresh](int result) {
    if (result < 0) {
      // Never mapped anywhere: free at once.
      refcounts_[fresh] = 0;
      --usedChunks_;
      return request->done(result);
    }
    uint32_t old = devices_[request->device].get(request->vchunk);
    map(request->device, request->vchunk, fresh);
    if (old != kNoChunk) decref(old);
    request->done(0);
  };
  if (full) {
    data_->writev(static_cast<uint64_t>(fresh) * chunkSize_, request->buffers, std::move(finish));
    return;
  }
  writeNewChunk(request, current, fresh, std::move(finish));
}

void ThinPoolEngine::writeNewChunk(std::shared_ptr<ChunkRequest> request, uint32_t source, uint32_t fresh,
                                   IoCompletion done) {
  auto buffer = std::make_shared<AlignedBuffer>(makeAlignedBuffer(chunkSize_));
  auto writeMerged = [this, request, fresh, buffer, done](int result) mutable {
    if (result < 0) return done(result);
    copyFromIovecs(request->buffers, 0, buffer->get() + request->offset, request->length);
    data_->writev(static_cast<uint64_t>(fresh) * chunkSize_, {iovec{buffer->get(), chunkSize_}},
                  [buffer, done = std::move(done)](int r) { done(r); });
  };
  if (source == kNoChunk) return writeMerged(0);
  data_->readv(static_cast<uint64_t>(source) * chunkSize_, {iovec{buffer->get(), chunkSize_}}, std::move(writeMerged));
}

// --- commits

void ThinPoolEngine::flush(IoCompletion done) {
  if (failed_) return completeSoon(pool_->loop(), std::move(done), -EIO);
  commitWaiters_.push_back(std::move(done));
  if (!commitRunning_) runCommit();
}

Result<void> ThinPoolEngine::commitSync() {
  int status = runUntilComplete(pool_->loop(), [&](IoCompletion done) { flush(std::move(done)); });
  while (commitRunning_) pool_->loop().runOnce(-1);
  if (status < 0) return Error{fmt::format("thin pool {}: committing metadata failed: {}", name_, std::strerror(-status))};
  return {};
}

void ThinPoolEngine::runCommit() {
  commitRunning_ = true;
  auto waiters = std::move(commitWaiters_);
  commitWaiters_.clear();
  auto ops = std::make_shared<std::vector<ThinOp>>(std::move(pendingOps_));
  pendingOps_.clear();
  auto freed = std::make_shared<std::vector<ChunkRun>>(std::move(pendingFree_));
  pendingFree_.clear();
  auto shared = std::make_shared<std::vector<IoCompletion>>(std::move(waiters));
  auto finish = [this, self = shared_from_this(), ops, freed, shared](int result) {
    if (result < 0) {
      // Not durable: keep the operations for the next attempt, in order.
      pendingOps_.insert(pendingOps_.begin(), ops->begin(), ops->end());
      pendingFree_.insert(pendingFree_.end(), freed->begin(), freed->end());
      freed->clear();
    }
    finishCommit(std::move(*freed), std::move(*shared), result);
  };

  if (ops->empty()) {
    data_->flush(finish);
    return;
  }
  // Either append a journal record or, when the journal is full, write a
  // checkpoint of the whole table (which includes these ops) under a new generation.
  auto record = encodeThinJournalRecord(super_.generation, journalSeq_ + 1, *ops);
  bool checkpoint = journalTail_ + record.size() > layout_.journalSize;
  std::vector<uint8_t> bytes;
  ThinSuperblock next = super_;
  if (checkpoint) {
    next.sequence++;
    next.generation++;
    next.checkpointArea = 1 - super_.checkpointArea;
    bytes = encodeThinCheckpoint(next.generation, devices_);
    if (bytes.size() > layout_.checkpointSize) {
      log::error("thin pool {}: metadata volume is full ({} bytes of mappings, room for {}); refusing writes", name_,
                 bytes.size(), layout_.checkpointSize);
      failed_ = true;
      return completeSoon(pool_->loop(), finish, -ENOSPC);
    }
    next.checkpointLength = bytes.size();
    next.checkpointCrc = crc32c(bytes.data(), bytes.size());
  } else {
    bytes = std::move(record);
  }
  auto buffer = std::make_shared<AlignedBuffer>(makeAlignedBuffer(bytes.size()));
  std::memcpy(buffer->get(), bytes.data(), bytes.size());
  uint64_t length = bytes.size();
  uint64_t offset = checkpoint ? layout_.checkpointOffset[next.checkpointArea] : layout_.journalOffset + journalTail_;

  // 1. data durable  2. record/checkpoint written and durable  3. (checkpoint) superblock.
  data_->flush([this, finish, buffer, length, offset, checkpoint, next](int result) {
    if (result < 0) return finish(result);
    meta_->writev(offset, {iovec{buffer->get(), length}}, [this, finish, buffer, length, checkpoint, next](int result) {
      if (result < 0) return finish(result);
      meta_->flush([this, finish, length, checkpoint, next](int result) {
        if (result < 0) return finish(result);
        if (!checkpoint) {
          journalTail_ += length;
          ++journalSeq_;
          return finish(0);
        }
        auto superBytes = std::make_shared<AlignedBuffer>(makeAlignedBuffer(kThinSuperblockSize));
        auto encoded = encodeThinSuperblock(next);
        std::memcpy(superBytes->get(), encoded.data(), encoded.size());
        meta_->writev((next.sequence % 2) * kThinSuperblockSize, {iovec{superBytes->get(), kThinSuperblockSize}},
                      [this, finish, superBytes, next](int result) {
                        if (result < 0) return finish(result);
                        meta_->flush([this, finish, next](int result) {
                          if (result < 0) return finish(result);
                          super_ = next;
                          journalTail_ = 0;
                          journalSeq_ = 0;
                          finish(0);
                        });
                      });
      });
    });
  });
}

void ThinPoolEngine::finishCommit(std::vector<ChunkRun> freed, std::vector<IoCompletion> waiters, int result) {
  for (const ChunkRun& run : freed)
    for (uint64_t chunk = run.first; chunk < uint64_t{run.first} + run.count; ++chunk)
      if (chunk < refcounts_.size() && refcounts_[chunk] == kQuarantined) refcounts_[chunk] = 0;
  commitRunning_ = false;
  for (auto& w : waiters) w(result);
  if (!commitWaiters_.empty() && !commitRunning_) runCommit();
}

// --- management

Result<void> ThinPoolEngine::snapshotDevice(uint32_t newDevice, uint32_t origin) {
  if (!busyChunks_.empty()) return Error{fmt::format("thin pool {} has writes in progress", name_)};
  ChunkMap copy;
  auto it = devices_.find(origin);
  if (it != devices_.end()) copy = it->second;
  copy.forEach([&](uint64_t, uint32_t chunk) { ++refcounts_[chunk]; });
  devices_[newDevice] = std::move(copy);
  pendingOps_.push_back({ThinOp::Snapshot, newDevice, origin, kNoChunk});
  return commitSync();
}

Result<void> ThinPoolEngine::deleteDevice(uint32_t device) {
  auto it = devices_.find(device);
  if (it != devices_.end()) {
    it->second.forEach([&](uint64_t, uint32_t chunk) { decref(chunk); });
    devices_.erase(it);
  }
  pendingOps_.push_back({ThinOp::Delete, device, 0, kNoChunk});
  return commitSync();
}

Result<void> ThinPoolEngine::truncateDevice(uint32_t device, uint64_t sizeBytes) {
  uint64_t first = (sizeBytes + chunkSize_ - 1) / chunkSize_;
  auto it = devices_.find(device);
  if (it != devices_.end()) it->second.truncate(first, [&](uint32_t chunk) { decref(chunk); });
  pendingOps_.push_back({ThinOp::Truncate, device, first, kNoChunk});
  return commitSync();
}

Result<void> ThinPoolEngine::dataGrown() {
  const VolumeRecord* thinPool = pool_->record().findVolume(name_);
  const VolumeRecord* data = thinPool ? pool_->record().findVolumeById(thinPool->dataVolume) : nullptr;
  if (!data) return Error{"thin pool data volume vanished"};
  auto device = pool_->openLeggedVolume(*data, pool_->readOnly());
  if (!device) return device.error();
  data_ = std::move(*device);
  refcounts_.resize(data_->sizeBytes() / chunkSize_, 0);
  return {};
}

}  // namespace strata::storage::volume
