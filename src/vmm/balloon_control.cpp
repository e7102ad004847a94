#include "vmm/balloon_control.h"

#include <fmt/core.h>

namespace strata::vmm {

BalloonControl::BalloonControl(std::optional<uint64_t> initialTarget, uint64_t memoryBytes)
    : present_(initialTarget.has_value()), memoryBytes_(memoryBytes), target_(initialTarget.value_or(0)) {}

uint64_t BalloonControl::targetBytes() const {
  std::lock_guard lock(mutex_);
  return target_;
}

Result<void> BalloonControl::setTarget(uint64_t bytes) {
  if (!present_) return Error{"this VM has no balloon device (start it with --balloon)"};
  if (bytes > memoryBytes_)
    return Error{fmt::format("target {} bytes is more than the guest's {} bytes of memory", bytes, memoryBytes_)};
  std::lock_guard lock(mutex_);
  target_ = bytes;
  if (device_) device_->setTargetBytes(bytes);
  return {};
}

std::optional<virtio::BalloonStatus> BalloonControl::status() const {
  std::lock_guard lock(mutex_);
  if (!device_) return std::nullopt;
  return device_->status();
}

void BalloonControl::setAutoPolicy(const BalloonPolicyConfig& config) {
  std::lock_guard lock(mutex_);
  auto_ = AutoState{.config = config};
}

void BalloonControl::recordAutoMove(BalloonMove move) {
  std::lock_guard lock(mutex_);
  if (!auto_) return;
  auto_->lastMove = move;
  ++auto_->moves;
}

std::optional<BalloonControl::AutoState> BalloonControl::autoState() const {
  std::lock_guard lock(mutex_);
  return auto_;
}

void BalloonControl::attach(virtio::VirtioBalloon* device) {
  std::lock_guard lock(mutex_);
  device_ = device;
}

void BalloonControl::detach() {
  std::lock_guard lock(mutex_);
  device_ = nullptr;
}

}  // namespace strata::vmm
