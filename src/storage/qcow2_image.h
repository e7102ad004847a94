// Qcow2Image: a DiskImage in the qcow2 version 3 format — sparse allocation,
// zero clusters, discard, compressed clusters (read), and backing files for
// linked clones (reads of unallocated clusters fall through to the backing
// image; partial writes copy the rest of the cluster up first).
//
// Concurrency model: requests run on the EventLoop thread. A request whose L2
// tables (or, for a write, the refcount block where allocation starts) are not
// in memory waits while they are read asynchronously; requests already in
// flight carry on. Reads and in-place
// writes go to the file asynchronously; a write that needs a new cluster marks
// that guest cluster busy until its data is written and its L2 entry set, and
// requests touching a busy cluster wait in FIFO order. Compressed clusters are
// read and inflated asynchronously too. A flush is exclusive: it drains
// everything in flight, then writes metadata back asynchronously in dependency
// order with a data sync after each phase (see qcow2::Writeback); the image
// runs the same write-back by itself when dirty tables outgrow their bound.
// At most kMaxWaitingRequests requests wait at once; more get EAGAIN.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/event_loop.h"
#include "base/node_pool.h"
#include "storage/disk_image.h"
#include "storage/qcow2_format.h"
#include "storage/qcow2_metadata.h"
#include "storage/qcow2_writeback.h"
#include "storage/raw_image.h"

namespace strata::storage {

class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_;
};

class Qcow2Image final : public DiskImage {
 public:
  // Requests that may wait (behind a busy cluster, a table read or a flush)
  // before further ones complete with -EAGAIN: a bound on the memory a caller
  // that never waits for completions can make the image hold. Far above what
  // a virtio-blk device (256 per queue) or an NBD connection (64) has in flight.
  static constexpr size_t kMaxWaitingRequests = 4096;

  static Result<std::unique_ptr<Qcow2Image>> open(const std::string& path, const DiskOptions& options,
                                                  EventLoop& loop, detail::ChainContext& chain);
  // A new overlay (writeNewImage) on the file the caller opened read-write,
  // over `backing`, an image this process has open already: a snapshot of a
  // running VM puts it on top of the image the VM wrote, which from then on is
  // only read. Takes `backing` only when it succeeds.
  static Result<std::unique_ptr<Qcow2Image>> openOverlay(const std::string& path, UniqueFd file,
                                                         std::unique_ptr<DiskImage>& backing, EventLoop& loop);
  // Writes dirty metadata back synchronously; callers should flush() first to
  // learn about errors.
  ~Qcow2Image() override;

  uint64_t sizeBytes() const override { return header_.size; }
  bool readOnly() const override { return options_.readOnly; }
  std::string serial() const override;

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

  ImageFormat format() const override { return ImageFormat::Qcow2; }
  const std::string& path() const override { return path_; }
  Result<Extent> blockStatus(uint64_t offset, uint64_t length) override;
  DiskImage* backing() override { return backing_.get(); }
  uint64_t allocatedBytes() const override { return file_->allocatedBytes(); }

  const qcow2::Header& header() const { return header_; }
  // The tables in memory (tests check the cache and dirty bounds).
  const qcow2::Metadata& metadata() const { return *meta_; }
  // The backing file name as stored, and as resolved relative to this image.
  const std::string& backingFileName() const { return header_.backingFile; }
  const std::string& backingPath() const { return backingPath_; }

 private:
  struct Pending;
  struct Allocation;
  // A discard or write-zeroes, which may run in several steps (see tryDiscardOrZero).
  struct ClearRange {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool zero = false;
    IoCompletion done;
    uint64_t firstWhole = 0;  // whole clusters [firstWhole, endWhole) change their L2 entry
    uint64_t endWhole = 0;
    uint64_t nextWhole = 0;   // the first one not done yet
    int status = 0;
  };
  struct DirectRead {
    IoCompletion done;
  };
  using PendingPtr = std::shared_ptr<Pending>;

