// BalloonPolicy: the decision behind `strata run --balloon-auto`, with no I/O:
// given the host's available memory and the guest's own balloon statistics, the
// balloon's next target. Every VM process decides for its own guest against the
// same host figure, which is what makes the free-memory target host-wide.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace strata::vmm {

struct BalloonPolicyConfig {
  uint64_t hostFreeBytes = 0;   // host MemAvailable to keep
  uint64_t minBytes = 0;        // never below (--balloon's initial target)
  uint64_t maxBytes = 0;        // never above: the most memory taken from the guest
  uint64_t guestFreeBytes = 0;  // guest available memory an inflation leaves it
  uint64_t stepBytes = 0;       // most one decision moves the target (deflating under pressure may move more)
  // Major faults between two samples that count as pressure (an idle guest has none).
  uint64_t majorFaultBurst = 64;
};

// "host-free=SIZE[,max=SIZE][,guest-free=SIZE][,step=SIZE]" for a guest of memoryBytes whose
// balloon starts at initialTarget; defaults: max 3/4 of the guest's memory, guest-free 1/8, step 1/16.
Result<BalloonPolicyConfig> parseBalloonAuto(std::string_view text, uint64_t memoryBytes, uint64_t initialTarget);

// One look at the host and at the guest's last statistics.
struct BalloonSample {
  uint64_t hostAvailableBytes = 0;
  uint64_t statisticsUpdates = 0;  // the device's count of statistics buffers received
  uint64_t inflatedBytes = 0;      // what the guest has put in the balloon so far (host-counted)
  std::optional<uint64_t> guestAvailableBytes;  // available_memory, else free_memory
  std::optional<uint64_t> guestMajorFaults;
};

enum class BalloonMove { Hold, Inflate, DeflateForGuest, DeflateForHost };
const char* balloonMoveName(BalloonMove move);

struct BalloonDecision {
  BalloonMove move = BalloonMove::Hold;
  uint64_t targetBytes = 0;
};

class BalloonPolicy {
 public:
  explicit BalloonPolicy(const BalloonPolicyConfig& config) : config_(config) {}
  const BalloonPolicyConfig& config() const { return config_; }

  // Decides once per fresh statistics update (none yet, or the same as last time: hold).
  // Whatever the guest claims, the result stays within [minBytes, maxBytes].
  BalloonDecision decide(uint64_t currentTarget, const BalloonSample& sample);

 private:
  BalloonDecision clamp(BalloonMove move, uint64_t target) const;

  const BalloonPolicyConfig config_;
  uint64_t lastUpdates_ = 0;
  std::optional<uint64_t> lastMajorFaults_;
};

}  // namespace strata::vmm
