// IoRing: an io_uring instance whose completions are delivered on an EventLoop.
// The ring's completion eventfd is watched by the loop, so every callback runs on
// the loop thread; backends (RawImage, Qcow2Image) build their requests on it.
// Operations queued by completion callbacks go to the kernel in one batch, so
// files that share a ring (a pool's PVs) share that batch and its wakeup.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::storage {

class IoRing {
 public:
  // Receives the raw io_uring result: bytes transferred, 0, or a negative errno.
  using Completion = std::function<void(int result)>;

  static Result<std::unique_ptr<IoRing>> create(EventLoop& loop, unsigned entries = 128);
  // Waits for operations still in the kernel (their buffers may be in use) but
  // does not run their callbacks.
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // The iovec array must stay valid until `done` runs.
  void readv(int fd, const iovec* iov, unsigned count, uint64_t offset, Completion done);
  // rwFlags are pwritev2's RWF_* flags for this write alone (RWF_DSYNC: durable
  // when it completes, without opening the file O_DSYNC).
  void writev(int fd, const iovec* iov, unsigned count, uint64_t offset, Completion done, int rwFlags = 0);
  void fdatasync(int fd, Completion done);
  void fallocate(int fd, int mode, uint64_t offset, uint64_t length, Completion done);

  // Reads of at least `bytes` go to the kernel's worker threads (IOSQE_ASYNC)
  // instead of being tried inline: a large buffered copy then runs on another
  // core, in parallel with the others, rather than one after another inside this
  // thread's io_uring_enter. Writes are always tried inline: the kernel's workers
  // run buffered writes to one file one at a time anyway, so handing them over
  // only adds a thread switch. 0 (the default) keeps everything inline.
  void setReadOffloadThreshold(size_t bytes) { readOffloadThreshold_ = bytes; }

  // For a file that stops using a shared ring (its owner goes away): waits for
  // the file's operations still in the kernel and drops them, and those not yet
  // submitted, without running their callbacks. Other files' completions seen
  // meanwhile are delivered from the loop as usual.
  void forget(int fd);

  // Operations beyond the ring's capacity wait in a backlog. It is bounded: past
  // the limit an operation is refused and its callback gets -EAGAIN (from the
  // loop, like any completion), so a caller that issues without bound (a
  // misbehaving client upstream) costs an error, not host memory. The default
  // is far above what the callers' own bounds let them queue (virtio-blk holds
  // at most its queue size of requests per disk).
  static constexpr size_t kDefaultBacklogLimit = 65536;
  void setBacklogLimit(size_t operations) { backlogLimit_ = operations; }

  unsigned inFlight() const { return inKernel_ + static_cast<unsigned>(backlog_.size()); }
  EventLoop& loop() { return loop_; }

 private:
  enum class OpKind { Read, Write, Sync, Fallocate };
  struct Operation {
    OpKind kind;
    int fd;
    const iovec* iov;
    unsigned count;
    uint64_t offset;
    uint64_t length;
    int mode;      // fallocate
    int rwFlags;   // writes
    Completion done;
    Operation* prev = nullptr;  // the list of operations in the kernel
    Operation* next = nullptr;
  };
  using Finished = std::vector<std::pair<Operation*, int>>;

  IoRing(EventLoop& loop, UniqueFd eventFd);
  std::unique_ptr<Operation> makeOperation(Operation fields);
  void enqueue(std::unique_ptr<Operation> op);
  bool trySubmit(std::unique_ptr<Operation>& op);
  void submitBacklog();
  void refuse(std::unique_ptr<Operation> op);
  void submitPrepared();
  void reapCompletions();
  void linkInKernel(Operation* op);
  void unlinkInKernel(Operation* op);
  Operation* takeCompletion(io_uring_cqe* cqe);

  EventLoop& loop_;
  UniqueFd eventFd_;
  io_uring ring_{};
  bool ringReady_ = false;
  unsigned capacity_ = 0;  // operations allowed in the kernel at once (keeps the CQ from overflowing)
  unsigned inKernel_ = 0;
  size_t readOffloadThreshold_ = 0;
  bool reaping_ = false;        // completion callbacks are running: batch their submissions
  bool unsubmitted_ = false;    // SQEs prepared but not yet handed to the kernel
  std::vector<std::unique_ptr<Operation>> spare_;  // reused Operation objects
  Finished reapScratch_;
  Operation* inKernelList_ = nullptr;
  Finished deferred_;                 // completions forget() saw, and refusals, delivered at the next reap
  std::vector<Finished*> delivering_;  // batches whose callbacks are running (forget drops from them)
  std::deque<std::unique_ptr<Operation>> backlog_;
  size_t backlogLimit_ = kDefaultBacklogLimit;
  std::shared_ptr<bool> alive_;  // lets a completion callback destroy the ring safely
};

}  // namespace strata::storage