  Qcow2Image(std::string path, const DiskOptions& options, EventLoop& loop);
  // The header and tables from file_ (after the open checks), and where the backing file is.
  Result<void> loadMetadata();
  // Request scheduling.
  void submit(std::function<bool()> attempt);
  // Completes `done` with -EAGAIN (true) when kMaxWaitingRequests already wait.
  bool refuseWhenQueueFull(IoCompletion& done);
  void pump();
  bool touchesBusy(uint64_t offset, uint64_t length) const;
  PendingPtr begin(IoCompletion done);
  void finishPart(const PendingPtr& pending, int result);
  // One unit of `active_` work ended: maybe start a waiting flush, run waiting requests.
  void finishActive();
  void releaseInitialPart(const PendingPtr& pending);
  bool rangeValid(uint64_t offset, uint64_t length) const;
  // Starts reading a table the request needs that is not in memory; true when
  // the request must wait for it (it is retried when the read completes).
  bool awaitMetadata(uint64_t offset, uint64_t length, bool mayAllocate);
  bool awaitRefblocks(uint64_t firstCluster, uint64_t lastCluster);
  // True when dirty metadata outgrew its bound (Metadata::writebackDue): a
  // write-back is started and the request must wait for it. When the previous
  // one failed, returns false with `error` set instead.
  bool awaitMetadataRoom(int& error);
  void loadTable(qcow2::Metadata::TableKind kind, uint64_t offset);
  RawImage& metadataFile() { return metaFile_ ? *metaFile_ : *file_; }
  void completeLater(IoCompletion done, int result);

  bool tryRead(uint64_t offset, std::vector<iovec>& buffers, IoCompletion& done);
  // Reads from the file at hostOffset and completes `done` (a read inside one cluster).
  void readDirect(uint64_t hostOffset, std::vector<iovec>& buffers, IoCompletion& done);
  bool tryWrite(uint64_t offset, std::vector<iovec>& buffers, IoCompletion& done);
  void submitDiscardOrZero(ClearRange range);
  bool tryDiscardOrZero(ClearRange& range);
  bool tryFlush(IoCompletion& done);

  // Maps and issues the reads for [offset, offset+len) into buffers; parts join `pending`.
  void issueRead(uint64_t offset, const std::vector<iovec>& buffers, const PendingPtr& pending);
  void issueWrite(uint64_t offset, const std::vector<iovec>& buffers, const PendingPtr& pending);
  void startAllocation(std::shared_ptr<Allocation> allocation, const std::vector<iovec>& buffers,
                       const PendingPtr& pending);
  void finishAllocation(const std::shared_ptr<Allocation>& allocation, int result, const PendingPtr& pending);
  Result<void> setClusterEntry(uint64_t guestCluster, uint64_t entry, const qcow2::ClusterMapping& old);
  Result<qcow2::ClusterMapping> mapping(uint64_t guestCluster);
  bool hostClusterValid(uint64_t hostOffset) const;
  // Reads and inflates a compressed cluster, then copies [inCluster, +length of target) into target.
  void readCompressed(const qcow2::ClusterMapping& mapping, uint64_t inCluster, std::vector<iovec> target,
                      const PendingPtr& pending);

  void startFlushPhases();
  void finishFlush(int result);

  std::string path_;
  DiskOptions options_;
  EventLoop& loop_;
  qcow2::Header header_;
  int metadataFd_ = -1;  // file_'s fd, or metaFile_'s when file_ uses O_DIRECT
  std::unique_ptr<qcow2::Metadata> meta_;
  std::unique_ptr<qcow2::Writeback> writeback_;  // writable images only
  std::string backingPath_;
  std::unique_ptr<DiskImage> backing_;
  std::unique_ptr<AlignedBuffer> zeroCluster_;
  std::vector<uint8_t> compressedCache_;  // the last decompressed cluster
  uint64_t compressedCacheOffset_ = UINT64_MAX;

  std::deque<std::function<bool()>> waiting_;
  std::unordered_set<uint64_t> busyClusters_;
  std::unordered_set<uint64_t> loadingTables_;  // table offsets being read
  std::unordered_set<uint64_t> failedTables_;   // reads that failed: the synchronous path reports them
  unsigned active_ = 0;
  bool exclusive_ = false;       // a flush owns the image
  bool flushStarted_ = false;
  IoCompletion flushDone_;
  bool pumping_ = false;
  bool warnedQueueFull_ = false;  // the EAGAIN refusals are logged once
  int writebackError_ = 0;        // a bounded write-back failed: for the request waiting on it
  NodePool<DirectRead> directReads_;

  // Declared last, so destroyed first: their rings wait for operations still in
  // the kernel before the tables and buffers above those operations use go.
  std::unique_ptr<RawImage> file_;
  std::unique_ptr<RawImage> metaFile_;  // with O_DIRECT: a buffered twin for small unaligned metadata I/O
};

}  // namespace strata::storage
