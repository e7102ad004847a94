#include "machine/pvpanic.h"

#include <gtest/gtest.h>

namespace strata::machine {
namespace {

TEST(PvPanicTest, AdvertisesPanickedAndCrashLoaded) {
  PvPanic device([] {});
  EXPECT_EQ(device.read(0, 1), 0x03u);
  EXPECT_EQ(device.read(1, 1), 0u);
}

TEST(PvPanicTest, PanicWriteCallsTheCallback) {
  int calls = 0;
  PvPanic device([&] { ++calls; });
  device.write(0, 1, PvPanic::kPanicked);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(device.panicCount(), 1u);
  EXPECT_EQ(device.crashLoadedCount(), 0u);
}

TEST(PvPanicTest, CrashLoadedAloneIsCountedWithoutPanicCallback) {
  int calls = 0;
  PvPanic device([&] { ++calls; });
  device.write(0, 1, PvPanic::kCrashLoaded);
  device.write(1, 1, PvPanic::kPanicked);  // not the register
  device.write(0, 1, 0);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(device.panicCount(), 0u);
  EXPECT_EQ(device.crashLoadedCount(), 1u);
}

}  // namespace
}  // namespace strata::machine
