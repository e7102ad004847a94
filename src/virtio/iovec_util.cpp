#include "virtio/iovec_util.h"

#include <algorithm>
#include <cstring>

namespace strata::virtio {

uint64_t totalLength(const std::vector<iovec>& iovs) {
  uint64_t total = 0;
  for (const auto& iov : iovs) total += iov.iov_len;
  return total;
}

size_t copyFromIovecs(const std::vector<iovec>& iovs, uint64_t from, void* out, size_t len) {
  auto* dst = static_cast<uint8_t*>(out);
  size_t copied = 0;
  for (const auto& iov : iovs) {
    if (copied == len) break;
    if (from >= iov.iov_len) {
      from -= iov.iov_len;
      continue;
    }
    size_t chunk = std::min<uint64_t>(iov.iov_len - from, len - copied);
    std::memcpy(dst + copied, static_cast<const uint8_t*>(iov.iov_base) + from, chunk);
    copied += chunk;
    from = 0;
  }
  return copied;
}

size_t copyToIovecs(const std::vector<iovec>& iovs, uint64_t to, const void* data, size_t len) {
  const auto* src = static_cast<const uint8_t*>(data);
  size_t copied = 0;
  for (const auto& iov : iovs) {
    if (copied == len) break;
    if (to >= iov.iov_len) {
      to -= iov.iov_len;
      continue;
    }
    size_t chunk = std::min<uint64_t>(iov.iov_len - to, len - copied);
    std::memcpy(static_cast<uint8_t*>(iov.iov_base) + to, src + copied, chunk);
    copied += chunk;
    to = 0;
  }
  return copied;
}

std::vector<iovec> sliceIovecs(const std::vector<iovec>& iovs, uint64_t from, uint64_t len) {
  std::vector<iovec> out;
  for (const auto& iov : iovs) {
    if (len == 0) break;
    if (from >= iov.iov_len) {
      from -= iov.iov_len;
      continue;
    }
    uint64_t chunk = std::min<uint64_t>(iov.iov_len - from, len);
    out.push_back({static_cast<uint8_t*>(iov.iov_base) + from, chunk});
    len -= chunk;
    from = 0;
  }
  return out;
}

}  // namespace strata::virtio
