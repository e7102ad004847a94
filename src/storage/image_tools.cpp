#include "storage/image_tools.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

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

// Compares every cluster's stored refcount with the references found by
// walking the tables. The work is bounded by what the file really holds, not
// by what its header or tables claim: references are kept sparsely (sorted at
// the end) instead of one counter per cluster the file could hold; each
// distinct L2 table is read once however many L1 entries point at it, and not
// at all when it lies in a hole of a sparse file; a refcount block describing
// only clusters past the end of the file (where nothing can be referenced) is
// scanned once however many refcount table entries reuse it.
class RefcountChecker {
 public:
  RefcountChecker(qcow2::Metadata& meta, int fd, uint64_t fileSize, CheckReport& report)
      : meta_(meta), fd_(fd), report_(report), clusterSize_(meta.clusterSize()),
        fileClusters_((fileSize + clusterSize_ - 1) / clusterSize_) {}

  // References each cluster of [offset, offset+bytes) `weight` times.
  void reference(uint64_t offset, uint64_t bytes, const char* what, uint64_t weight = 1) {
    if (bytes == 0) return;
    uint64_t first = offset / clusterSize_;
    uint64_t last = (offset + bytes - 1) / clusterSize_;
    for (uint64_t c = first; c <= last; ++c) {
      if (c >= fileClusters_) {
        corruption(fmt::format("ERROR {} at offset 0x{:x} lies past the end of the image file", what, c * clusterSize_));
        return;
      }
      references_.emplace_back(c, weight);
    }
  }

