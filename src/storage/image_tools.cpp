#include "storage/image_tools.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "base/unique_fd.h"
#include "storage/qcow2_format.h"
#include "storage/qcow2_image.h"
#include "storage/qcow2_metadata.h"
#include "storage/sync_io.h"

namespace strata::storage {

namespace {

constexpr uint64_t kCopyChunk = 2ull << 20;

struct OpenedFile {
  UniqueFd fd;
  uint64_t size = 0;
  uint64_t allocated = 0;
};

Result<OpenedFile> openForReading(const std::string& path) {
  OpenedFile file;
  file.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file.fd.valid()) return errnoError(path);
  struct stat st {};
  if (::fstat(file.fd.get(), &st) != 0) return errnoError(path);
  file.size = static_cast<uint64_t>(st.st_size);
  file.allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  return file;
}

Result<qcow2::Header> readQcow2Header(int fd, uint64_t fileSize, const std::string& path) {
  // Enough for the largest header cluster (2 MiB); small files are read whole.
  std::vector<uint8_t> bytes(std::min<uint64_t>(fileSize, 1ull << qcow2::kMaxClusterBits));
  ssize_t got = ::pread(fd, bytes.data(), bytes.size(), 0);
  if (got < 0) return errnoError(path);
  bytes.resize(static_cast<size_t>(got));
  return qcow2::parseHeader(bytes, fileSize, path);
}

std::string jsonEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

std::string humanSize(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.3g} {}", value, units[unit]);
}

bool allZero(const uint8_t* data, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

}  // namespace

Result<ImageInfo> imageInfo(const std::string& path) {
  auto file = openForReading(path);
  if (!file) return file.error();
  ImageInfo info;
  info.path = path;
  info.diskSize = file->allocated;
  auto format = probeImageFormat(path);
  if (!format) return format.error();
  info.format = *format;
  if (info.format == ImageFormat::Raw) {
    info.virtualSize = file->size;
    struct stat st {};
    uint64_t deviceBytes = 0;
    // Block devices report size 0 through stat.
    if (::fstat(file->fd.get(), &st) == 0 && S_ISBLK(st.st_mode) &&
        ::ioctl(file->fd.get(), BLKGETSIZE64, &deviceBytes) == 0) {
      info.virtualSize = deviceBytes;
    }
    return info;
  }
  auto header = readQcow2Header(file->fd.get(), file->size, path);
  if (!header) return header.error();
  info.virtualSize = header->size;
  info.clusterSize = header->clusterSize();
  info.refcountBits = header->refcountBits();
  info.backingFile = header->backingFile;
  info.backingFormat = header->backingFormat;
  info.corrupt = (header->incompatibleFeatures & qcow2::kIncompatCorrupt) != 0;
  info.lazyRefcounts = (header->compatibleFeatures & qcow2::kCompatLazyRefcounts) != 0;
  return info;
}

std::string formatInfoText(const ImageInfo& info) {
  std::string text = fmt::format("image: {}\nfile format: {}\nvirtual size: {} ({} bytes)\ndisk size: {}\n",
                                 info.path, formatName(info.format), humanSize(info.virtualSize), info.virtualSize,
                                 humanSize(info.diskSize));
  if (info.format == ImageFormat::Qcow2) {
    text += fmt::format("cluster_size: {}\n", info.clusterSize);
    if (!info.backingFile.empty()) text += fmt::format("backing file: {}\n", info.backingFile);
    if (!info.backingFormat.empty()) text += fmt::format("backing file format: {}\n", info.backingFormat);
    text += fmt::format("Format specific information:\n    compat: 1.1\n    lazy refcounts: {}\n"
                        "    refcount bits: {}\n    corrupt: {}\n",
                        info.lazyRefcounts, info.refcountBits, info.corrupt);
  }
  return text;
}

std::string formatInfoJson(const ImageInfo& info) {
  std::string json = fmt::format("{{\n    \"filename\": \"{}\",\n    \"format\": \"{}\",\n    \"virtual-size\": {},\n"
                                 "    \"actual-size\": {}",
                                 jsonEscape(info.path), formatName(info.format), info.virtualSize, info.diskSize);
  if (info.format == ImageFormat::Qcow2) {
    json += fmt::format(",\n    \"cluster-size\": {}", info.clusterSize);
    if (!info.backingFile.empty()) json += fmt::format(",\n    \"backing-filename\": \"{}\"", jsonEscape(info.backingFile));
    if (!info.backingFormat.empty()) {
      json += fmt::format(",\n    \"backing-filename-format\": \"{}\"", jsonEscape(info.backingFormat));
    }
    json += fmt::format(",\n    \"format-specific\": {{\n        \"type\": \"qcow2\",\n        \"data\": {{\n"
                        "            \"compat\": \"1.1\",\n            \"lazy-refcounts\": {},\n"
                        "            \"refcount-bits\": {},\n            \"corrupt\": {}\n        }}\n    }}",
                        info.lazyRefcounts, info.refcountBits, info.corrupt);
  }
  json += "\n}\n";
  return json;
}

