#include "machine/guest_ram.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

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

Result<std::unique_ptr<GuestRam>> GuestRam::mapFile(uint64_t base, uint64_t size, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errnoError(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoError(path);
  if (static_cast<uint64_t>(st.st_size) != size)
    return Error{path + ": memory file holds " + std::to_string(st.st_size) + " bytes, the VM has " +
                 std::to_string(size)};
  void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd.get(), 0);
  if (host == MAP_FAILED) return errnoError(path + ": mmap");
  return std::unique_ptr<GuestRam>(new GuestRam(base, size, RamBacking::PrivateFile, std::move(fd), static_cast<uint8_t*>(host)));
}

Result<void> GuestRam::saveTo(const std::string& path) const {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return errnoError(path);
  if (::ftruncate(fd.get(), static_cast<off_t>(size_)) != 0) return errnoError(path + ": ftruncate");
  // Each run goes out in one pwrite; zero pages stay holes of the truncated file.
  auto written = forEachDataRun([&](uint64_t offset, uint64_t length) -> Result<void> {
    uint64_t end = offset + length;
    while (offset < end) {
      ssize_t n = ::pwrite(fd.get(), host_ + offset, std::min<uint64_t>(end - offset, 1u << 30), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return errnoError(path + ": write");
      offset += static_cast<uint64_t>(n);
    }
    return {};
  });
  if (!written) return written;
  if (::fsync(fd.get()) != 0) return errnoError(path + ": fsync");
  return {};
}

Result<void> GuestRam::forEachDataRun(const std::function<Result<void>(uint64_t offset, uint64_t length)>& visit) const {
  constexpr uint64_t kPage = 4096;
  static const uint8_t kZeroPage[kPage] = {};
  uint64_t runStart = 0, offset = 0;
  auto endRun = [&](uint64_t end) -> Result<void> { return runStart < end ? visit(runStart, end - runStart) : Result<void>{}; };
  while (offset < size_) {
    auto [dataBegin, dataEnd] = nextDataRange(offset);
    if (dataBegin > offset) {  // a hole: never written, so skipped without touching it
      if (auto visited = endRun(offset); !visited) return visited;
      offset = runStart = dataBegin;
    }
    for (; offset < dataEnd; offset += kPage) {
      uint64_t length = std::min(kPage, size_ - offset);
      if (std::memcmp(host_ + offset, kZeroPage, length) != 0) continue;
      if (auto visited = endRun(offset); !visited) return visited;
      runStart = offset + length;
    }
  }
  return endRun(size_);
}

std::pair<uint64_t, uint64_t> GuestRam::nextDataRange(uint64_t offset) const {
  if (backing_ != RamBacking::SharedMemfd) return {offset, size_};
  off_t data = ::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) return errno == ENXIO ? std::pair{size_, size_} : std::pair{offset, size_};  // ENXIO: no more data
  off_t hole = ::lseek(fd_.get(), data, SEEK_HOLE);
  uint64_t begin = std::min<uint64_t>(static_cast<uint64_t>(data) / kPageSize * kPageSize, size_);
  return {begin, hole < 0 ? size_ : std::min<uint64_t>(static_cast<uint64_t>(hole), size_)};
}

GuestRam::GuestRam(uint64_t base, uint64_t size, RamBacking backing, UniqueFd fd, uint8_t* host)
    : base_(base), size_(size), backing_(backing), fd_(std::move(fd)), host_(host), dirty_(size) {}

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
  dirty_.markRange(first, bytes);  // they read zero now
  return {};
}

Result<void> GuestRam::storePageUnmapped(uint64_t offset, const uint8_t* data) {
  if (offset % kPageSize != 0 || offset >= size_) return Error{fmt::format("no RAM page at offset {:#x}", offset)};
  if (backing_ != RamBacking::SharedMemfd) {
    if (data) std::memcpy(host_ + offset, data, kPageSize);
    else std::memset(host_ + offset, 0, kPageSize);
    return {};
  }
  if (!data) return discard(base_ + offset, kPageSize);
  for (uint64_t done = 0; done < kPageSize;) {
    ssize_t wrote = ::pwrite(fd_.get(), data + done, kPageSize - done, static_cast<off_t>(offset + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return errnoError(fmt::format("writing guest RAM at {:#x}", offset));
    done += static_cast<uint64_t>(wrote);
  }
  return {};
}

void GuestRam::populate(uint64_t gpa, uint64_t length) {
  if (!translate(gpa, length) || length == 0) return;
  const uint64_t first = (gpa - base_) / kPageSize * kPageSize;
  const uint64_t last = gpa - base_ + length;
  // Kernels before 5.14 lack MADV_POPULATE_WRITE: the copy then faults the pages in as before.
  (void)::madvise(host_ + first, last - first, MADV_POPULATE_WRITE);
}

Result<void> GuestRam::discardHost(const uint8_t* host, uint64_t length) {
  if (host < host_) return Error{"discard: host address below guest RAM"};
  return discard(base_ + static_cast<uint64_t>(host - host_), length);
}

}  // namespace strata::machine
