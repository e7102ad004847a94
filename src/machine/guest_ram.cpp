#include "machine/guest_ram.h"

#include <sys/mman.h>

namespace strata::machine {

Result<std::unique_ptr<GuestRam>> GuestRam::create(uint64_t base, uint64_t size) {
  UniqueFd fd(::memfd_create("strata-guest-ram", MFD_CLOEXEC));
  if (!fd.valid()) return errnoError("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return errnoError("guest RAM ftruncate");
  void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
  if (host == MAP_FAILED) return errnoError("guest RAM mmap");
  ::madvise(host, size, MADV_HUGEPAGE);
  return std::unique_ptr<GuestRam>(new GuestRam(base, size, std::move(fd), static_cast<uint8_t*>(host)));
}

GuestRam::GuestRam(uint64_t base, uint64_t size, UniqueFd fd, uint8_t* host)
    : base_(base), size_(size), fd_(std::move(fd)), host_(host) {}

GuestRam::~GuestRam() { ::munmap(host_, size_); }

}  // namespace strata::machine
