#include "storage/sync_io.h"

#include <fmt/core.h>

#include <cstring>

namespace strata::storage {

int runUntilComplete(EventLoop& loop, const std::function<void(IoCompletion)>& submit) {
  bool finished = false;
  int status = 0;
  submit([&](int result) {
    finished = true;
    status = result;
  });
  while (!finished) loop.runOnce(-1);
  return status;
}

namespace {
Result<void> check(int status, const char* what, uint64_t offset, uint64_t length) {
  if (status >= 0) return {};
  return Error{fmt::format("{} of {} bytes at offset {}: {}", what, length, offset, std::strerror(-status))};
}
}  // namespace

Result<void> readSync(BlockDevice& device, EventLoop& loop, uint64_t offset, void* buffer, size_t length) {
  int status = runUntilComplete(loop, [&](IoCompletion done) {
    device.readv(offset, {iovec{buffer, length}}, std::move(done));
  });
  return check(status, "read", offset, length);
}

Result<void> writeSync(BlockDevice& device, EventLoop& loop, uint64_t offset, const void* buffer, size_t length) {
  int status = runUntilComplete(loop, [&](IoCompletion done) {
    device.writev(offset, {iovec{const_cast<void*>(buffer), length}}, std::move(done));
  });
  return check(status, "write", offset, length);
}

Result<void> flushSync(BlockDevice& device, EventLoop& loop) {
  int status = runUntilComplete(loop, [&](IoCompletion done) { device.flush(std::move(done)); });
  if (status >= 0) return {};
  return Error{fmt::format("flush: {}", std::strerror(-status))};
}

Result<void> discardSync(BlockDevice& device, EventLoop& loop, uint64_t offset, uint64_t length) {
  int status = runUntilComplete(loop, [&](IoCompletion done) { device.discard(offset, length, std::move(done)); });
  return check(status, "discard", offset, length);
}

Result<void> writeZeroesSync(BlockDevice& device, EventLoop& loop, uint64_t offset, uint64_t length) {
  int status =
      runUntilComplete(loop, [&](IoCompletion done) { device.writeZeroes(offset, length, std::move(done)); });
  return check(status, "write-zeroes", offset, length);
}

}  // namespace strata::storage
