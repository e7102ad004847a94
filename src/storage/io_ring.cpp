#include "storage/io_ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "base/log.h"

namespace strata::storage {
namespace {

// io_uring operations bypass seccomp, so the ring itself admits only what
// trySubmit prepares (and IOSQE_ASYNC, its one flag) and, once enabled, no
// further io_uring_register calls: a hijacked ring cannot open files or sockets.
Result<void> restrictToOwnOperations(io_uring& ring) {
  std::vector<io_uring_restriction> allowed;
  for (int op : {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE}) {
    io_uring_restriction restriction{};
    restriction.opcode = IORING_RESTRICTION_SQE_OP;
    restriction.sqe_op = static_cast<uint8_t>(op);
    allowed.push_back(restriction);
  }
  io_uring_restriction flags{};
  flags.opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
  flags.sqe_flags = IOSQE_ASYNC;
  allowed.push_back(flags);
  // Debian's liburing 2.3 declares io_uring_register_restrictions() and
  // io_uring_enable_rings() but its shared library does not export them.
  int rc = io_uring_register(static_cast<unsigned>(ring.ring_fd), IORING_REGISTER_RESTRICTIONS, allowed.data(),
                             static_cast<unsigned>(allowed.size()));
  if (rc < 0) return errnoError("IORING_REGISTER_RESTRICTIONS", -rc);
  rc = io_uring_register(static_cast<unsigned>(ring.ring_fd), IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  if (rc < 0) return errnoError("IORING_REGISTER_ENABLE_RINGS", -rc);
  return {};
}

}  // namespace

Result<std::unique_ptr<IoRing>> IoRing::create(EventLoop& loop, unsigned entries) {
  UniqueFd eventFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventFd.valid()) return errnoError("eventfd");
  std::unique_ptr<IoRing> ring(new IoRing(loop, std::move(eventFd)));
  // The ring starts disabled so that it can be restricted before its first use.
  int rc = io_uring_queue_init(entries, &ring->ring_, IORING_SETUP_R_DISABLED);
  if (rc < 0) return errnoError("io_uring_queue_init", -rc);
  ring->ringReady_ = true;
  ring->capacity_ = entries;
  rc = io_uring_register_eventfd(&ring->ring_, ring->eventFd_.get());
  if (rc < 0) return errnoError("io_uring_register_eventfd", -rc);
  if (auto restricted = restrictToOwnOperations(ring->ring_); !restricted) return restricted.error();
  IoRing* self = ring.get();
  auto watched = loop.watch(ring->eventFd_.get(), EPOLLIN, [self](uint32_t) { self->reapCompletions(); });
  if (!watched) return watched.error();
  return ring;
}

IoRing::IoRing(EventLoop& loop, UniqueFd eventFd)
    : loop_(loop), eventFd_(std::move(eventFd)), alive_(std::make_shared<bool>(true)) {}

IoRing::~IoRing() {
  *alive_ = false;
  if (!ringReady_) return;
  loop_.unwatch(eventFd_.get());
  if (unsubmitted_) io_uring_submit(&ring_);  // waiting below must not hang on entries never handed over
  while (inKernel_ > 0) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
    delete takeCompletion(cqe);
  }
  for (auto& [op, result] : deferred_) delete op;
  io_uring_queue_exit(&ring_);
}

void IoRing::linkInKernel(Operation* op) {
  op->prev = nullptr;
  op->next = inKernelList_;
  if (inKernelList_ != nullptr) inKernelList_->prev = op;
  inKernelList_ = op;
  ++inKernel_;
}

void IoRing::unlinkInKernel(Operation* op) {
  (op->prev != nullptr ? op->prev->next : inKernelList_) = op->next;
  if (op->next != nullptr) op->next->prev = op->prev;
  --inKernel_;
}

IoRing::Operation* IoRing::takeCompletion(io_uring_cqe* cqe) {
  auto op = static_cast<Operation*>(io_uring_cqe_get_data(cqe));
  io_uring_cqe_seen(&ring_, cqe);
  unlinkInKernel(op);
  return op;
}

void IoRing::forget(int fd) {
  auto recycle = [&](Operation* op) {
    op->done = nullptr;
    spare_.emplace_back(op);
  };
  for (auto it = backlog_.begin(); it != backlog_.end();) {
    if ((*it)->fd != fd) {
      ++it;
      continue;
    }
    recycle(it->release());
    it = backlog_.erase(it);
  }
  // Completed but not yet called back (the file goes away inside a callback).
  for (Finished* batch : delivering_)
    for (auto& entry : *batch)
      if (entry.first != nullptr && entry.first->fd == fd) recycle(std::exchange(entry.first, nullptr));
  std::erase_if(deferred_, [&](auto& entry) {
    if (entry.first->fd != fd) return false;
    recycle(entry.first);
    return true;
  });
  auto pending = [&] {
    for (Operation* op = inKernelList_; op != nullptr; op = op->next)
      if (op->fd == fd) return true;
    return false;
  };
  if (pending() && unsubmitted_) submitPrepared();
  bool deferredAny = false;
  while (pending()) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
    int result = cqe->res;
    Operation* op = takeCompletion(cqe);
    if (op->fd == fd) {
      recycle(op);
    } else {
      deferred_.emplace_back(op, result);
      deferredAny = true;
    }
  }
  if (deferredAny) {
    // Their eventfd signal may have been consumed already: raise it again.
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(eventFd_.get(), &one, sizeof one);
  }
}

