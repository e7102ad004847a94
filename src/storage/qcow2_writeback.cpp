#include "storage/qcow2_writeback.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>

#include "base/log.h"

namespace strata::storage::qcow2 {

namespace {

constexpr size_t kPhaseCount = std::size(Metadata::kWriteOrder);
// Refcount blocks read ahead for the deferred releases of one flush; releases
// needing more (a discard of a huge disk with tiny clusters) read the rest
// synchronously through Metadata's fallback.
constexpr size_t kReleaseLookahead = 64;

Result<void> pwriteAll(int fd, const uint8_t* data, size_t length, uint64_t offset) {
  while (length > 0) {
    ssize_t done = ::pwrite(fd, data, length, static_cast<off_t>(offset));
    if (done < 0) {
      if (errno == EINTR) continue;
      return errnoError("writing metadata");
    }
    data += done;
    length -= static_cast<size_t>(done);
    offset += static_cast<uint64_t>(done);
  }
  return {};
}

}  // namespace

void Writeback::start(IoCompletion done) {
  done_ = std::move(done);
  synced_ = false;
  runPhase(0);
}

void Writeback::runPhase(size_t index) {
  if (index == kPhaseCount) {
    // No metadata changed: one sync still makes the data writes durable.
    if (!synced_) return syncThen([this] { loadReleasedRefblocks(); });
    return loadReleasedRefblocks();
  }
  const Phase phase = Metadata::kWriteOrder[index];
  auto writes = meta_.dirtyWrites(phase);
  if (writes.empty()) return runPhase(index + 1);
  // The data an L2 entry maps must be durable before the entry.
  if (phase == Phase::L2Tables && !synced_) return syncThen([this, index] { runPhase(index); });
  writePhase(index, std::move(writes));
}

void Writeback::writePhase(size_t index, std::vector<Metadata::DirtyWrite> writes) {
  // The phase's writes go out together; the next phase waits for all of them and a sync.
  auto batch = std::make_shared<const std::vector<Metadata::DirtyWrite>>(std::move(writes));
  outstanding_ = static_cast<unsigned>(batch->size());
  status_ = 0;
  for (const auto& write : *batch) {
    file_.writev(write.offset, {iovec{const_cast<uint8_t*>(write.data), write.length}},
                 [this, index, batch](int result) {
                   if (result < 0 && status_ == 0) status_ = result;
                   if (--outstanding_ > 0) return;
                   if (status_ < 0) {
                     log::error("{}: writing qcow2 metadata: {}", file_.path(), std::strerror(-status_));
                     return finish(status_);
                   }
                   file_.flush([this, index, batch](int synced) {
                     if (synced < 0) {
                       log::error("{}: fdatasync: {}", file_.path(), std::strerror(-synced));
                       return finish(synced);
                     }
                     synced_ = true;
                     meta_.markWritten(Metadata::kWriteOrder[index], *batch);
                     runPhase(index + 1);
                   });
                 });
  }
}

void Writeback::syncThen(std::function<void()> next) {
  file_.flush([this, next = std::move(next)](int result) {
    if (result < 0) {
      log::error("{}: fdatasync: {}", file_.path(), std::strerror(-result));
      return finish(result);
    }
    synced_ = true;
    next();
  });
}

void Writeback::loadReleasedRefblocks() {
  // Clusters that lost their last reference before this flush may go now; the
  // refcount blocks that count them are read first, all at once.
  std::vector<uint64_t> missing;
  for (auto [first, count] : meta_.deferredReleases()) {
    if (missing.size() >= kReleaseLookahead) break;
    auto more = meta_.missingRefblocks(first, first + count - 1, kReleaseLookahead - missing.size());
    missing.insert(missing.end(), more.begin(), more.end());
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  if (missing.empty()) return applyReleases();
  outstanding_ = static_cast<unsigned>(missing.size());
  status_ = 0;
  for (uint64_t offset : missing) {
    auto bytes = std::make_shared<std::vector<uint8_t>>(meta_.clusterSize());
    file_.readv(offset, {iovec{bytes->data(), bytes->size()}}, [this, offset, bytes](int result) {
      if (result < 0 && status_ == 0) status_ = result;
      if (result >= 0) meta_.insertTable(Metadata::TableKind::Refblock, offset, std::move(*bytes));
      if (--outstanding_ > 0) return;
      if (status_ < 0) {
        // The releases stay queued for the next flush.
        log::error("{}: reading a refcount block: {}", file_.path(), std::strerror(-status_));
        return finish(status_);
      }
      applyReleases();
    });
  }
}

void Writeback::applyReleases() {
  auto freed = meta_.applyDeferredReleases();
  if (!freed) {
    log::error("{}", freed.error().message);
    return finish(-EIO);
  }
  if (freed->empty()) return finish(0);
  // Space goes back to the host file system before the flush ends, so no
  // allocation can reuse a cluster while its hole is still being punched.
  outstanding_ = static_cast<unsigned>(freed->size());
  for (auto [offset, length] : *freed) {
    file_.discard(offset, length, [this](int) {
      // A failed punch costs space, never data.
      if (--outstanding_ == 0) finish(0);
    });
  }
}

void Writeback::finish(int result) {
  auto done = std::move(done_);
  done(result);
}

Result<void> Writeback::syncBlocking() {
  if (::fdatasync(file_.fd()) != 0) return errnoError(file_.path() + ": fdatasync");
  return {};
}

Result<void> Writeback::runBlocking() {
  for (int round = 0; round < 2; ++round) {
    bool synced = false;
    for (Phase phase : Metadata::kWriteOrder) {
      auto writes = meta_.dirtyWrites(phase);
      if (writes.empty()) continue;
      if (phase == Phase::L2Tables && !synced) {
        if (auto done = syncBlocking(); !done) return done;
      }
      for (const auto& write : writes) {
        auto written = pwriteAll(file_.fd(), write.data, write.length, write.offset);
        if (!written) return Error{file_.path() + ": " + written.error().message};
      }
      if (auto done = syncBlocking(); !done) return done;
      synced = true;
      meta_.markWritten(phase, writes);
    }
    if (!synced) {
      if (auto done = syncBlocking(); !done) return done;
    }
    auto freed = meta_.applyDeferredReleases();
    if (!freed) return freed.error();
    for (auto [offset, length] : *freed) {
      // A failed punch costs space, never data.
      ::fallocate(file_.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length));
    }
    if (!meta_.dirty()) break;  // no releases to write: one round was enough
  }
  return {};
}

}  // namespace strata::storage::qcow2
