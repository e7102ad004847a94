// Helpers for scatter-gather lists that point into guest RAM: copying to and
// from them at a byte offset and carving sub-ranges, so devices need not assume
// how the driver split a request across descriptors (virtio's ANY_LAYOUT rule).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata::virtio {

uint64_t totalLength(const std::vector<iovec>& iovs);

// Copies up to len bytes starting at byte offset `from` of iovs; returns bytes copied.
size_t copyFromIovecs(const std::vector<iovec>& iovs, uint64_t from, void* out, size_t len);
// Copies up to len bytes into iovs starting at byte offset `to`; returns bytes copied.
size_t copyToIovecs(const std::vector<iovec>& iovs, uint64_t to, const void* data, size_t len);

// The iovecs covering bytes [from, from+len) of iovs (clipped to what exists).
std::vector<iovec> sliceIovecs(const std::vector<iovec>& iovs, uint64_t from, uint64_t len);

}  // namespace strata::virtio
