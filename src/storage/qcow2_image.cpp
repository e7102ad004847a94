#include "storage/qcow2_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <iterator>
#include <optional>
#include <utility>

#include "base/log.h"
#include "storage/deflate.h"

namespace strata::storage {

using qcow2::ClusterKind;
using qcow2::ClusterMapping;

namespace {

// Copies the part [offset, offset+length) of an iovec list into a new list.
std::vector<iovec> sliceBuffers(const std::vector<iovec>& buffers, size_t offset, size_t length) {
  std::vector<iovec> slice;
  for (const auto& b : buffers) {
    if (length == 0) break;
    if (offset >= b.iov_len) {
      offset -= b.iov_len;
      continue;
    }
    size_t take = std::min(b.iov_len - offset, length);
    slice.push_back(iovec{static_cast<uint8_t*>(b.iov_base) + offset, take});
    length -= take;
    offset = 0;
  }
  return slice;
}

void zeroBuffers(const std::vector<iovec>& buffers, size_t offset, size_t length) {
  for (const auto& b : sliceBuffers(buffers, offset, length)) std::memset(b.iov_base, 0, b.iov_len);
}

void copyToBuffers(const std::vector<iovec>& buffers, size_t offset, const uint8_t* source, size_t length) {
  for (const auto& b : sliceBuffers(buffers, offset, length)) {
    std::memcpy(b.iov_base, source, b.iov_len);
    source += b.iov_len;
  }
}

// Tables a request waits for before it runs (a huge range may need more than
// the cache holds): a discard or write-zeroes then goes this many at a time;
// other requests read the rest synchronously.
constexpr uint64_t kAwaitedTables = 8;

size_t totalLength(const std::vector<iovec>& buffers) {
  size_t total = 0;
  for (const auto& b : buffers) total += b.iov_len;
  return total;
}

}  // namespace

// Page-aligned heap memory: copy-on-write buffers go to the file with O_DIRECT too.
AlignedBuffer::AlignedBuffer(size_t size) : size_(size) {
  void* memory = nullptr;
  if (size > 0 && ::posix_memalign(&memory, 4096, size) == 0) {
    std::memset(memory, 0, size);
    data_ = static_cast<uint8_t*>(memory);
  }
  if (size > 0 && data_ == nullptr) throw std::bad_alloc();
}
AlignedBuffer::~AlignedBuffer() { std::free(data_); }

struct Qcow2Image::Pending {
  int status = 0;
  unsigned remaining = 1;  // the initial part is released once every part is issued
  IoCompletion done;
};

// A run of consecutive guest clusters that a write moves to newly allocated
// host clusters; the head and tail of the run are copied from the old content.
struct Qcow2Image::Allocation {
  uint64_t firstCluster = 0;
  uint64_t clusterCount = 0;
  uint64_t hostOffset = 0;
  uint64_t dataOffset = 0;  // guest offset where the write's own data starts
  uint64_t dataLength = 0;
  size_t bufferOffset = 0;  // where that data starts in the request's buffers
  std::vector<ClusterMapping> oldMappings;
  std::unique_ptr<AlignedBuffer> head;
  std::unique_ptr<AlignedBuffer> tail;
  std::vector<iovec> writeBuffers;
};

Qcow2Image::Qcow2Image(std::string path, const DiskOptions& options, EventLoop& loop)
    : path_(std::move(path)), options_(options), loop_(loop) {}

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::open(const std::string& path, const DiskOptions& options,
                                                     EventLoop& loop, detail::ChainContext& chain) {
  std::unique_ptr<Qcow2Image> image(new Qcow2Image(path, options, loop));
  auto file = RawImage::open(path, RawOpenOptions{options.readOnly, options.direct, true}, loop);
  if (!file) return file.error();
  image->file_ = std::move(*file);
  image->metadataFd_ = image->file_->fd();
  if (options.direct) {
    // Metadata I/O is small and unaligned; it goes through the page cache.
    auto twin = RawImage::open(path, RawOpenOptions{options.readOnly, false, true}, loop);
    if (!twin) return twin.error();
    image->metaFile_ = std::move(*twin);
    image->metadataFd_ = image->metaFile_->fd();
  }
  if (auto loaded = image->loadMetadata(); !loaded) return loaded.error();
  if (!image->header_.backingFile.empty()) {
    DiskOptions backingOptions;
    backingOptions.readOnly = true;
    backingOptions.direct = options.direct;
    if (!image->header_.backingFormat.empty()) {
      auto format = parseFormatName(image->header_.backingFormat);
      if (!format) return Error{path + ": backing file: " + format.error().message};
      backingOptions.format = *format;
    }
    auto backing = detail::openDiskImageInChain(image->backingPath_, backingOptions, loop, chain);
    if (!backing) return Error{path + ": backing file: " + backing.error().message};
    image->backing_ = std::move(*backing);
  }
  return image;
}

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::openOverlay(const std::string& path, UniqueFd file,
                                                            std::unique_ptr<DiskImage>& backing, EventLoop& loop) {
  std::unique_ptr<Qcow2Image> image(new Qcow2Image(path, DiskOptions{}, loop));
  auto raw = RawImage::open(path, std::move(file), RawOpenOptions{.readOnly = false, .growable = true}, loop);
  if (!raw) return raw.error();
  image->file_ = std::move(*raw);
  image->metadataFd_ = image->file_->fd();
  if (auto loaded = image->loadMetadata(); !loaded) return loaded.error();
  if (image->header_.backingFile.empty()) return Error{path + ": an overlay needs a backing file"};
  if (image->header_.size != backing->sizeBytes())
    return Error{fmt::format("{}: {} bytes over a backing image of {}", path, image->header_.size, backing->sizeBytes())};
  image->backing_ = std::move(backing);
  return image;
}

Result<void> Qcow2Image::loadMetadata() {
  const std::string& path = path_;
  const uint64_t fileSize = file_->sizeBytes();

  // The header and its extensions fill at most the first cluster.
  std::vector<uint8_t> bytes(std::min<uint64_t>(fileSize, 4096));
  if (::pread(metadataFd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
    return errnoError(path);
  }
  if (bytes.size() >= 24) {
    uint32_t clusterBits = qcow2::loadBe32(&bytes[20]);
    if (clusterBits >= qcow2::kMinClusterBits && clusterBits <= qcow2::kMaxClusterBits &&
        (1ull << clusterBits) > bytes.size() && fileSize > bytes.size()) {
      bytes.resize(std::min<uint64_t>(fileSize, 1ull << clusterBits));
      if (::pread(metadataFd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
        return errnoError(path);
      }
    }
  }
  auto header = qcow2::parseHeader(bytes, fileSize, path);
  if (!header) return header.error();
  header_ = *header;
  const bool writable = !options_.readOnly;
  if (writable) {
    if (header->incompatibleFeatures & qcow2::kIncompatCorrupt) {
      return Error{path + ": image is marked corrupt; open it read-only or repair it (qemu-img check -r all)"};
    }
    if (header->incompatibleFeatures & qcow2::kIncompatDirty) {
      return Error{path + ": image was not closed cleanly (dirty bit set); repair it with qemu-img check -r all"};
    }
    if (header->nbSnapshots > 0) return Error{path + ": writing to images with internal snapshots is not supported"};
    if (header->autoclearFeatures != 0) {
      // Autoclear features we do not maintain must be cleared before we modify the image.
      uint8_t zero[8] = {};
      if (::pwrite(metadataFd_, zero, sizeof zero, 88) != 8 || ::fdatasync(metadataFd_) != 0) {
        return errnoError(path + ": clearing autoclear features");
      }
      header_.autoclearFeatures = 0;
    }
  }
  auto meta = qcow2::Metadata::load(metadataFd_, header_, fileSize, path, writable, options_.l2CacheBytes);
  if (!meta) return meta.error();
  meta_ = std::move(*meta);
  if (writable) writeback_ = std::make_unique<qcow2::Writeback>(*meta_, metadataFile());
  zeroCluster_ = std::make_unique<AlignedBuffer>(header_.clusterSize());
  if (!header_.backingFile.empty()) {
    const std::string& name = header_.backingFile;
    std::string directory = path.find('/') == std::string::npos ? "" : path.substr(0, path.find_last_of('/') + 1);
    backingPath_ = name[0] == '/' ? name : directory + name;
  }
  return {};
}

Qcow2Image::~Qcow2Image() {
  if (!writeback_) return;
  auto written = writeback_->runBlocking();
  if (!written) log::error("{}: {}", path_, written.error().message);
}

std::string Qcow2Image::serial() const {
  std::string name = path_.substr(path_.find_last_of('/') + 1);
  return name.size() > 20 ? name.substr(name.size() - 20) : name;
}

// ---- scheduling ----

void Qcow2Image::completeLater(IoCompletion done, int result) {
  loop_.post([done = std::move(done), result] { done(result); });
}

bool Qcow2Image::rangeValid(uint64_t offset, uint64_t length) const {
  return offset + length >= offset && offset + length <= header_.size;
}

bool Qcow2Image::refuseWhenQueueFull(IoCompletion& done) {
  if (waiting_.size() < kMaxWaitingRequests) return false;
  if (!warnedQueueFull_) {
    log::warn("{}: {} requests already wait; refusing more with EAGAIN", path_, kMaxWaitingRequests);
    warnedQueueFull_ = true;
  }
  completeLater(std::move(done), -EAGAIN);
  return true;
}

void Qcow2Image::submit(std::function<bool()> attempt) {
  if (!waiting_.empty() || !attempt()) waiting_.push_back(std::move(attempt));
}

void Qcow2Image::pump() {
  if (pumping_) return;
  pumping_ = true;
  while (!waiting_.empty()) {
    auto attempt = std::move(waiting_.front());
    waiting_.pop_front();
    if (!attempt()) {
      waiting_.push_front(std::move(attempt));
      break;
    }
  }
  pumping_ = false;
}

bool Qcow2Image::touchesBusy(uint64_t offset, uint64_t length) const {
  if (busyClusters_.empty() || length == 0) return false;
  for (uint64_t cluster = offset >> header_.clusterBits; cluster <= (offset + length - 1) >> header_.clusterBits;
       ++cluster) {
    if (busyClusters_.count(cluster) != 0) return true;
  }
  return false;
}

bool Qcow2Image::awaitMetadata(uint64_t offset, uint64_t length, bool mayAllocate) {
  if (length == 0) return false;
  const uint64_t first = offset >> header_.clusterBits;
  const uint64_t last = (offset + length - 1) >> header_.clusterBits;
  // Only the first kAwaitedTables tables are awaited.
  auto l2 = meta_->missingL2Table(first, std::min(last, first + kAwaitedTables * header_.l2Entries() - 1));
  if (l2 && failedTables_.count(*l2) == 0) {
    loadTable(qcow2::Metadata::TableKind::L2, *l2);
    return true;
  }
  // Allocation searches from the hint; with the blocks for the request's worth
  // of clusters there in memory, it normally finds its run without reading.
  if (mayAllocate) {
    const uint64_t hint = meta_->freeClusterHint();
    return awaitRefblocks(hint, hint + std::min(last - first + 1, kAwaitedTables * header_.refcountsPerBlock()));
  }
  return false;
}

bool Qcow2Image::awaitRefblocks(uint64_t firstCluster, uint64_t lastCluster) {
  bool waiting = false;
  for (uint64_t block : meta_->missingRefblocks(firstCluster, lastCluster, kAwaitedTables)) {
    if (failedTables_.count(block) != 0) continue;
    loadTable(qcow2::Metadata::TableKind::Refblock, block);
    waiting = true;
  }
  return waiting;
}

bool Qcow2Image::awaitMetadataRoom(int& error) {
  if (!meta_->writebackDue()) return false;
  if (writebackError_ < 0) {
    // The write-back this request waited for failed: the request fails with
    // its error, and the next one tries again (no retry loop without requests).
    error = std::exchange(writebackError_, 0);
    return false;
  }
  if (!exclusive_) {
    // The same drain-then-write-back a flush does, in dependency order; it
    // only makes the changes durable earlier than the guest asked.
    IoCompletion done = [this](int result) {
      if (result >= 0) return;
      log::error("{}: writing back dirty metadata: {}", path_, std::strerror(-result));
      writebackError_ = result;
    };
    tryFlush(done);
  }
  return true;
}

void Qcow2Image::loadTable(qcow2::Metadata::TableKind kind, uint64_t offset) {
  if (!loadingTables_.insert(offset).second) return;  // already on its way
  // Counted as active so a flush never writes tables back while a read of one is in flight.
  ++active_;
  auto bytes = std::make_shared<std::vector<uint8_t>>(header_.clusterSize());
  metadataFile().readv(offset, {iovec{bytes->data(), bytes->size()}}, [this, kind, offset, bytes](int result) {
    loadingTables_.erase(offset);
    if (result < 0) {
      log::error("{}: reading metadata at 0x{:x}: {}", path_, offset, std::strerror(-result));
      failedTables_.insert(offset);
    } else {
      meta_->insertTable(kind, offset, std::move(*bytes));
    }
    finishActive();
  });
}

Qcow2Image::PendingPtr Qcow2Image::begin(IoCompletion done) {
  ++active_;
  auto pending = std::make_shared<Pending>();
  pending->done = std::move(done);
  return pending;
}

void Qcow2Image::finishPart(const PendingPtr& pending, int result) {
  if (result < 0 && pending->status == 0) pending->status = result;
  if (--pending->remaining > 0) return;
  auto done = std::move(pending->done);
  done(pending->status);
  finishActive();
}

void Qcow2Image::finishActive() {
  --active_;
  if (exclusive_ && !flushStarted_ && active_ == 0) startFlushPhases();
  pump();
}

void Qcow2Image::releaseInitialPart(const PendingPtr& pending) {
  if (pending->remaining > 1) {
    --pending->remaining;
    return;
  }
  // Nothing asynchronous was issued: complete on a later loop iteration.
  loop_.post([this, pending] { finishPart(pending, 0); });
}

bool Qcow2Image::hostClusterValid(uint64_t hostOffset) const {
  return hostOffset >= header_.clusterSize() && hostOffset < meta_->fileEnd();
}

Result<ClusterMapping> Qcow2Image::mapping(uint64_t guestCluster) {
  auto entry = meta_->l2Entry(guestCluster);
  if (!entry) return entry.error();
  auto decoded = qcow2::decodeL2Entry(*entry, header_);
  if (!decoded) {
    log::error("{}: corrupt image: guest cluster {}: {}", path_, guestCluster, decoded.error().message);
    return decoded.error();
  }
  const ClusterMapping& m = *decoded;
  if ((m.kind == ClusterKind::Normal || m.kind == ClusterKind::Zero) && m.hostOffset != 0 &&
      !hostClusterValid(m.hostOffset)) {
    log::error("{}: corrupt image: guest cluster {} maps to offset 0x{:x} outside the file", path_, guestCluster,
               m.hostOffset);
    return Error{"cluster offset outside the file"};
  }
  if (m.kind == ClusterKind::Compressed &&
      (m.hostOffset >= meta_->fileEnd() || m.compressedBytes > 2 * header_.clusterSize() + 512)) {
    log::error("{}: corrupt image: bad compressed cluster descriptor for guest cluster {}", path_, guestCluster);
    return Error{"bad compressed cluster descriptor"};
  }
  return decoded;
}

// ---- reads ----

void Qcow2Image::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeValid(offset, totalLength(buffers))) return completeLater(std::move(done), -EINVAL);
  // Straight through when nothing waits (no queue entry to allocate); a failed attempt leaves its arguments intact.
  if (waiting_.empty() && tryRead(offset, buffers, done)) return;
  if (refuseWhenQueueFull(done)) return;
  waiting_.push_back([this, offset, buffers = std::move(buffers), done = std::move(done)]() mutable {
    return tryRead(offset, buffers, done);
  });
}

bool Qcow2Image::tryRead(uint64_t offset, std::vector<iovec>& buffers, IoCompletion& done) {
  const uint64_t length = totalLength(buffers);
  if (exclusive_ || touchesBusy(offset, length)) return false;
  const uint64_t cluster = offset >> header_.clusterBits;
  if (length > 0 && cluster == (offset + length - 1) >> header_.clusterBits) {
    // The common guest read, inside one allocated cluster whose L2 table is in
    // memory: one table lookup, straight to the file. Anything else (and a
    // corrupt entry, which the general path reports) takes the general path.
    if (auto entry = meta_->cachedL2Entry(cluster)) {
      auto m = qcow2::decodeL2Entry(*entry, header_);
      if (m && m->kind == ClusterKind::Normal && hostClusterValid(m->hostOffset)) {
        readDirect(m->hostOffset + (offset & (header_.clusterSize() - 1)), buffers, done);
        return true;
      }
    }
  }
  if (awaitMetadata(offset, length, false)) return false;
  auto pending = begin(std::move(done));
  issueRead(offset, buffers, pending);
  releaseInitialPart(pending);
  return true;
}

void Qcow2Image::readDirect(uint64_t hostOffset, std::vector<iovec>& buffers, IoCompletion& done) {
  // The completion is parked in a recycled slot, so the callback handed to the
  // file is two pointers (no allocation per request).
  DirectRead* read = directReads_.take();
  read->done = std::move(done);
  ++active_;
  file_->readv(hostOffset, std::move(buffers), [this, read](int result) {
    IoCompletion finished = std::move(read->done);
    directReads_.give(read);
    finished(result);
    finishActive();
  });
}

void Qcow2Image::readCompressed(const ClusterMapping& m, uint64_t inCluster, std::vector<iovec> target,
                                const PendingPtr& pending) {
  // Compressed data sits at any byte offset: it goes through the buffered file.
  ++pending->remaining;
  auto input = std::make_shared<std::vector<uint8_t>>(m.compressedBytes);
  const uint64_t host = m.hostOffset;
  metadataFile().readv(host, {iovec{input->data(), input->size()}},
                       [this, host, inCluster, input, target = std::move(target), pending](int result) {
                         if (result < 0) {
                           log::error("{}: reading compressed cluster at 0x{:x}: {}", path_, host, std::strerror(-result));
                           return finishPart(pending, result);
                         }
                         // Completions run one at a time on the loop: the one-cluster cache is the scratch space.
                         compressedCacheOffset_ = UINT64_MAX;
                         compressedCache_.resize(header_.clusterSize());
                         auto inflated = inflateRaw(input->data(), input->size(), compressedCache_.data(),
                                                    compressedCache_.size());
                         if (!inflated) {
                           log::error("{}: compressed cluster at 0x{:x}: {}", path_, host, inflated.error().message);
                           return finishPart(pending, -EIO);
                         }
                         compressedCacheOffset_ = host;
                         copyToBuffers(target, 0, compressedCache_.data() + inCluster, totalLength(target));
                         finishPart(pending, 0);
                       });
}

void Qcow2Image::issueRead(uint64_t offset, const std::vector<iovec>& buffers, const PendingPtr& pending) {
  struct Run {
    bool fromFile;
    uint64_t source;  // host offset (file) or guest offset (backing)
    size_t bufferOffset;
    size_t length;
  };
  std::vector<Run> runs;
  const uint64_t clusterSize = header_.clusterSize();
  const uint64_t end = offset + totalLength(buffers);
  size_t bufferOffset = 0;
  for (uint64_t pos = offset; pos < end;) {
    uint64_t inCluster = pos & (clusterSize - 1);
    size_t length = static_cast<size_t>(std::min(clusterSize - inCluster, end - pos));
    auto m = mapping(pos >> header_.clusterBits);
    if (!m) {
      pending->status = -EIO;
      return;
    }
    switch (m->kind) {
      case ClusterKind::Normal: {
        uint64_t host = m->hostOffset + inCluster;
        if (!runs.empty() && runs.back().fromFile && runs.back().source + runs.back().length == host &&
            runs.back().bufferOffset + runs.back().length == bufferOffset) {
          runs.back().length += length;
        } else {
          runs.push_back(Run{true, host, bufferOffset, length});
        }
        break;
      }
      case ClusterKind::Unallocated:
        if (backing_) {
          if (!runs.empty() && !runs.back().fromFile && runs.back().source + runs.back().length == pos &&
              runs.back().bufferOffset + runs.back().length == bufferOffset) {
            runs.back().length += length;
          } else {
            runs.push_back(Run{false, pos, bufferOffset, length});
          }
          break;
        }
        [[fallthrough]];
      case ClusterKind::Zero:
        zeroBuffers(buffers, bufferOffset, length);
        break;
      case ClusterKind::Compressed:
        if (compressedCacheOffset_ == m->hostOffset) {
          copyToBuffers(buffers, bufferOffset, compressedCache_.data() + inCluster, length);
        } else {
          readCompressed(*m, inCluster, sliceBuffers(buffers, bufferOffset, length), pending);
        }
        break;
    }
    pos += length;
    bufferOffset += length;
  }
  for (const Run& run : runs) {
    auto part = [this, pending](int result) { finishPart(pending, result); };
    if (run.fromFile) {
      ++pending->remaining;
      file_->readv(run.source, sliceBuffers(buffers, run.bufferOffset, run.length), std::move(part));
      continue;
    }
    // The backing image may be smaller than this one; beyond its end reads are zeroes.
    uint64_t backingSize = backing_->sizeBytes();
    size_t inBacking = run.source >= backingSize ? 0 : static_cast<size_t>(std::min<uint64_t>(run.length, backingSize - run.source));
    if (inBacking < run.length) zeroBuffers(buffers, run.bufferOffset + inBacking, run.length - inBacking);
    if (inBacking > 0) {
      ++pending->remaining;
      backing_->readv(run.source, sliceBuffers(buffers, run.bufferOffset, inBacking), std::move(part));
    }
  }
}

// ---- writes ----

void Qcow2Image::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (options_.readOnly) return completeLater(std::move(done), -EROFS);
  if (!rangeValid(offset, totalLength(buffers))) return completeLater(std::move(done), -EINVAL);
  if (waiting_.empty() && tryWrite(offset, buffers, done)) return;
  if (refuseWhenQueueFull(done)) return;
  waiting_.push_back([this, offset, buffers = std::move(buffers), done = std::move(done)]() mutable {
    return tryWrite(offset, buffers, done);
  });
}

