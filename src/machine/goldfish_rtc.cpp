#include "machine/goldfish_rtc.h"

#include <time.h>

namespace strata::machine {

namespace {

uint64_t withLow32(uint64_t value, uint32_t low) { return (value & ~uint64_t{0xffffffff}) | low; }
uint64_t withHigh32(uint64_t value, uint32_t high) {
  return (value & uint64_t{0xffffffff}) | (uint64_t{high} << 32);
}

}  // namespace

GoldfishRtc::GoldfishRtc(IrqLine& irq, HostClock hostClock)
    : irq_(irq), hostClock_(hostClock ? std::move(hostClock) : HostClock(hostRealtimeNs)) {}

uint64_t GoldfishRtc::hostRealtimeNs() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

uint64_t GoldfishRtc::guestTimeNs() const {
  std::lock_guard lock(mutex_);
  return guestTimeLocked();
}

void GoldfishRtc::checkAlarmLocked() {
  if (!alarmArmed_ || guestTimeLocked() < alarmNs_) return;
  alarmArmed_ = false;
  irqPending_ = true;
  updateIrqLocked();
}

void GoldfishRtc::updateIrqLocked() {
  const bool asserted = irqPending_ && irqEnabled_;
  if (asserted == irqAsserted_) return;
  irqAsserted_ = asserted;
  irq_.setLevel(asserted);
}

void GoldfishRtc::pollAlarm() {
  std::lock_guard lock(mutex_);
  checkAlarmLocked();
}

uint64_t GoldfishRtc::read(uint64_t offset, unsigned size) {
  if (size != 4) return 0;
  std::lock_guard lock(mutex_);
  checkAlarmLocked();
  switch (offset) {
    case kTimeLow: {
      const uint64_t now = guestTimeLocked();
      timeHighLatch_ = static_cast<uint32_t>(now >> 32);
      return static_cast<uint32_t>(now);
    }
    case kTimeHigh:
      return timeHighLatch_;
    case kAlarmLow:
      return static_cast<uint32_t>(alarmNs_);
    case kAlarmHigh:
      return static_cast<uint32_t>(alarmNs_ >> 32);
    case kIrqEnabled:
      return irqEnabled_;
    case kAlarmStatus:
      return alarmArmed_;
    default:
      return 0;
  }
}

void GoldfishRtc::write(uint64_t offset, unsigned size, uint64_t value) {
  if (size != 4) return;
  const uint32_t value32 = static_cast<uint32_t>(value);
  std::lock_guard lock(mutex_);
  switch (offset) {
    case kTimeLow:
    case kTimeHigh: {
      // Each half replaces that half of the current time (as QEMU does), so
      // Linux's "write high, then low" sets the full 64-bit time.
      const uint64_t now = guestTimeLocked();
      const uint64_t wanted = offset == kTimeLow ? withLow32(now, value32) : withHigh32(now, value32);
      offset_ += wanted - now;
      break;
    }
    case kAlarmLow:
      alarmNs_ = withLow32(alarmNs_, value32);
      alarmArmed_ = true;
      break;
    case kAlarmHigh:
      alarmNs_ = withHigh32(alarmNs_, value32);
      break;
    case kIrqEnabled:
      irqEnabled_ = value32 & 1;
      updateIrqLocked();
      break;
    case kClearAlarm:
      alarmArmed_ = false;
      break;
    case kClearInterrupt:
      irqPending_ = false;
      updateIrqLocked();
      break;
    default:
      break;
  }
  checkAlarmLocked();
}

namespace {
constexpr uint32_t kRtcStateVersion = 1;
}

// The guest's offset from host wall-clock time is kept, so a restored guest's
// calendar time follows the host's rather than resuming at the saved instant.
void GoldfishRtc::save(StateWriter& out) const {
  std::lock_guard lock(mutex_);
  out.beginSection("rtc", kRtcStateVersion);
  out.put(offset_);
  out.put(timeHighLatch_);
  out.put(alarmNs_);
  for (bool flag : {alarmArmed_, irqEnabled_, irqPending_}) out.put(static_cast<uint8_t>(flag));
  out.endSection();
}

Result<void> GoldfishRtc::load(StateReader& in) {
  std::lock_guard lock(mutex_);
  auto version = in.enterSection("rtc", kRtcStateVersion);
  if (!version) return version.error();
  offset_ = in.get<uint64_t>();
  timeHighLatch_ = in.get<uint32_t>();
  alarmNs_ = in.get<uint64_t>();
  for (bool* flag : {&alarmArmed_, &irqEnabled_, &irqPending_}) *flag = in.get<uint8_t>() != 0;
  if (auto left = in.leaveSection(); !left) return left;
  irqAsserted_ = false;
  checkAlarmLocked();
  updateIrqLocked();
  return {};
}

}  // namespace strata::machine
