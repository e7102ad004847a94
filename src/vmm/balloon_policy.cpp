#include "vmm/balloon_policy.h"

#include <algorithm>

#include <fmt/core.h>

#include "vmm/vm_config.h"

namespace strata::vmm {

Result<BalloonPolicyConfig> parseBalloonAuto(std::string_view text, uint64_t memoryBytes, uint64_t initialTarget) {
  BalloonPolicyConfig config{.hostFreeBytes = 0,
                             .minBytes = initialTarget,
                             .maxBytes = memoryBytes / 4 * 3,
                             .guestFreeBytes = memoryBytes / 8,
                             .stepBytes = memoryBytes / 16};
  bool hostFreeGiven = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string_view token = text.substr(start, comma - start);
    start = comma + 1;
    size_t equals = token.find('=');
    std::string key(token.substr(0, equals));
    uint64_t* field = key == "host-free" ? &config.hostFreeBytes
                      : key == "max"     ? &config.maxBytes
                      : key == "guest-free" ? &config.guestFreeBytes
                      : key == "step"       ? &config.stepBytes
                                            : nullptr;
    if (equals == std::string_view::npos || !field)
      return Error{fmt::format("--balloon-auto {}: expected host-free=SIZE[,max=SIZE][,guest-free=SIZE][,step=SIZE]",
                               text)};
    auto bytes = parseByteSize(std::string(token.substr(equals + 1)), "--balloon-auto " + key);
    if (!bytes) return bytes.error();
    *field = *bytes;
    hostFreeGiven = hostFreeGiven || field == &config.hostFreeBytes;
  }
  if (!hostFreeGiven) return Error{fmt::format("--balloon-auto {}: host-free=SIZE is required", text)};
  if (config.maxBytes > memoryBytes)
    return Error{fmt::format("--balloon-auto max: {} MiB is more than the guest's {} MiB of memory",
                             config.maxBytes >> 20, memoryBytes >> 20)};
  if (config.maxBytes < config.minBytes)
    return Error{fmt::format("--balloon-auto max: {} MiB is less than --balloon's {} MiB", config.maxBytes >> 20,
                             config.minBytes >> 20)};
  if (config.stepBytes < (1u << 20)) return Error{"--balloon-auto step: must be at least 1M"};
  return config;
}

const char* balloonMoveName(BalloonMove move) {
  switch (move) {
    case BalloonMove::Hold: return "hold";
    case BalloonMove::Inflate: return "inflate";
    case BalloonMove::DeflateForGuest: return "deflate (guest pressure)";
    case BalloonMove::DeflateForHost: return "deflate (host has room)";
  }
  return "?";
}

BalloonDecision BalloonPolicy::clamp(BalloonMove move, uint64_t target) const {
  return {move, std::clamp(target, config_.minBytes, config_.maxBytes)};
}

BalloonDecision BalloonPolicy::decide(uint64_t currentTarget, const BalloonSample& sample) {
  // Stale figures would make every tick act again on what the guest has not yet answered.
  if (sample.statisticsUpdates == lastUpdates_ || !sample.guestAvailableBytes) return clamp(BalloonMove::Hold, currentTarget);
  lastUpdates_ = sample.statisticsUpdates;
  bool faultsRising = false;
  if (sample.guestMajorFaults) {
    // A counter that went backwards (a reboot, or a lie) only starts a new baseline.
    if (lastMajorFaults_ && *sample.guestMajorFaults >= *lastMajorFaults_)
      faultsRising = *sample.guestMajorFaults - *lastMajorFaults_ > config_.majorFaultBurst;
    lastMajorFaults_ = sample.guestMajorFaults;
  }
  const uint64_t guestAvailable = *sample.guestAvailableBytes;
  auto lower = [&](uint64_t by) { return currentTarget > by ? currentTarget - by : 0; };

  // The guest short of memory gets back at once what it lacks, and at least a step.
  if (guestAvailable < config_.guestFreeBytes / 2 || faultsRising)
    return clamp(BalloonMove::DeflateForGuest,
                 lower(std::max(config_.stepBytes, config_.guestFreeBytes - std::min(guestAvailable, config_.guestFreeBytes))));

  if (sample.hostAvailableBytes < config_.hostFreeBytes) {
    // What the guest can spare: its available memory above the floor, less what it still owes the balloon.
    uint64_t owed = currentTarget > sample.inflatedBytes ? currentTarget - sample.inflatedBytes : 0;
    uint64_t spare = guestAvailable > config_.guestFreeBytes + owed ? guestAvailable - config_.guestFreeBytes - owed : 0;
    uint64_t take = std::min({config_.stepBytes, config_.hostFreeBytes - sample.hostAvailableBytes, spare});
    if (take == 0) return clamp(BalloonMove::Hold, currentTarget);
    return clamp(BalloonMove::Inflate, currentTarget + take);
  }
  // A step of slack above the host's target before giving back, so the two moves do not alternate.
  if (sample.hostAvailableBytes - config_.hostFreeBytes > config_.stepBytes && currentTarget > config_.minBytes)
    return clamp(BalloonMove::DeflateForHost, lower(config_.stepBytes));
  return clamp(BalloonMove::Hold, currentTarget);
}

}  // namespace strata::vmm
