#include "virtio/rng.h"

#include <algorithm>

#include "base/random.h"

#include "virtio/virtio_spec.h"

namespace strata::virtio {

uint32_t VirtioRng::deviceId() const { return kDeviceIdEntropy; }

void VirtioRng::onQueueNotify(unsigned queue) {
  if (queue != 0) return;
  bool completed = false;
  while (auto chain = popChain(0)) {
    uint64_t budget = kMaxBytesPerRequest;
    uint64_t filled = 0;
    for (const auto& iov : chain->writable) {
      if (budget == 0) break;
      size_t want = static_cast<size_t>(std::min<uint64_t>(iov.iov_len, budget));
      size_t got = fillRandom(iov.iov_base, want);
      filled += got;
      budget -= got;
      if (got < want) break;
    }
    host().queue(0).pushUsed(chain->head, static_cast<uint32_t>(filled));
    completed = true;
  }
  if (completed) host().notifyUsed(0);
}

}  // namespace strata::virtio