bool Qcow2Image::tryWrite(uint64_t offset, std::vector<iovec>& buffers, IoCompletion& done) {
  const uint64_t length = totalLength(buffers);
  if (exclusive_ || touchesBusy(offset, length)) return false;
  int refused = 0;
  if (awaitMetadataRoom(refused)) return false;
  if (refused < 0) {
    completeLater(std::move(done), refused);
    return true;
  }
  if (awaitMetadata(offset, length, true)) return false;
  auto pending = begin(std::move(done));
  issueWrite(offset, buffers, pending);
  releaseInitialPart(pending);
  return true;
}

void Qcow2Image::issueWrite(uint64_t offset, const std::vector<iovec>& buffers, const PendingPtr& pending) {
  const uint64_t clusterSize = header_.clusterSize();
  const uint64_t end = offset + totalLength(buffers);
  struct Direct {
    uint64_t host;
    size_t bufferOffset;
    size_t length;
  };
  std::vector<Direct> directs;
  std::shared_ptr<Allocation> allocation;
  std::vector<std::shared_ptr<Allocation>> allocations;
  size_t bufferOffset = 0;
  for (uint64_t pos = offset; pos < end;) {
    uint64_t cluster = pos >> header_.clusterBits;
    uint64_t inCluster = pos & (clusterSize - 1);
    size_t length = static_cast<size_t>(std::min(clusterSize - inCluster, end - pos));
    auto m = mapping(cluster);
    if (!m) {
      pending->status = -EIO;
      return;
    }
    if (m->kind == ClusterKind::Normal && m->copied) {
      allocation.reset();
      uint64_t host = m->hostOffset + inCluster;
      if (!directs.empty() && directs.back().host + directs.back().length == host &&
          directs.back().bufferOffset + directs.back().length == bufferOffset) {
        directs.back().length += length;
      } else {
        directs.push_back(Direct{host, bufferOffset, length});
      }
    } else {
      if (!allocation || allocation->clusterCount >= meta_->maxAllocationRun()) {
        allocation = std::make_shared<Allocation>();
        allocation->firstCluster = cluster;
        allocation->dataOffset = pos;
        allocation->bufferOffset = bufferOffset;
        allocations.push_back(allocation);
      }
      ++allocation->clusterCount;
      allocation->dataLength += length;
      allocation->oldMappings.push_back(*m);
    }
    pos += length;
    bufferOffset += length;
  }
  for (const Direct& d : directs) {
    ++pending->remaining;
    file_->writev(d.host, sliceBuffers(buffers, d.bufferOffset, d.length),
                  [this, pending](int result) { finishPart(pending, result); });
  }
  for (auto& a : allocations) startAllocation(a, buffers, pending);
}

