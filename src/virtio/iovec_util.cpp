#include "virtio/iovec_util.h"

#include <algorithm>
#include <cstring>

namespace strata::virtio {

namespace {

// Calls visit(segmentStart, segmentLength, bytesBefore) for each piece of
// bytes [from, from+len) of iovs, in order, clipped to what exists; returns
// the bytes visited.
template <typename Visit>
uint64_t forEachSegment(const std::vector<iovec>& iovs, uint64_t from, uint64_t len, Visit visit) {
  uint64_t done = 0;
  for (const auto& iov : iovs) {
    if (done == len) break;
    if (from >= iov.iov_len) {
      from -= iov.iov_len;
      continue;
    }
    uint64_t chunk = std::min<uint64_t>(iov.iov_len - from, len - done);
    visit(static_cast<uint8_t*>(iov.iov_base) + from, chunk, done);
    done += chunk;
    from = 0;
  }
  return done;
}

}  // namespace

uint64_t totalLength(const std::vector<iovec>& iovs) {
  uint64_t total = 0;
  for (const auto& iov : iovs) total += iov.iov_len;
  return total;
}

size_t copyFromIovecs(const std::vector<iovec>& iovs, uint64_t from, void* out, size_t len) {
  auto* dst = static_cast<uint8_t*>(out);
  return forEachSegment(iovs, from, len,
                        [dst](const uint8_t* segment, uint64_t chunk, uint64_t before) {
                          std::memcpy(dst + before, segment, chunk);
                        });
}

size_t copyToIovecs(const std::vector<iovec>& iovs, uint64_t to, const void* data, size_t len) {
  const auto* src = static_cast<const uint8_t*>(data);
  return forEachSegment(iovs, to, len,
                        [src](uint8_t* segment, uint64_t chunk, uint64_t before) {
                          std::memcpy(segment, src + before, chunk);
                        });
}

std::vector<iovec> sliceIovecs(const std::vector<iovec>& iovs, uint64_t from, uint64_t len) {
  std::vector<iovec> out;
  forEachSegment(iovs, from, len, [&out](uint8_t* segment, uint64_t chunk, uint64_t) {
    out.push_back({segment, chunk});
  });
  return out;
}

}  // namespace strata::virtio
