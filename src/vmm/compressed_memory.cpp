#include "vmm/compressed_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include <fmt/core.h>

#include "base/unique_fd.h"

namespace strata::vmm {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'Z', 'M'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kRecordBytes = 1 << 20;  // raw bytes per record at most: bounded buffers both ways
constexpr uint64_t kEnd = ~0ull;            // the end record's offset
// zstd's fastest levels: a snapshot pauses the guest while it is written.
constexpr int kLevel = 1;

// Host byte order: a memory file is read back on the host that wrote it (as the state file).
struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t pageSize;
  uint64_t ramBytes;
};

struct RecordHeader {
  uint64_t offset;      // into RAM; kEnd ends the file
  uint32_t rawBytes;    // a whole number of pages, at most kRecordBytes
  uint32_t packedBytes;  // the zstd frame that follows
};

Result<void> writeAll(int fd, const std::vector<uint8_t>& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errnoError(path + ": write");
    done += static_cast<size_t>(n);
  }
  return {};
}

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof value);
}

}  // namespace

Result<void> saveCompressedMemory(const machine::GuestRam& ram, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return errnoError(path);
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> context(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!context) return Error{path + ": zstd: out of memory"};
  ZSTD_CCtx_setParameter(context.get(), ZSTD_c_compressionLevel, kLevel);
  ZSTD_CCtx_setParameter(context.get(), ZSTD_c_checksumFlag, 1);
  std::vector<uint8_t> out;
  append(out, FileHeader{{}, kVersion, machine::GuestRam::kPageSize, ram.size()});
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  std::vector<uint8_t> frame(ZSTD_compressBound(kRecordBytes));
  auto written = ram.forEachDataRun([&](uint64_t offset, uint64_t length) -> Result<void> {
    for (uint64_t done = 0; done < length; done += kRecordBytes) {
      uint64_t raw = std::min(kRecordBytes, length - done);
      size_t packed = ZSTD_compress2(context.get(), frame.data(), frame.size(), ram.hostBase() + offset + done, raw);
      if (ZSTD_isError(packed)) return Error{fmt::format("{}: zstd: {}", path, ZSTD_getErrorName(packed))};
      append(out, RecordHeader{offset + done, static_cast<uint32_t>(raw), static_cast<uint32_t>(packed)});
      out.insert(out.end(), frame.begin(), frame.begin() + static_cast<ptrdiff_t>(packed));
      if (out.size() >= 8 * kRecordBytes) {
        if (auto flushed = writeAll(fd.get(), out, path); !flushed) return flushed;
        out.clear();
      }
    }
    return {};
  });
  if (!written) return written;
  append(out, RecordHeader{kEnd, 0, 0});
  if (auto flushed = writeAll(fd.get(), out, path); !flushed) return flushed;
  if (::fsync(fd.get()) != 0) return errnoError(path + ": fsync");
  return {};
}

Result<std::unique_ptr<machine::GuestRam>> loadCompressedMemory(uint64_t base, uint64_t size, machine::RamBacking backing,
                                                                const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errnoError(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoError(path);
  const auto fileBytes = static_cast<uint64_t>(st.st_size);
  auto damaged = [&](uint64_t at, const std::string& what) {
    return Error{fmt::format("{}: damaged compressed memory file at byte {}: {}", path, at, what)};
  };
  if (fileBytes < sizeof(FileHeader) + sizeof(RecordHeader)) return damaged(0, "too short");
  void* mapped = ::mmap(nullptr, fileBytes, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (mapped == MAP_FAILED) return errnoError(path + ": mmap");
  std::unique_ptr<void, std::function<void(void*)>> unmap(mapped, [fileBytes](void* at) { ::munmap(at, fileBytes); });
  const auto* file = static_cast<const uint8_t*>(mapped);
  FileHeader header;
  std::memcpy(&header, file, sizeof header);
  if (std::memcmp(header.magic, kMagic, sizeof kMagic) != 0) return damaged(0, "not a strata compressed memory file");
  if (header.version != kVersion) return damaged(8, fmt::format("format version {}, this strata reads {}", header.version, kVersion));
  if (header.pageSize != machine::GuestRam::kPageSize || header.ramBytes != size)
    return Error{fmt::format("{}: memory file holds {} bytes, the VM has {}", path, header.ramBytes, size)};

  auto ram = machine::GuestRam::create(base, size, backing);
  if (!ram) return ram.error();
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!context) return Error{path + ": zstd: out of memory"};
  uint64_t at = sizeof header, nextOffset = 0;
  for (;;) {
    if (fileBytes - at < sizeof(RecordHeader)) return damaged(at, "truncated (no end record)");
    RecordHeader record;
    std::memcpy(&record, file + at, sizeof record);
    at += sizeof record;
    if (record.offset == kEnd) break;
    // Records come in RAM order without overlapping, each whole pages inside RAM.
    if (record.offset > size || record.offset < nextOffset || record.offset % header.pageSize != 0 ||
        record.rawBytes == 0 || record.rawBytes > kRecordBytes || record.rawBytes % header.pageSize != 0 ||
        record.rawBytes > size - record.offset)
      return damaged(at - sizeof record, "a record lies outside guest RAM or out of order");
    if (record.packedBytes > fileBytes - at) return damaged(at, "truncated record");
    size_t inflated = ZSTD_decompressDCtx(context.get(), (*ram)->hostBase() + record.offset, record.rawBytes, file + at,
                                          record.packedBytes);
    if (ZSTD_isError(inflated)) return damaged(at, fmt::format("zstd: {}", ZSTD_getErrorName(inflated)));
    if (inflated != record.rawBytes) return damaged(at, "a record inflates to the wrong size");
    at += record.packedBytes;
    nextOffset = record.offset + record.rawBytes;
  }
  if (at != fileBytes) return damaged(at, "bytes after the end record");
  return std::move(*ram);
}

}  // namespace strata::vmm
