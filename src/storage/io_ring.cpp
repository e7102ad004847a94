#include "storage/io_ring.h"

#include <sys/eventfd.h>

#include "base/log.h"

#include <vector>

namespace strata::storage {

Result<std::unique_ptr<IoRing>> IoRing::create(EventLoop& loop, unsigned entries) {
  UniqueFd eventFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventFd.valid()) return errnoError("eventfd");
  std::unique_ptr<IoRing> ring(new IoRing(loop, std::move(eventFd)));
  int rc = io_uring_queue_init(entries, &ring->ring_, 0);
  if (rc < 0) return errnoError("io_uring_queue_init", -rc);
  ring->ringReady_ = true;
  ring->capacity_ = entries;
  rc = io_uring_register_eventfd(&ring->ring_, ring->eventFd_.get());
  if (rc < 0) return errnoError("io_uring_register_eventfd", -rc);
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
    delete static_cast<Operation*>(io_uring_cqe_get_data(cqe));
    io_uring_cqe_seen(&ring_, cqe);
    --inKernel_;
  }
  io_uring_queue_exit(&ring_);
}

std::unique_ptr<IoRing::Operation> IoRing::makeOperation(Operation fields) {
  if (spare_.empty()) return std::make_unique<Operation>(std::move(fields));
  auto op = std::move(spare_.back());
  spare_.pop_back();
  *op = std::move(fields);
  return op;
}

void IoRing::readv(int fd, const iovec* iov, unsigned count, uint64_t offset, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Read, fd, iov, count, offset, 0, 0, std::move(done)}));
}

void IoRing::writev(int fd, const iovec* iov, unsigned count, uint64_t offset, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Write, fd, iov, count, offset, 0, 0, std::move(done)}));
}

void IoRing::fdatasync(int fd, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Sync, fd, nullptr, 0, 0, 0, 0, std::move(done)}));
}

void IoRing::fallocate(int fd, int mode, uint64_t offset, uint64_t length, Completion done) {
  enqueue(makeOperation(Operation{OpKind::Fallocate, fd, nullptr, 0, offset, length, mode, std::move(done)}));
}

void IoRing::enqueue(std::unique_ptr<Operation> op) {
  // Keep submission order: nothing overtakes operations already waiting.
  if (!backlog_.empty() || !trySubmit(op)) backlog_.push_back(std::move(op));
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
      io_uring_prep_writev(sqe, op->fd, op->iov, op->count, op->offset);
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
  op.release();
  ++inKernel_;
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
  std::vector<std::pair<Operation*, int>> finished;
  finished.swap(reapScratch_);  // reuse its capacity; a callback may destroy us, so it is local here
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
    finished.emplace_back(static_cast<Operation*>(io_uring_cqe_get_data(cqe)), cqe->res);
    io_uring_cqe_seen(&ring_, cqe);
    --inKernel_;
  }
  auto alive = alive_;
  reaping_ = true;
  submitBacklog();
  for (size_t i = 0; i < finished.size(); ++i) {
    std::unique_ptr<Operation> op(finished[i].first);
    if (!*alive) continue;  // a callback destroyed the ring; the rest are dropped with it
    Completion done = std::move(op->done);
    spare_.push_back(std::move(op));
    done(finished[i].second);
  }
  if (!*alive) return;
  finished.clear();
  reapScratch_.swap(finished);
  reaping_ = false;
  submitPrepared();
}

}  // namespace strata::storage
