// BalloonAutopilot: runs BalloonPolicy for `strata run --balloon-auto` on the
// VM's I/O loop, once a second: reads the host's MemAvailable (/proc/meminfo,
// opened before the sandbox) and the balloon's statistics, and sets the target
// through BalloonControl, as PUT /vm/balloon would.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/loop_timer.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/balloon_control.h"
#include "vmm/balloon_policy.h"

namespace strata::vmm {

// How often the autopilot decides, and so how often the balloon asks the guest for statistics.
inline constexpr std::chrono::milliseconds kBalloonAutoInterval{1000};

// MemAvailable of a meminfo file, read afresh each time through one open fd (no open after the sandbox).
class HostMemory {
 public:
  static Result<HostMemory> open(const std::string& path = "/proc/meminfo");
  Result<uint64_t> availableBytes() const;

 private:
  explicit HostMemory(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class BalloonAutopilot {
 public:
  static Result<std::unique_ptr<BalloonAutopilot>> start(const BalloonPolicyConfig& config, BalloonControl& balloon,
                                                         EventLoop& loop);

 private:
  BalloonAutopilot(const BalloonPolicyConfig& config, BalloonControl& balloon, HostMemory host)
      : policy_(config), balloon_(balloon), host_(std::move(host)) {}
  void tick();
  void rearm();

  BalloonPolicy policy_;
  BalloonControl& balloon_;
  HostMemory host_;
  std::unique_ptr<LoopTimer> timer_;
  BalloonMove lastMove_ = BalloonMove::Hold;
};

}  // namespace strata::vmm