// ---- check ----

namespace {

class RefcountChecker {
 public:
  RefcountChecker(qcow2::Metadata& meta, uint64_t fileSize, CheckReport& report)
      : meta_(meta), report_(report), clusterSize_(meta.clusterSize()),
        fileClusters_((fileSize + clusterSize_ - 1) / clusterSize_), expected_(fileClusters_, 0) {}

  void reference(uint64_t offset, uint64_t bytes, const char* what) {
    if (bytes == 0) return;
    uint64_t first = offset / clusterSize_;
    uint64_t last = (offset + bytes - 1) / clusterSize_;
    for (uint64_t c = first; c <= last; ++c) {
      if (c >= fileClusters_) {
        corruption(fmt::format("ERROR {} at offset 0x{:x} lies past the end of the image file", what, c * clusterSize_));
        return;
      }
      ++expected_[c];
    }
  }

  void walkL1(const std::vector<uint64_t>& l1, bool active) {
    const qcow2::Header& h = meta_.header();
    for (size_t i = 0; i < l1.size(); ++i) {
      uint64_t entry = l1[i];
      if (entry == 0) continue;
      if ((entry & qcow2::kL1ReservedMask) != 0) {
        corruption(fmt::format("ERROR L1 entry {} has reserved bits set", i));
        continue;
      }
      uint64_t l2Offset = entry & qcow2::kL1OffsetMask;
      if (l2Offset == 0) continue;
      if (l2Offset % clusterSize_ != 0) {
        corruption(fmt::format("ERROR L2 table offset 0x{:x} is not cluster aligned", l2Offset));
        continue;
      }
      reference(l2Offset, clusterSize_, "L2 table");
      if (l2Offset / clusterSize_ >= fileClusters_) continue;
      auto l2 = meta_.readEntries(l2Offset, h.l2Entries());
      if (!l2) {
        corruption("ERROR reading L2 table: " + l2.error().message);
        continue;
      }
      for (size_t j = 0; j < l2->size(); ++j) {
        uint64_t l2Entry = (*l2)[j];
        if (l2Entry == 0) continue;
        auto m = qcow2::decodeL2Entry(l2Entry, h);
        if (!m) {
          corruption(fmt::format("ERROR guest cluster {}: {}", i * h.l2Entries() + j, m.error().message));
          continue;
        }
        bool allocated = m->kind == qcow2::ClusterKind::Normal || m->kind == qcow2::ClusterKind::Compressed ||
                         (m->kind == qcow2::ClusterKind::Zero && m->hostOffset != 0);
        if (active && (allocated || m->kind == qcow2::ClusterKind::Zero)) ++report_.allocatedClusters;
        if (m->kind == qcow2::ClusterKind::Compressed) {
          reference(m->hostOffset, m->compressedBytes, "compressed cluster");
        } else if (m->hostOffset != 0) {
          reference(m->hostOffset, clusterSize_, "data cluster");
        }
      }
    }
  }

  void compare() {
    const uint64_t perBlock = meta_.header().refcountsPerBlock();
    uint64_t limit = fileClusters_;
    const auto& table = meta_.refcountTable();
    for (size_t i = 0; i < table.size(); ++i) {
      if (table[i] != 0) limit = std::max<uint64_t>(limit, (i + 1) * perBlock);
    }
    for (uint64_t c = 0; c < limit; ++c) {
      uint64_t want = c < fileClusters_ ? expected_[c] : 0;
      auto stored = meta_.refcount(c);
      if (!stored) {
        corruption(fmt::format("ERROR cannot read refcount of cluster {}: {}", c, stored.error().message));
        // Skip the rest of this refcount block: it is unreadable as a whole.
        c = (c / perBlock + 1) * perBlock - 1;
        continue;
      }
      if (*stored == want) continue;
      if (*stored < want) {
        corruption(fmt::format("ERROR cluster {} refcount={} reference={}", c, *stored, want));
      } else {
        ++report_.leaks;
        report_.messages.push_back(fmt::format("Leaked cluster {} refcount={} reference={}", c, *stored, want));
      }
    }
  }

  void corruption(std::string message) {
    ++report_.corruptions;
    report_.messages.push_back(std::move(message));
  }

 private:
  qcow2::Metadata& meta_;
  CheckReport& report_;
  uint64_t clusterSize_;
  uint64_t fileClusters_;
  std::vector<uint64_t> expected_;
};

}  // namespace