void Qcow2Image::startAllocation(std::shared_ptr<Allocation> a, const std::vector<iovec>& buffers,
                                 const PendingPtr& pending) {
  const uint64_t clusterSize = header_.clusterSize();
  auto host = meta_->allocateClusters(a->clusterCount);
  if (!host) {
    log::error("{}", host.error().message);
    if (pending->status == 0) pending->status = -ENOSPC;
    return;
  }
  a->hostOffset = *host;
  for (uint64_t i = 0; i < a->clusterCount; ++i) busyClusters_.insert(a->firstCluster + i);
  ++pending->remaining;

  // Copy-on-write: the parts of the first and last cluster the write does not cover.
  const uint64_t runStart = a->firstCluster * clusterSize;
  const uint64_t runEnd = runStart + a->clusterCount * clusterSize;
  const uint64_t dataEnd = a->dataOffset + a->dataLength;
  a->head = std::make_unique<AlignedBuffer>(a->dataOffset - runStart);
  a->tail = std::make_unique<AlignedBuffer>(runEnd - dataEnd);
  a->writeBuffers.clear();
  if (a->head->size() > 0) a->writeBuffers.push_back(iovec{a->head->data(), a->head->size()});
  for (const auto& b : sliceBuffers(buffers, a->bufferOffset, a->dataLength)) a->writeBuffers.push_back(b);
  if (a->tail->size() > 0) a->writeBuffers.push_back(iovec{a->tail->data(), a->tail->size()});

  auto copied = std::make_shared<Pending>();
  copied->done = [this, a, pending](int result) {
    if (result < 0) return finishAllocation(a, result, pending);
    file_->writev(a->hostOffset, a->writeBuffers,
                  [this, a, pending](int written) { finishAllocation(a, written, pending); });
  };
  // The copy reads go through the normal read path with the old mappings still
  // in place; the clusters are busy, so nothing else changes them meanwhile.
  ++active_;  // balanced by finishPart on `copied`
  if (a->head->size() > 0) issueRead(runStart, {iovec{a->head->data(), a->head->size()}}, copied);
  if (a->tail->size() > 0) issueRead(dataEnd, {iovec{a->tail->data(), a->tail->size()}}, copied);
  releaseInitialPart(copied);
}

