// BalloonControl: the run-time handle on a VM's virtio-balloon, kept across
// reboots (each boot builds a new device, which starts from the latest
// target). Any thread (the API server's); absent without `--balloon`.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "base/result.h"
#include "virtio/balloon.h"
#include "vmm/balloon_policy.h"

namespace strata::vmm {

class BalloonControl {
 public:
  // initialTarget: --balloon, or none (no balloon device in this VM).
  BalloonControl(std::optional<uint64_t> initialTarget, uint64_t memoryBytes);

  bool present() const { return present_; }
  uint64_t targetBytes() const;
  // Fails without a balloon device or past the guest's memory size.
  Result<void> setTarget(uint64_t bytes);
  // The current boot's device's figures; none between boots or without a device.
  std::optional<virtio::BalloonStatus> status() const;

  // --balloon-auto: its settings and the target changes it made (shown by GET /vm/balloon).
  struct AutoState {
    BalloonPolicyConfig config;
    BalloonMove lastMove = BalloonMove::Hold;
    uint64_t moves = 0;
  };
  void setAutoPolicy(const BalloonPolicyConfig& config);
  void recordAutoMove(BalloonMove move);
  std::optional<AutoState> autoState() const;

  // For GuestMachine: the device of the boot now running, and its end.
  void attach(virtio::VirtioBalloon* device);
  void detach();

 private:
  const bool present_;
  const uint64_t memoryBytes_;
  mutable std::mutex mutex_;
  uint64_t target_;
  virtio::VirtioBalloon* device_ = nullptr;
  std::optional<AutoState> auto_;
};

}  // namespace strata::vmm