Result<CheckReport> checkImage(const std::string& path) {
  auto file = openForReading(path);
  if (!file) return file.error();
  CheckReport report;
  auto format = probeImageFormat(path);
  if (!format) return format.error();
  if (*format == ImageFormat::Raw) return report;  // nothing to check in a raw image
  auto header = readQcow2Header(file->fd.get(), file->size, path);
  if (!header) return header.error();
  auto meta = qcow2::Metadata::load(file->fd.get(), *header, file->size, path, false);
  if (!meta) return meta.error();
  const uint64_t clusterSize = header->clusterSize();
  report.totalClusters = (header->size + clusterSize - 1) / clusterSize;
  report.imageEndOffset = file->size;

  RefcountChecker checker(**meta, file->size, report);
  checker.reference(0, clusterSize, "header");
  checker.reference(header->l1TableOffset, uint64_t{header->l1Size} * 8, "L1 table");
  checker.reference(header->refcountTableOffset, uint64_t{header->refcountTableClusters} * clusterSize,
                    "refcount table");
  const auto& table = (*meta)->refcountTable();
  for (size_t i = 0; i < table.size(); ++i) {
    if (table[i] == 0) continue;
    if (table[i] % clusterSize != 0) {
      checker.corruption(fmt::format("ERROR refcount block {} is not cluster aligned", i));
      continue;
    }
    checker.reference(table[i], clusterSize, "refcount block");
  }
  // Internal snapshots: their table and each snapshot's L1 table and clusters.
  uint64_t position = header->snapshotsOffset;
  for (uint32_t s = 0; s < header->nbSnapshots; ++s) {
    uint8_t fixed[40];
    if (::pread(file->fd.get(), fixed, sizeof fixed, static_cast<off_t>(position)) != sizeof fixed) {
      checker.corruption("ERROR snapshot table is truncated");
      break;
    }
    uint64_t l1Offset = qcow2::loadBe64(fixed);
    uint32_t l1Size = qcow2::loadBe32(fixed + 8);
    uint64_t length = 40 + qcow2::loadBe32(fixed + 36) + qcow2::loadBe16(fixed + 12) + qcow2::loadBe16(fixed + 14);
    position += (length + 7) & ~uint64_t{7};
    if (uint64_t{l1Size} * 8 > qcow2::kMaxL1Bytes || l1Offset % clusterSize != 0) {
      checker.corruption(fmt::format("ERROR snapshot {} has an invalid L1 table", s));
      continue;
    }
    checker.reference(l1Offset, uint64_t{l1Size} * 8, "snapshot L1 table");
    auto l1 = (*meta)->readEntries(l1Offset, l1Size);
    if (!l1) {
      checker.corruption("ERROR reading snapshot L1 table: " + l1.error().message);
      continue;
    }
    checker.walkL1(*l1, false);
  }
  if (header->nbSnapshots > 0) checker.reference(header->snapshotsOffset, position - header->snapshotsOffset, "snapshot table");
  checker.walkL1((*meta)->l1Table(), true);
  checker.compare();
  return report;
}

int checkExitCode(const CheckReport& report) {
  if (report.corruptions > 0) return 2;
  if (report.leaks > 0) return 3;
  return 0;
}

// ---- convert and commit ----

Result<Extent> effectiveStatus(DiskImage& image, uint64_t offset, uint64_t length) {
  auto status = image.blockStatus(offset, length);
  if (!status) return status.error();
  if (status->kind != ExtentKind::Unallocated) return status;
  DiskImage* backing = image.backing();
  if (backing == nullptr || offset >= backing->sizeBytes()) return Extent{ExtentKind::Zero, status->length};
  auto below = effectiveStatus(*backing, offset, std::min(status->length, backing->sizeBytes() - offset));
  if (!below) return below.error();
  return Extent{below->kind == ExtentKind::Unallocated ? ExtentKind::Zero : below->kind, below->length};
}