std::unique_ptr<IoRing::Operation> IoRing::makeOperation(Operation fields) {
  if (spare_.empty()) return std::make_unique<Operation>(std::move(fields));
  auto op = std::move(spare_.back());
  spare_.pop_back();
  *op = std::move(fields);
  return op;
}

void IoRing::readv(int fd, const iovec* iov, unsigned count, uint64_t offset, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Read, fd, iov, count, offset, 0, 0, 0, std::move(done)}));
}

void IoRing::writev(int fd, const iovec* iov, unsigned count, uint64_t offset, Completion done, int rwFlags) {
  enqueue(makeOperation(Operation{OpKind::Write, fd, iov, count, offset, 0, 0, rwFlags, std::move(done)}));
}

void IoRing::fdatasync(int fd, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Sync, fd, nullptr, 0, 0, 0, 0, 0, std::move(done)}));
}

void IoRing::fallocate(int fd, int mode, uint64_t offset, uint64_t length, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Fallocate, fd, nullptr, 0, offset, length, mode, 0, std::move(done)}));
}

void IoRing::enqueue(std::unique_ptr<Operation> op) {
  // Keep submission order: nothing overtakes operations already waiting.
  if (backlog_.empty() && trySubmit(op)) return;
  if (backlog_.size() >= backlogLimit_) return refuse(std::move(op));
  backlog_.push_back(std::move(op));
}

void IoRing::refuse(std::unique_ptr<Operation> op) {
  // Delivered by the next reap, as completions are (never from inside the
  // caller's submit), and dropped with the ring or by forget() like them.
  deferred_.emplace_back(op.release(), -EAGAIN);
  uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(eventFd_.get(), &one, sizeof one);
}

bool IoRing::trySubmit(std::unique_ptr<Operation>& op) {
  if (inKernel_ >= capacity_) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The submission queue is full of prepared entries: hand them over, then retry.
    submitPrepared();
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return false;
  }
  switch (op->kind) {
    case OpKind::Read:
      io_uring_prep_readv(sqe, op->fd, op->iov, op->count, op->offset);
      break;
    case OpKind::Write:
      io_uring_prep_writev2(sqe, op->fd, op->iov, op->count, op->offset, op->rwFlags);
      break;
    case OpKind::Sync:
      io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
      break;
    case OpKind::Fallocate:
      io_uring_prep_fallocate(sqe, op->fd, op->mode, static_cast<off_t>(op->offset), static_cast<off_t>(op->length));
      break;
  }
  if (readOffloadThreshold_ > 0 && op->kind == OpKind::Read) {
    size_t bytes = 0;
    for (unsigned i = 0; i < op->count; ++i) bytes += op->iov[i].iov_len;
    if (bytes >= readOffloadThreshold_) io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
  }
  io_uring_sqe_set_data(sqe, op.get());
  linkInKernel(op.release());
  unsubmitted_ = true;
  // Inside completion callbacks, new work is batched into one io_uring_enter at the end.
  if (!reaping_) submitPrepared();
  return true;
}

void IoRing::submitPrepared() {
  if (!unsubmitted_) return;
  int rc = io_uring_submit(&ring_);
  if (rc < 0) {
    // The SQEs stay queued in the ring and go in with the next successful submit.
    log::warn("io_uring_submit: {}", std::strerror(-rc));
    return;
  }
  unsubmitted_ = false;
}

void IoRing::submitBacklog() {
  while (!backlog_.empty()) {
    if (!trySubmit(backlog_.front())) return;
    backlog_.pop_front();
  }
}

void IoRing::reapCompletions() {
  uint64_t counter;
  [[maybe_unused]] auto got = ::read(eventFd_.get(), &counter, sizeof counter);
  // Collect first, then run callbacks: a callback may submit new work or destroy us.
  Finished finished;
  finished.swap(reapScratch_);  // reuse its capacity; a callback may destroy us, so it is local here
  finished.insert(finished.end(), deferred_.begin(), deferred_.end());
  deferred_.clear();
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
    int result = cqe->res;
    finished.emplace_back(takeCompletion(cqe), result);
  }
  auto alive = alive_;
  bool outermost = !reaping_;
  reaping_ = true;
  delivering_.push_back(&finished);
  submitBacklog();
  for (size_t i = 0; i < finished.size(); ++i) {
    if (finished[i].first == nullptr) continue;  // forgotten by a callback before it
    std::unique_ptr<Operation> op(std::exchange(finished[i].first, nullptr));
    if (!*alive) continue;  // a callback destroyed the ring; the rest are dropped with it
    Completion done = std::move(op->done);
    spare_.push_back(std::move(op));
    done(finished[i].second);
  }
  if (!*alive) return;
  delivering_.pop_back();
  finished.clear();
  reapScratch_.swap(finished);
  if (outermost) reaping_ = false;  // a nested reap (a callback ran the loop) leaves the batch open
  submitPrepared();
}

}  // namespace strata::storage
