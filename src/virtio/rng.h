// VirtioRng: the virtio entropy device (type 4). Fills every buffer the guest
// posts on its single request queue with bytes from the host's getrandom().
#pragma once

#include "virtio/virtio_device.h"

namespace strata::virtio {

class VirtioRng final : public VirtioDevice {
 public:
  uint32_t deviceId() const override;
  uint64_t deviceFeatures() const override { return 0; }
  unsigned queueCount() const override { return 1; }
  void onQueueNotify(unsigned queue) override;

  // Most bytes handed out for one request; the spec allows partial fills.
  static constexpr uint64_t kMaxBytesPerRequest = 64 * 1024;
};

}  // namespace strata::virtio
