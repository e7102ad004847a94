#include "virtio/virtio_device.h"

#include <cstring>

#include <fmt/core.h>

namespace strata::virtio {

void VirtioDevice::readConfig(uint64_t offset, uint8_t* out, unsigned size) const {
  std::lock_guard lock(configMutex_);
  for (unsigned i = 0; i < size; ++i) {
    uint64_t at = offset + i;
    out[i] = at < config_.size() ? config_[at] : 0;
  }
}

void VirtioDevice::setConfigSpace(std::vector<uint8_t> bytes) {
  std::lock_guard lock(configMutex_);
  config_ = std::move(bytes);
}

std::optional<DescriptorChain> VirtioDevice::popChain(unsigned q) {
  if (!host_ || host_->deviceFailed() || !host_->takeChainBudget(q)) return std::nullopt;
  auto popped = host_->queue(q).popChain();
  if (!popped) {
    host_->failDevice(fmt::format("queue {}: {}", q, popped.error().message));
    return std::nullopt;
  }
  return std::move(*popped);
}

}  // namespace strata::virtio