void Qcow2Image::finishAllocation(const std::shared_ptr<Allocation>& a, int result, const PendingPtr& pending) {
  const uint64_t clusterSize = header_.clusterSize();
  if (result >= 0) {
    for (uint64_t i = 0; i < a->clusterCount; ++i) {
      auto set = setClusterEntry(a->firstCluster + i, (a->hostOffset + i * clusterSize) | qcow2::kEntryCopied,
                                 a->oldMappings[i]);
      if (!set) {
        log::error("{}", set.error().message);
        result = -EIO;
        // The clusters not yet linked are leaked; release them.
        meta_->releaseLater(a->hostOffset + i * clusterSize, (a->clusterCount - i) * clusterSize);
        break;
      }
    }
  } else {
    meta_->releaseLater(a->hostOffset, a->clusterCount * clusterSize);
  }
  for (uint64_t i = 0; i < a->clusterCount; ++i) busyClusters_.erase(a->firstCluster + i);
  finishPart(pending, result);
}

Result<void> Qcow2Image::setClusterEntry(uint64_t guestCluster, uint64_t entry, const ClusterMapping& old) {
  auto set = meta_->setL2Entry(guestCluster, entry);
  if (!set) return set;
  // The old host cluster is released only after the new entry is durable.
  if ((old.kind == ClusterKind::Normal || old.kind == ClusterKind::Zero) && old.hostOffset != 0) {
    meta_->releaseLater(old.hostOffset, header_.clusterSize());
  } else if (old.kind == ClusterKind::Compressed) {
    meta_->releaseLater(old.hostOffset, old.compressedBytes);
  }
  return {};
}

