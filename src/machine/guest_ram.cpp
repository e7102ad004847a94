#include "machine/guest_ram.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <fmt/core.h>

namespace strata::machine {

Result<std::unique_ptr<GuestRam>> GuestRam::create(uint64_t base, uint64_t size, RamBacking backing) {
  if (backing == RamBacking::MergeableAnonymous) {
    void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED) return errnoError("guest RAM mmap");
    // Hugepages would hide identical 4 KiB pages from KSM.
    if (::madvise(host, size, MADV_MERGEABLE) != 0) {
      auto failed = errnoError("madvise(MADV_MERGEABLE) on guest RAM (host kernel without KSM?)");
      ::munmap(host, size);
      return failed;
    }
    return std::unique_ptr<GuestRam>(new GuestRam(base, size, backing, UniqueFd(), static_cast<uint8_t*>(host)));
  }
  UniqueFd fd(::memfd_create("strata-guest-ram", MFD_CLOEXEC));
  if (!fd.valid()) return errnoError("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return errnoError("guest RAM ftruncate");
  void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
  if (host == MAP_FAILED) return errnoError("guest RAM mmap");
  ::madvise(host, size, MADV_HUGEPAGE);
  return std::unique_ptr<GuestRam>(new GuestRam(base, size, backing, std::move(fd), static_cast<uint8_t*>(host)));
}

GuestRam::GuestRam(uint64_t base, uint64_t size, RamBacking backing, UniqueFd fd, uint8_t* host)
    : base_(base), size_(size), backing_(backing), fd_(std::move(fd)), host_(host) {}

GuestRam::~GuestRam() { ::munmap(host_, size_); }

Result<void> GuestRam::discard(uint64_t gpa, uint64_t length) {
  if (!translate(gpa, length)) return Error{fmt::format("discard [{:#x}, +{:#x}) is not inside guest RAM", gpa, length)};
  // Only whole pages: a partial page still holds guest data around the range.
  uint64_t offset = gpa - base_;
  uint64_t first = (offset + kPageSize - 1) / kPageSize * kPageSize;
  uint64_t last = (offset + length) / kPageSize * kPageSize;
  if (last <= first) return {};
  uint64_t bytes = last - first;
  if (backing_ == RamBacking::SharedMemfd) {
    if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(first),
                    static_cast<off_t>(bytes)) != 0)
      return errnoError("guest RAM fallocate(PUNCH_HOLE)");
  } else if (::madvise(host_ + first, bytes, MADV_DONTNEED) != 0) {
    return errnoError("guest RAM madvise(MADV_DONTNEED)");
  }
  return {};
}

Result<void> GuestRam::discardHost(const uint8_t* host, uint64_t length) {
  if (host < host_) return Error{"discard: host address below guest RAM"};
  return discard(base_ + static_cast<uint64_t>(host - host_), length);
}

}  // namespace strata::machine
