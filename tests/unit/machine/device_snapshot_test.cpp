// Board devices saved mid-use and loaded into freshly built ones behave the same.
#include <gtest/gtest.h>

#include <atomic>
#include <tuple>

#include "base/state_stream.h"
#include "machine/clint.h"
#include "machine/goldfish_rtc.h"
#include "machine/plic.h"
#include "machine/uart16550.h"
#include "recording_irq_line.h"

namespace strata::machine {
namespace {

using testing::RecordingIrqLine;

template <typename Device>
StateReader roundTrip(const Device& device) {
  StateWriter writer;
  device.save(writer);
  auto reader = StateReader::parse(writer.finish());
  EXPECT_TRUE(reader.ok());
  return std::move(reader).value();
}

TEST(DeviceSnapshot, PlicRestoresAClaimInServiceAndItsPendingQueue) {
  using Drive = std::tuple<unsigned, cpu::InterruptBit, bool>;
  std::vector<Drive> drivesA, drivesB;
  Plic a(1, 32, [&](unsigned h, cpu::InterruptBit b, bool l) { drivesA.emplace_back(h, b, l); });
  const uint64_t sContext = Plic::kContextBase + Plic::kContextStride;
  for (unsigned source : {3u, 5u}) a.write(Plic::kPriorityBase + 4 * source, 4, source);
  a.write(Plic::kEnableBase + Plic::kEnableStride, 4, (1u << 3) | (1u << 5));
  a.line(3).setLevel(true);
  a.line(5).setLevel(true);
  EXPECT_EQ(a.read(sContext + Plic::kClaimOffset, 4), 5u);  // 5 in service, 3 still pending

  auto reader = roundTrip(a);
  Plic b(1, 32, [&](unsigned h, cpu::InterruptBit bit, bool l) { drivesB.emplace_back(h, bit, l); });
  ASSERT_TRUE(b.load(reader).ok());
  ASSERT_FALSE(drivesB.empty());  // the loaded state drives the hart's SEIP
  EXPECT_EQ(drivesB.back(), Drive(0, cpu::kSupervisorExternal, true));
  EXPECT_EQ(b.read(sContext + Plic::kClaimOffset, 4), 3u);
  b.write(sContext + Plic::kClaimOffset, 4, 5);  // completing 5 re-latches its asserted line
  EXPECT_EQ(b.read(sContext + Plic::kClaimOffset, 4), 5u);
}

TEST(DeviceSnapshot, PlicRefusesADifferentBoardShape) {
  Plic a(1, 32, nullptr);
  auto reader = roundTrip(a);
  Plic b(2, 32, nullptr);
  auto loaded = b.load(reader);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("different number"), std::string::npos) << loaded.error().message;
}

class FakeTarget : public ClintTarget {
 public:
  void setSoftwareInterrupt(bool level) override { msip = level; }
  void setTimerCompare(uint64_t value) override { compare = value; }
  uint64_t timerCompare() const override { return compare; }
  bool msip = false;
  uint64_t compare = ~0ull;
};

TEST(DeviceSnapshot, ClintRestoresSoftwareInterrupts) {
  FakeTarget a0, a1, b0, b1;
  Clint a(std::vector<ClintTarget*>{&a0, &a1}, [] { return uint64_t{0}; });
  a.write(Clint::kMsipBase + 4, 4, 1);
  auto reader = roundTrip(a);
  Clint b(std::vector<ClintTarget*>{&b0, &b1}, [] { return uint64_t{0}; });
  ASSERT_TRUE(b.load(reader).ok());
  EXPECT_FALSE(b0.msip);
  EXPECT_TRUE(b1.msip);
  EXPECT_EQ(b.read(Clint::kMsipBase + 4, 4), 1u);
}

TEST(DeviceSnapshot, UartKeepsRegistersAndUnreadInput) {
  RecordingIrqLine irqA, irqB;
  Uart16550 a(irqA, [](const uint8_t*, size_t) {});
  a.write(Uart16550::kScr, 1, 0x42);
  a.write(Uart16550::kLcr, 1, 0x03);
  a.write(Uart16550::kIerDlm, 1, Uart16550::kIerReceivedData);
  const uint8_t input[] = {'o', 'k', '\n'};
  a.pushInput(input, sizeof input);
  EXPECT_EQ(a.read(Uart16550::kRbrThrDll, 1), 'o');

  auto reader = roundTrip(a);
  Uart16550 b(irqB, [](const uint8_t*, size_t) {});
  ASSERT_TRUE(b.load(reader).ok());
  EXPECT_TRUE(irqB.level());  // received data with ERBFI on
  EXPECT_EQ(b.read(Uart16550::kScr, 1), 0x42u);
  EXPECT_EQ(b.read(Uart16550::kLcr, 1), 0x03u);
  EXPECT_EQ(b.read(Uart16550::kRbrThrDll, 1), 'k');
  EXPECT_EQ(b.read(Uart16550::kRbrThrDll, 1), '\n');
  EXPECT_EQ(b.pendingInput(), 0u);
}

TEST(DeviceSnapshot, RtcKeepsTheGuestOffsetFromHostTimeAndTheAlarm) {
  std::atomic<uint64_t> host{1'000'000'000};
  RecordingIrqLine irqA, irqB;
  GoldfishRtc a(irqA, [&] { return host.load(); });
  a.write(GoldfishRtc::kTimeHigh, 4, 0);  // guest sets its clock to 5 s
  a.write(GoldfishRtc::kTimeLow, 4, 5'000'000'000ull & 0xffffffff);
  a.write(GoldfishRtc::kIrqEnabled, 4, 1);
  a.write(GoldfishRtc::kAlarmHigh, 4, 0);
  a.write(GoldfishRtc::kAlarmLow, 4, 6'000'000'000ull & 0xffffffff);
  const uint64_t guestBefore = a.guestTimeNs();

  auto reader = roundTrip(a);
  host += 2'000'000'000;  // two host seconds pass before the restore
  GoldfishRtc b(irqB, [&] { return host.load(); });
  ASSERT_TRUE(b.load(reader).ok());
  EXPECT_EQ(b.guestTimeNs(), guestBefore + 2'000'000'000);
  EXPECT_TRUE(irqB.level());  // the armed alarm came due across the restore
}

}  // namespace
}  // namespace strata::machine
