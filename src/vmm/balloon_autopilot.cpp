#include "vmm/balloon_autopilot.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include "base/log.h"

namespace strata::vmm {

Result<HostMemory> HostMemory::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error{fmt::format("{}: {}", path, std::strerror(errno))};
  HostMemory memory(std::move(fd));
  if (auto available = memory.availableBytes(); !available) return available.error();
  return memory;
}

Result<uint64_t> HostMemory::availableBytes() const {
  char text[8192];
  ssize_t got = ::pread(fd_.get(), text, sizeof text - 1, 0);
  if (got < 0) return Error{fmt::format("meminfo: {}", std::strerror(errno))};
  text[got] = '\0';
  const char* line = std::strstr(text, "MemAvailable:");
  if (!line) return Error{"meminfo has no MemAvailable line"};
  return uint64_t{std::strtoull(line + std::strlen("MemAvailable:"), nullptr, 10)} << 10;  // in kB
}

Result<std::unique_ptr<BalloonAutopilot>> BalloonAutopilot::start(const BalloonPolicyConfig& config,
                                                                  BalloonControl& balloon, EventLoop& loop) {
  auto host = HostMemory::open();
  if (!host) return Error{fmt::format("--balloon-auto: {}", host.error().message)};
  std::unique_ptr<BalloonAutopilot> autopilot(new BalloonAutopilot(config, balloon, std::move(*host)));
  auto timer = LoopTimer::create(loop, [self = autopilot.get()] { self->tick(); });
  if (!timer) return timer.error();
  autopilot->timer_ = std::move(*timer);
  balloon.setAutoPolicy(config);
  autopilot->rearm();
  return autopilot;
}

void BalloonAutopilot::rearm() {
  if (auto armed = timer_->arm(kBalloonAutoInterval); !armed) log::warn("--balloon-auto stopped: {}", armed.error().message);
}

void BalloonAutopilot::tick() {
  rearm();
  auto status = balloon_.status();
  auto hostAvailable = host_.availableBytes();
  if (!status || !hostAvailable) {
    if (!hostAvailable) log::warnRateLimited("--balloon-auto: {}", hostAvailable.error().message);
    return;  // between boots, or the host figure is unreadable: nothing to decide on
  }
  using namespace virtio::balloon;
  const auto& values = status->statistics.values;
  BalloonSample sample{.hostAvailableBytes = *hostAvailable,
                       .statisticsUpdates = status->statistics.updates,
                       .inflatedBytes = status->inflatedBytes,
                       .guestAvailableBytes = values[kAvailableMemory] ? values[kAvailableMemory] : values[kFreeMemory],
                       .guestMajorFaults = values[kMajorFaults]};
  uint64_t current = balloon_.targetBytes();
  auto decision = policy_.decide(current, sample);
  if (decision.targetBytes != current) {
    if (auto set = balloon_.setTarget(decision.targetBytes); !set) log::warnRateLimited("--balloon-auto: {}", set.error().message);
    balloon_.recordAutoMove(decision.move);
  }
  if (decision.move != lastMove_ && decision.move != BalloonMove::Hold)
    log::info("--balloon-auto: {} to {} MiB (host available {} MiB, guest available {} MiB)",
              balloonMoveName(decision.move), decision.targetBytes >> 20, *hostAvailable >> 20,
              sample.guestAvailableBytes.value_or(0) >> 20);
  if (decision.move != BalloonMove::Hold) lastMove_ = decision.move;
}

}  // namespace strata::vmm
