// Synchronous wrappers over the asynchronous BlockDevice interface for callers
// that own their EventLoop and have nothing else to do meanwhile: the image
// tools and tests. They drive the loop until the one request completes, so the
// I/O path is the same one a VM uses. Never call them from inside a callback.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"

namespace strata::storage {

// Submits one request and runs the loop until its completion; returns its result.
int runUntilComplete(EventLoop& loop, const std::function<void(IoCompletion)>& submit);

Result<void> readSync(BlockDevice& device, EventLoop& loop, uint64_t offset, void* buffer, size_t length);
Result<void> writeSync(BlockDevice& device, EventLoop& loop, uint64_t offset, const void* buffer, size_t length);
Result<void> flushSync(BlockDevice& device, EventLoop& loop);
Result<void> discardSync(BlockDevice& device, EventLoop& loop, uint64_t offset, uint64_t length);
Result<void> writeZeroesSync(BlockDevice& device, EventLoop& loop, uint64_t offset, uint64_t length);

}  // namespace strata::storage
