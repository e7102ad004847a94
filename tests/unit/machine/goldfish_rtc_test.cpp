#include "machine/goldfish_rtc.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>

#include "recording_irq_line.h"

namespace strata::machine {
namespace {

using testing::RecordingIrqLine;

constexpr uint64_t kSecond = 1'000'000'000;

uint64_t readTime(GoldfishRtc& rtc) {
  const uint64_t low = rtc.read(GoldfishRtc::kTimeLow, 4);
  const uint64_t high = rtc.read(GoldfishRtc::kTimeHigh, 4);
  return (high << 32) | low;
}

TEST(GoldfishRtcTest, TimeFollowsTheHostWallClock) {
  RecordingIrqLine irq;
  GoldfishRtc rtc(irq);
  const uint64_t host = GoldfishRtc::hostRealtimeNs();
  const uint64_t guest = readTime(rtc);
  EXPECT_LT(std::llabs(static_cast<long long>(guest - host)), static_cast<long long>(kSecond));
  EXPECT_GT(guest / kSecond, 1'600'000'000u);  // after September 2020
}

class FakeClockRtcTest : public ::testing::Test {
 protected:
  FakeClockRtcTest() : rtc_(irq_, [this] { return host_.load(); }) {}
  std::atomic<uint64_t> host_{0x0000'0012'3456'7890};
  RecordingIrqLine irq_;
  GoldfishRtc rtc_;
};

TEST_F(FakeClockRtcTest, ReadingLowLatchesHigh) {
  EXPECT_EQ(rtc_.read(GoldfishRtc::kTimeLow, 4), 0x3456'7890u);
  host_ = 0x0000'0013'0000'0001;  // the high half moves on ...
  EXPECT_EQ(rtc_.read(GoldfishRtc::kTimeHigh, 4), 0x12u);  // ... but the latched value is read
  EXPECT_EQ(readTime(rtc_), 0x0000'0013'0000'0001u);
}

TEST_F(FakeClockRtcTest, GuestSetsTimeHighThenLowAndItKeepsRunning) {
  const uint64_t wanted = 0x0000'0100'dead'beef;
  rtc_.write(GoldfishRtc::kTimeHigh, 4, wanted >> 32);
  rtc_.write(GoldfishRtc::kTimeLow, 4, wanted & 0xffffffff);
  EXPECT_EQ(readTime(rtc_), wanted);
  host_ += 5 * kSecond;
  EXPECT_EQ(readTime(rtc_), wanted + 5 * kSecond);
  EXPECT_EQ(rtc_.guestTimeNs(), wanted + 5 * kSecond);
}

TEST_F(FakeClockRtcTest, SettingTimeBackwardsWorks) {
  rtc_.write(GoldfishRtc::kTimeHigh, 4, 0);
  rtc_.write(GoldfishRtc::kTimeLow, 4, 1000);
  EXPECT_EQ(readTime(rtc_), 1000u);
}

TEST_F(FakeClockRtcTest, AlarmFiresWhenDueAndInterruptClears) {
  const uint64_t alarm = host_.load() + 2 * kSecond;
  rtc_.write(GoldfishRtc::kAlarmHigh, 4, alarm >> 32);
  rtc_.write(GoldfishRtc::kAlarmLow, 4, alarm & 0xffffffff);
  rtc_.write(GoldfishRtc::kIrqEnabled, 4, 1);
  EXPECT_EQ(rtc_.read(GoldfishRtc::kAlarmStatus, 4), 1u);
  EXPECT_EQ(rtc_.read(GoldfishRtc::kAlarmLow, 4), alarm & 0xffffffff);
  EXPECT_EQ(rtc_.read(GoldfishRtc::kAlarmHigh, 4), alarm >> 32);
  EXPECT_EQ(rtc_.read(GoldfishRtc::kIrqEnabled, 4), 1u);
  host_ += kSecond;
  rtc_.pollAlarm();
  EXPECT_TRUE(irq_.levels().empty());

  host_ += kSecond;
  rtc_.pollAlarm();
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true}));
  EXPECT_EQ(rtc_.read(GoldfishRtc::kAlarmStatus, 4), 0u);

  rtc_.write(GoldfishRtc::kClearInterrupt, 4, 1);
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true, false}));
}

TEST_F(FakeClockRtcTest, AlarmIsCheckedOnRegisterAccessAndMaskedByIrqEnable) {
  rtc_.write(GoldfishRtc::kAlarmHigh, 4, 0);
  rtc_.write(GoldfishRtc::kAlarmLow, 4, 1);  // in the past: fires at once
  EXPECT_EQ(rtc_.read(GoldfishRtc::kAlarmStatus, 4), 0u);
  EXPECT_TRUE(irq_.levels().empty());  // interrupt not enabled yet
  rtc_.write(GoldfishRtc::kIrqEnabled, 4, 1);
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true}));
  rtc_.write(GoldfishRtc::kIrqEnabled, 4, 0);
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true, false}));
}

TEST_F(FakeClockRtcTest, ClearAlarmDisarmsIt) {
  const uint64_t alarm = host_.load() + kSecond;
  rtc_.write(GoldfishRtc::kAlarmHigh, 4, alarm >> 32);
  rtc_.write(GoldfishRtc::kAlarmLow, 4, alarm & 0xffffffff);
  rtc_.write(GoldfishRtc::kIrqEnabled, 4, 1);
  rtc_.write(GoldfishRtc::kClearAlarm, 4, 1);
  EXPECT_EQ(rtc_.read(GoldfishRtc::kAlarmStatus, 4), 0u);
  host_ += 10 * kSecond;
  rtc_.pollAlarm();
  EXPECT_TRUE(irq_.levels().empty());
}

TEST_F(FakeClockRtcTest, OddAccessesAreIgnored) {
  EXPECT_EQ(rtc_.read(GoldfishRtc::kTimeLow, 8), 0u);
  rtc_.write(GoldfishRtc::kTimeLow, 2, 0);
  EXPECT_EQ(readTime(rtc_), host_.load());
  EXPECT_EQ(rtc_.read(0x20, 4), 0u);
  EXPECT_EQ(rtc_.read(0xfff, 4), 0u);
}

}  // namespace
}  // namespace strata::machine