// ---- discard and write-zeroes ----

void Qcow2Image::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (options_.readOnly) return completeLater(std::move(done), -EROFS);
  if (!rangeValid(offset, length)) return completeLater(std::move(done), -EINVAL);
  if (refuseWhenQueueFull(done)) return;
  submitDiscardOrZero(ClearRange{offset, length, false, std::move(done)});
}

void Qcow2Image::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (options_.readOnly) return completeLater(std::move(done), -EROFS);
  if (!rangeValid(offset, length)) return completeLater(std::move(done), -EINVAL);
  if (refuseWhenQueueFull(done)) return;
  submitDiscardOrZero(ClearRange{offset, length, true, std::move(done)});
}

void Qcow2Image::submitDiscardOrZero(ClearRange range) {
  const uint64_t clusterSize = header_.clusterSize();
  const uint64_t end = range.offset + range.length;
  // Whole clusters change their L2 entry; the last cluster counts as whole when
  // the range reaches the end of the disk.
  range.firstWhole = (range.offset + clusterSize - 1) >> header_.clusterBits;
  range.nextWhole = range.firstWhole;
  range.endWhole = end == header_.size ? (end + clusterSize - 1) >> header_.clusterBits : end >> header_.clusterBits;
  submit([this, range = std::move(range)]() mutable { return tryDiscardOrZero(range); });
}

