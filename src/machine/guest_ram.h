// GuestRam: the VM's physical memory, one memfd-backed MAP_SHARED mapping so
// that snapshots, migration and page sharing can later reach it by fd; or, for
// KSM page merging (which only merges private anonymous memory), a private
// anonymous mapping marked MADV_MERGEABLE. Shared lock-free between vCPU
// threads and device backends; discard() hands pages back to the host.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::machine {

enum class RamBacking {
  SharedMemfd,        // MAP_SHARED memfd (default)
  MergeableAnonymous, // MAP_PRIVATE anonymous, MADV_MERGEABLE: KSM may merge identical pages
};

class GuestRam {
 public:
  static constexpr uint64_t kPageSize = 4096;

  static Result<std::unique_ptr<GuestRam>> create(uint64_t base, uint64_t size,
                                                  RamBacking backing = RamBacking::SharedMemfd);
  ~GuestRam();
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;

  uint64_t base() const { return base_; }
  uint64_t size() const { return size_; }
  uint64_t end() const { return base_ + size_; }
  RamBacking backing() const { return backing_; }
  int fd() const { return fd_.get(); }  // -1 for MergeableAnonymous
  uint8_t* hostBase() const { return host_; }

  // Host pointer for guest-physical [gpa, gpa+len), or nullptr if any byte lies outside RAM.
  uint8_t* translate(uint64_t gpa, uint64_t len) const {
    uint64_t offset = gpa - base_;
    if (gpa < base_ || offset > size_ || len > size_ - offset) return nullptr;
    return host_ + offset;
  }

  // Returns the whole 4 KiB pages inside guest-physical [gpa, gpa+length) to
  // the host (hole punched in the memfd, or MADV_DONTNEED); they read as zero
  // on the next touch. Fails (nothing freed) if the range is not inside RAM.
  Result<void> discard(uint64_t gpa, uint64_t length);
  // The same for a host pointer range inside the mapping (e.g. a descriptor's iovec).
  Result<void> discardHost(const uint8_t* host, uint64_t length);

 private:
  GuestRam(uint64_t base, uint64_t size, RamBacking backing, UniqueFd fd, uint8_t* host);
  uint64_t base_;
  uint64_t size_;
  RamBacking backing_;
  UniqueFd fd_;
  uint8_t* host_;
};

}  // namespace strata::machine