  // Notes the L2 tables an L1 table points at; walkL2Tables reads them.
  void addL1(const std::vector<uint64_t>& l1, bool active) {
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
      if (l2Offset / clusterSize_ >= fileClusters_) {
        reference(l2Offset, clusterSize_, "L2 table");  // reports it
        continue;
      }
      l2Pointers_.emplace_back(l2Offset, active);
    }
  }

  void walkL2Tables() {
    const qcow2::Header& h = meta_.header();
    // Grouped by table: each distinct table is read once, its references
    // counted as many times as L1 entries point at it.
    std::sort(l2Pointers_.begin(), l2Pointers_.end());
    for (size_t group = 0, groupEnd = 0; group < l2Pointers_.size(); group = groupEnd) {
      const uint64_t l2Offset = l2Pointers_[group].first;
      uint64_t activePointers = 0;
      for (groupEnd = group; groupEnd < l2Pointers_.size() && l2Pointers_[groupEnd].first == l2Offset; ++groupEnd) {
        activePointers += l2Pointers_[groupEnd].second ? 1 : 0;
      }
      const uint64_t pointers = groupEnd - group;
      reference(l2Offset, clusterSize_, "L2 table", pointers);
      if (inHole(l2Offset, clusterSize_)) continue;  // reads as zeroes: maps nothing
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
          corruption(fmt::format("ERROR L2 table 0x{:x} entry {}: {}", l2Offset, j, m.error().message));
          continue;
        }
        bool allocated = m->kind == qcow2::ClusterKind::Normal || m->kind == qcow2::ClusterKind::Compressed ||
                         (m->kind == qcow2::ClusterKind::Zero && m->hostOffset != 0);
        if (allocated || m->kind == qcow2::ClusterKind::Zero) report_.allocatedClusters += activePointers;
        if (m->kind == qcow2::ClusterKind::Compressed) {
          reference(m->hostOffset, m->compressedBytes, "compressed cluster", pointers);
        } else if (m->hostOffset != 0) {
          reference(m->hostOffset, clusterSize_, "data cluster", pointers);
        }
      }
    }
  }

  void compare() {
    mergeReferences();
    const qcow2::Header& h = meta_.header();
    const uint64_t perBlock = h.refcountsPerBlock();
    const auto& table = meta_.refcountTable();
    std::unordered_map<uint64_t, uint64_t> usedPastTheFile;  // block offset -> its nonzero refcounts
    std::vector<uint8_t> block(clusterSize_);
    size_t next = 0;  // the first reference not compared yet
    for (uint64_t i = 0; i < table.size(); ++i) {
      const uint64_t rangeStart = i * perBlock;
      const uint64_t entry = table[i];
      if (entry == 0) {
        // No block: every refcount in the range is 0.
        while (next < references_.size() && references_[next].first < rangeStart + perBlock) {
          mismatch(references_[next].first, 0, references_[next].second);
          ++next;
        }
        continue;
      }
      if ((entry & ~qcow2::kRefTableOffsetMask) != 0 || entry % clusterSize_ != 0 ||
          entry / clusterSize_ >= fileClusters_) {
        corruption(fmt::format("ERROR refcount block {} at 0x{:x} is unusable (reserved bits, unaligned or past the end "
                               "of the file)", i, entry));
        while (next < references_.size() && references_[next].first < rangeStart + perBlock) ++next;
        continue;
      }
      // Past the file nothing is referenced: a block seen before there adds its count again.
      const bool pastTheFile = rangeStart >= fileClusters_;
      if (pastTheFile) {
        auto seen = usedPastTheFile.find(entry);
        if (seen != usedPastTheFile.end() && (seen->second == 0 || report_.messages.size() >= kMaxCheckMessages)) {
          report_.leaks += seen->second;
          report_.messagesOmitted += seen->second;
          continue;
        }
      }
      if (!readBlock(entry, block)) {
        corruption(fmt::format("ERROR cannot read refcount block {} at 0x{:x}: {}", i, entry, std::strerror(errno)));
        while (next < references_.size() && references_[next].first < rangeStart + perBlock) ++next;
        continue;
      }
      uint64_t nonzero = 0;
      for (uint64_t k = 0; k < perBlock; ++k) {
        const uint64_t cluster = rangeStart + k;
        const uint64_t stored = qcow2::refcountAt(block.data(), k, h.refcountOrder);
        uint64_t want = 0;
        if (next < references_.size() && references_[next].first == cluster) want = references_[next++].second;
        if (stored != 0) ++nonzero;
        if (stored != want) mismatch(cluster, stored, want);
      }
      if (pastTheFile) usedPastTheFile.emplace(entry, nonzero);
    }
    // Referenced clusters the refcount table does not reach have refcount 0.
    for (; next < references_.size(); ++next) mismatch(references_[next].first, 0, references_[next].second);
  }

  void corruption(std::string message) {
    ++report_.corruptions;
    keep([&] { return std::move(message); });
  }

 private:
  // Keeps the first kMaxCheckMessages messages; `describe` only runs for those.
  template <typename Describe>
  void keep(Describe describe) {
    if (report_.messages.size() < kMaxCheckMessages) {
      report_.messages.push_back(describe());
    } else {
      ++report_.messagesOmitted;
    }
  }

  void mismatch(uint64_t cluster, uint64_t stored, uint64_t want) {
    const bool leak = stored > want;
    ++(leak ? report_.leaks : report_.corruptions);
    keep([&] {
      return fmt::format("{} cluster {} refcount={} reference={}", leak ? "Leaked" : "ERROR", cluster, stored, want);
    });
  }

  // Sorts the references and sums those to the same cluster.
  void mergeReferences() {
    std::sort(references_.begin(), references_.end());
    size_t out = 0;
    for (size_t in = 0; in < references_.size(); ++in) {
      if (out > 0 && references_[out - 1].first == references_[in].first) {
        references_[out - 1].second += references_[in].second;
      } else {
        references_[out++] = references_[in];
      }
    }
    references_.resize(out);
  }

  // True when [offset, offset+length) holds no data in a sparse file.
  bool inHole(uint64_t offset, uint64_t length) const {
    off_t data = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
    if (data < 0) return errno == ENXIO;  // no data after offset; other errors: read it to find out
    return static_cast<uint64_t>(data) >= offset + length;
  }

  bool readBlock(uint64_t offset, std::vector<uint8_t>& block) const {
    ssize_t got = ::pread(fd_, block.data(), block.size(), static_cast<off_t>(offset));
    if (got < 0) return false;
    std::fill(block.begin() + got, block.end(), 0);  // the file's unwritten tail reads as zeroes
    return true;
  }

  qcow2::Metadata& meta_;
  int fd_;
  CheckReport& report_;
  uint64_t clusterSize_;
  uint64_t fileClusters_;
  std::vector<std::pair<uint64_t, bool>> l2Pointers_;      // (L2 table offset, from the active L1)
  std::vector<std::pair<uint64_t, uint64_t>> references_;  // (cluster, references)
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

  RefcountChecker checker(**meta, file->fd.get(), file->size, report);
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
  checker.addL1((*meta)->l1Table(), true);
  // Internal snapshots: their table and each snapshot's L1 table and clusters.
  // L1 tables do not overlap in a valid image and QEMU writes them whole, so
  // together they hold no more entries than the file has data for (a sparse
  // file's holes do not count: they would allow terabytes of claimed tables).
  uint64_t l1EntriesLeft = file->allocated / 8;
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
    if (l1Size > l1EntriesLeft) {
      checker.corruption(fmt::format("ERROR snapshot {}: the snapshots' L1 tables claim more entries than the file "
                                     "holds; the remaining snapshots are not checked", s));
      break;
    }
    l1EntriesLeft -= l1Size;
    checker.reference(l1Offset, uint64_t{l1Size} * 8, "snapshot L1 table");
    auto l1 = (*meta)->readEntries(l1Offset, l1Size);
    if (!l1) {
      checker.corruption("ERROR reading snapshot L1 table: " + l1.error().message);
      continue;
    }
    checker.addL1(*l1, false);
  }
  if (header->nbSnapshots > 0) checker.reference(header->snapshotsOffset, position - header->snapshotsOffset, "snapshot table");
  checker.walkL2Tables();
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