bool Qcow2Image::tryDiscardOrZero(ClearRange& range) {
  const uint64_t offset = range.offset;
  const uint64_t length = range.length;
  const bool zero = range.zero;
  if (exclusive_ || touchesBusy(offset, length)) return false;
  if (range.nextWhole == range.firstWhole && awaitMetadata(offset, length, zero)) return false;
  // Discarded clusters read as zeroes when there is a backing file; without one
  // an unallocated cluster already does.
  const uint64_t newEntry = (zero || backing_) ? qcow2::kL2ZeroFlag : 0;
  // A huge range goes kAwaitedTables L2 tables at a time, each step's tables
  // read asynchronously, and waits for a write-back whenever the tables it
  // dirtied outgrow their bound (the request stays at the head of the queue).
  const uint64_t perStep = kAwaitedTables * header_.l2Entries();
  while (range.nextWhole < range.endWhole && range.status == 0) {
    if (awaitMetadataRoom(range.status)) return false;
    if (range.status < 0) break;
    const uint64_t stepEnd = std::min(range.endWhole, (range.nextWhole / perStep + 1) * perStep);
    if (awaitMetadata(range.nextWhole << header_.clusterBits, (stepEnd - range.nextWhole) << header_.clusterBits,
                      zero)) {
      return false;
    }
    for (; range.nextWhole < stepEnd; ++range.nextWhole) {
      auto m = mapping(range.nextWhole);
      if (!m) {
        range.status = -EIO;
        break;
      }
      bool alreadyZero = m->kind == ClusterKind::Zero && m->hostOffset == 0;
      bool alreadyUnallocated = m->kind == ClusterKind::Unallocated && newEntry == 0;
      if (alreadyZero || alreadyUnallocated || (m->kind == ClusterKind::Unallocated && !backing_)) continue;
      auto set = setClusterEntry(range.nextWhole, newEntry, *m);
      if (!set) {
        log::error("{}", set.error().message);
        range.status = -EIO;
        break;
      }
    }
  }
  auto pending = begin(std::move(range.done));
  pending->status = range.status;
  const uint64_t clusterSize = header_.clusterSize();
  const uint64_t end = offset + length;
  const uint64_t firstWhole = range.firstWhole;
  const uint64_t endWhole = range.endWhole;
  if (zero && pending->status == 0) {
    // Partial clusters at either end get real zeroes written, unless they already read as zero.
    auto zeroPartial = [&](uint64_t from, uint64_t to) {
      if (from >= to) return;
      auto m = mapping(from >> header_.clusterBits);
      if (!m) {
        pending->status = -EIO;
        return;
      }
      if (m->kind == ClusterKind::Zero || (m->kind == ClusterKind::Unallocated && !backing_)) return;
      issueWrite(from, {iovec{zeroCluster_->data(), static_cast<size_t>(to - from)}}, pending);
    };
    if (firstWhole >= endWhole) {
      // The range sits inside one cluster or straddles a single boundary.
      uint64_t boundary = std::min(end, (offset | (clusterSize - 1)) + 1);
      zeroPartial(offset, boundary);
      zeroPartial(boundary, end);
    } else {
      zeroPartial(offset, std::min(end, firstWhole * clusterSize));
      zeroPartial(std::max(offset, endWhole * clusterSize), end);
    }
  }
  releaseInitialPart(pending);
  return true;
}