Result<void> convertImage(const std::string& source, const std::string& target, const ConvertOptions& options,
                          EventLoop& loop, const ProgressCallback& progress) {
  DiskOptions sourceOptions;
  sourceOptions.readOnly = true;
  sourceOptions.format = options.sourceFormat;
  auto input = openDiskImage(source, sourceOptions, loop);
  if (!input) return input.error();
  const uint64_t size = (*input)->sizeBytes();
  CreateOptions create = options.target;
  create.size = size;
  auto created = createImage(target, create);
  if (!created) return created;
  DiskOptions targetOptions;
  targetOptions.format = create.format;
  auto output = openDiskImage(target, targetOptions, loop);
  if (!output) return output.error();

  // Chunks in flight at once. Measured on a 2-core host with buffered files,
  // more than one was slower (io_uring hands buffered writes to io-wq workers
  // that then contend); raise it for O_DIRECT or fast block devices.
  constexpr int kWindow = 1;
  const uint64_t granularity = create.format == ImageFormat::Qcow2 ? create.clusterSize : 4096;
  struct Chunk {
    uint64_t offset = 0;
    uint64_t length = 0;
    std::vector<uint8_t> buffer;
    int writesLeft = 0;
  };
  int inFlight = 0;
  int firstError = 0;
  std::string errorWhere;
  auto failWith = [&](int result, const std::string& where) {
    if (firstError == 0) {
      firstError = result;
      errorWhere = where;
    }
  };
  auto onRead = [&](const std::shared_ptr<Chunk>& chunk, int result) {
    if (result < 0) {
      failWith(result, source);
      --inFlight;
      return;
    }
    // A new image reads as zeroes already: writing zero blocks only costs
    // space, so only runs of non-zero blocks (of the target's allocation unit) are written.
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    for (uint64_t at = 0; at < chunk->length;) {
      uint64_t block = std::min(granularity - (chunk->offset + at) % granularity, chunk->length - at);
      if (allZero(chunk->buffer.data() + at, block)) {
        at += block;
        continue;
      }
      uint64_t runEnd = at + block;
      while (runEnd < chunk->length) {
        uint64_t next = std::min(granularity, chunk->length - runEnd);
        if (allZero(chunk->buffer.data() + runEnd, next)) break;
        runEnd += next;
      }
      runs.emplace_back(at, runEnd - at);
      at = runEnd;
    }
    if (runs.empty()) {
      --inFlight;
      return;
    }
    chunk->writesLeft = static_cast<int>(runs.size());
    for (auto [at, length] : runs) {
      (*output)->writev(chunk->offset + at, {iovec{chunk->buffer.data() + at, length}}, [&, chunk](int written) {
        if (written < 0) failWith(written, target);
        if (--chunk->writesLeft == 0) --inFlight;
      });
    }
  };
  uint64_t offset = 0;
  while ((offset < size && firstError == 0) || inFlight > 0) {
    while (inFlight < kWindow && offset < size && firstError == 0) {
      auto status = effectiveStatus(**input, offset, std::min(kCopyChunk, size - offset));
      if (!status) {
        while (inFlight > 0) loop.runOnce(-1);
        return status.error();
      }
      if (status->kind == ExtentKind::Data) {
        auto chunk = std::make_shared<Chunk>();
        chunk->offset = offset;
        chunk->length = status->length;
        chunk->buffer.resize(status->length);
        ++inFlight;
        (*input)->readv(offset, {iovec{chunk->buffer.data(), chunk->length}},
                        [&, chunk](int result) { onRead(chunk, result); });
      }
      offset += status->length;
      if (progress) progress(offset, size);
    }
    if (inFlight > 0) loop.runOnce(-1);
  }
  if (firstError != 0) return Error{errorWhere + ": " + std::strerror(-firstError)};
  auto flushed = flushSync(**output, loop);
  if (!flushed) return Error{target + ": " + flushed.error().message};
  return {};
}

Result<CommitResult> commitImage(const std::string& path, EventLoop& loop, const ProgressCallback& progress) {
  DiskOptions topOptions;
  topOptions.readOnly = true;
  auto top = openDiskImage(path, topOptions, loop);
  if (!top) return top.error();
  auto* overlay = dynamic_cast<Qcow2Image*>(top->get());
  if (overlay == nullptr || overlay->backing() == nullptr) return Error{path + ": image has no backing file"};
  CommitResult result;
  result.backingPath = overlay->backingPath();
  DiskOptions baseOptions;
  baseOptions.format = overlay->backing()->format();
  auto base = openDiskImage(result.backingPath, baseOptions, loop);
  if (!base) return base.error();
  const uint64_t size = std::min(overlay->sizeBytes(), (*base)->sizeBytes());
  std::vector<uint8_t> buffer(kCopyChunk);
  for (uint64_t offset = 0; offset < size;) {
    auto status = overlay->blockStatus(offset, std::min(kCopyChunk, size - offset));
    if (!status) return status.error();
    uint64_t length = status->length;
    if (status->kind == ExtentKind::Data) {
      auto read = readSync(*overlay, loop, offset, buffer.data(), length);
      if (!read) return Error{path + ": " + read.error().message};
      auto written = writeSync(**base, loop, offset, buffer.data(), length);
      if (!written) return Error{result.backingPath + ": " + written.error().message};
      result.bytesCommitted += length;
    } else if (status->kind == ExtentKind::Zero) {
      auto zeroed = writeZeroesSync(**base, loop, offset, length);
      if (!zeroed) return Error{result.backingPath + ": " + zeroed.error().message};
      result.bytesCommitted += length;
    }
    offset += length;
    if (progress) progress(offset, size);
  }
  auto flushed = flushSync(**base, loop);
  if (!flushed) return Error{result.backingPath + ": " + flushed.error().message};
  return result;
}

}  // namespace strata::storage
