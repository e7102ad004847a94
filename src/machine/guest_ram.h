// GuestRam: the VM's physical memory, one memfd-backed MAP_SHARED mapping so
// that snapshots, migration and page sharing can reach it by fd; for KSM page
// merging (`--mem-merge`, KSM merges only private anonymous memory) a private
// anonymous mapping marked MADV_MERGEABLE; or, for a restored VM, a MAP_PRIVATE
// mapping of a snapshot's memory file (pages come in on first touch). Shared
// lock-free between vCPU threads and device backends; discard() hands pages back.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "base/dirty_bitmap.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::machine {

enum class RamBacking {
  SharedMemfd,        // MAP_SHARED memfd (default)
  MergeableAnonymous, // MAP_PRIVATE anonymous, MADV_MERGEABLE: KSM may merge identical pages
  PrivateFile,        // MAP_PRIVATE of a snapshot's memory file (discarded pages read the file's again)
};

class GuestRam {
 public:
  static constexpr uint64_t kPageSize = 4096;

  static Result<std::unique_ptr<GuestRam>> create(uint64_t base, uint64_t size,
                                                  RamBacking backing = RamBacking::SharedMemfd);
  // Maps a memory file written by saveTo copy-on-write; its size must be `size`.
  // Restore time does not grow with RAM: nothing is read until the guest touches it.
  static Result<std::unique_ptr<GuestRam>> mapFile(uint64_t base, uint64_t size, const std::string& path);

  // Writes RAM to `path` as a sparse file: all-zero 4 KiB pages become holes.
  // The guest must not be running (vCPUs paused, no DMA in flight).
  Result<void> saveTo(const std::string& path) const;
  // What saveTo writes: `visit` gets each run of RAM holding non-zero pages, in
  // order (the memfd's holes are skipped without being touched, all-zero pages
  // left out); its first error ends the walk. The guest must not be running.
  Result<void> forEachDataRun(const std::function<Result<void>(uint64_t offset, uint64_t length)>& visit) const;
  ~GuestRam();
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;

  uint64_t base() const { return base_; }
  uint64_t size() const { return size_; }
  uint64_t end() const { return base_ + size_; }
  RamBacking backing() const { return backing_; }
  int fd() const { return fd_.get(); }  // -1 for MergeableAnonymous; the memory file for PrivateFile
  uint8_t* hostBase() const { return host_; }

  // Host pointer for guest-physical [gpa, gpa+len), or nullptr if any byte lies outside RAM.
  uint8_t* translate(uint64_t gpa, uint64_t len) const {
    uint64_t offset = gpa - base_;
    if (gpa < base_ || offset > size_ || len > size_ - offset) return nullptr;
    return host_ + offset;
  }

  // Pages written while logging is on (live migration). Devices mark what they
  // write into guest RAM (markWritten) after writing it; harts mark their stores.
  DirtyBitmap& dirtyLog() const { return dirty_; }
  void markWritten(const uint8_t* host, uint64_t length) const {
    if (host >= host_) dirty_.markRange(static_cast<uint64_t>(host - host_), length);
  }

  // Allocates the pages around guest-physical [gpa, gpa+length) (inside RAM) in
  // one host call, for a loader about to fill them: one host page fault per
  // page is what copying a kernel into fresh RAM otherwise costs. Best effort.
  void populate(uint64_t gpa, uint64_t length);
  // Returns the whole 4 KiB pages inside guest-physical [gpa, gpa+length) to
  // the host (hole punched in the memfd, or MADV_DONTNEED); they read as zero
  // on the next touch. Fails (nothing freed) if the range is not inside RAM.
  Result<void> discard(uint64_t gpa, uint64_t length);
  // The same for a host pointer range inside the mapping (e.g. a descriptor's iovec).
  Result<void> discardHost(const uint8_t* host, uint64_t length);
  // Stores the whole page at RAM offset `offset` (page-aligned, inside RAM) from
  // `data`, or zeroes it (`data` null), without faulting it into this process
  // where RAM is a memfd: written with pwrite, the kernel allocates the page
  // (~2.5 µs a page on this host, against ~12 for a store through the mapping),
  // and a zero page is discarded. Other backings store through the mapping. For
  // pages the guest will not touch soon (a migration's bulk).
  Result<void> storePageUnmapped(uint64_t offset, const uint8_t* data);

 private:
  GuestRam(uint64_t base, uint64_t size, RamBacking backing, UniqueFd fd, uint8_t* host);
  // The next range at or after `offset` that may hold data: the memfd's next
  // allocated extent (begin == size() if none); everything left for a mapping without holes to ask about.
  std::pair<uint64_t, uint64_t> nextDataRange(uint64_t offset) const;
  uint64_t base_;
  uint64_t size_;
  RamBacking backing_;
  UniqueFd fd_;
  uint8_t* host_;
  mutable DirtyBitmap dirty_;
};

}  // namespace strata::machine