// ---- flush ----

void Qcow2Image::flush(IoCompletion done) {
  if (options_.readOnly) return completeLater(std::move(done), 0);
  if (refuseWhenQueueFull(done)) return;
  submit([this, done = std::move(done)]() mutable { return tryFlush(done); });
}

bool Qcow2Image::tryFlush(IoCompletion& done) {
  if (exclusive_) return false;
  exclusive_ = true;
  flushStarted_ = false;
  flushDone_ = std::move(done);
  if (active_ == 0) {
    // Start on the next loop iteration so the caller is never re-entered.
    flushStarted_ = true;
    loop_.post([this] { startFlushPhases(); });
  }
  return true;
}

void Qcow2Image::startFlushPhases() {
  flushStarted_ = true;
  writeback_->start([this](int result) { finishFlush(result); });
}

void Qcow2Image::finishFlush(int result) {
  if (result >= 0) writebackError_ = 0;  // any write-back that worked clears an earlier failure
  exclusive_ = false;
  flushStarted_ = false;
  auto done = std::move(flushDone_);
  done(result);
  pump();
}

// ---- block status ----

Result<Extent> Qcow2Image::blockStatus(uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= header_.size) return Error{path_ + ": block status past the end of the image"};
  length = std::min(length, header_.size - offset);
  const uint64_t clusterSize = header_.clusterSize();
  std::optional<ExtentKind> kind;
  uint64_t covered = 0;
  while (covered < length) {
    uint64_t pos = offset + covered;
    auto m = mapping(pos >> header_.clusterBits);
    if (!m) return Error{path_ + ": " + m.error().message};
    ExtentKind here = m->kind == ClusterKind::Unallocated ? ExtentKind::Unallocated
                      : m->kind == ClusterKind::Zero      ? ExtentKind::Zero
                                                          : ExtentKind::Data;
    if (kind && *kind != here) break;
    kind = here;
    covered += std::min(clusterSize - (pos & (clusterSize - 1)), length - covered);
  }
  return Extent{*kind, covered};
}

}  // namespace strata::storage
