// MemoryBlockDevice: a BlockDevice over a byte vector for NBD tests and the NBD
// fuzzer. Completions are posted to the EventLoop (never synchronous), or held
// until released so tests can complete requests in any order; a failing range
// and a flush counter let tests see errors and durability ordering.
#pragma once

#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "storage/block_device.h"

namespace strata::storage::testing {

class MemoryBlockDevice final : public BlockDevice {
 public:
  MemoryBlockDevice(EventLoop& loop, size_t size) : loop_(loop), bytes_(size) {}

  uint64_t sizeBytes() const override { return bytes_.size(); }
  bool readOnly() const override { return false; }
  std::string serial() const override { return "memory"; }

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override {
    ++requests;
    finish(std::move(done), [this, offset, buffers] {
      uint64_t position = offset;
      for (const auto& buffer : buffers) {
        if (!inRange(position, buffer.iov_len)) return -EINVAL;
        std::memcpy(buffer.iov_base, bytes_.data() + position, buffer.iov_len);
        position += buffer.iov_len;
      }
      return failing(offset, position - offset) ? -EIO : 0;
    });
  }
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override {
    ++requests;
    finish(std::move(done), [this, offset, buffers] {
      uint64_t length = 0;
      for (const auto& buffer : buffers) length += buffer.iov_len;
      if (!inRange(offset, length)) return -EINVAL;
      if (failing(offset, length)) return -EIO;
      uint64_t position = offset;
      for (const auto& buffer : buffers) {
        std::memcpy(bytes_.data() + position, buffer.iov_base, buffer.iov_len);
        position += buffer.iov_len;
      }
      ++writes;
      return 0;
    });
  }
  void flush(IoCompletion done) override {
    ++requests;
    finish(std::move(done), [this] {
      ++flushes;
      return 0;
    });
  }
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override { writeZeroes(offset, length, std::move(done)); }
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override {
    ++requests;
    finish(std::move(done), [this, offset, length] {
      if (!inRange(offset, length)) return -EINVAL;
      std::memset(bytes_.data() + offset, 0, length);
      ++writes;
      return 0;
    });
  }

  std::vector<uint8_t>& bytes() { return bytes_; }
  // Requests whose range overlaps [failOffset, failOffset + failLength) complete with -EIO.
  uint64_t failOffset = 0;
  uint64_t failLength = 0;
  // When set, completions wait in held() until releaseHeld() runs them.
  bool holdCompletions = false;
  size_t heldCount() const { return held_.size(); }
  // Completes held requests, in the given order of indices (default: in submission order).
  void releaseHeld(const std::vector<size_t>& order = {}) {
    auto held = std::move(held_);
    held_.clear();
    if (order.empty()) {
      for (auto& run : held) run();
    } else {
      for (size_t index : order) held.at(index)();
    }
  }
  unsigned requests = 0;
  unsigned writes = 0;
  unsigned flushes = 0;

 private:
  bool inRange(uint64_t offset, uint64_t length) const {
    return offset <= bytes_.size() && length <= bytes_.size() - offset;
  }
  bool failing(uint64_t offset, uint64_t length) const {
    return failLength > 0 && offset < failOffset + failLength && failOffset < offset + length;
  }
  // The operation runs when the completion is delivered, like a real device
  // whose data lands some time after submission.
  void finish(IoCompletion done, std::function<int()> operation) {
    auto run = [done = std::move(done), operation = std::move(operation)] { done(operation()); };
    if (holdCompletions) {
      held_.push_back(std::move(run));
    } else {
      loop_.post(std::move(run));
    }
  }

  EventLoop& loop_;
  std::vector<uint8_t> bytes_;
  std::vector<std::function<void()>> held_;
};

}  // namespace strata::storage::testing
