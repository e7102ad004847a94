// A debugger's points on both engines (the translator translating every block
// on first use): a breakpoint in the middle of a block stops exactly there, a
// debug step retires one instruction, a watchpoint stops before the store it
// catches, and without points the program runs on to its end.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

constexpr uint64_t kBase = 0x80000000, kRamBytes = 1 << 20, kData = kBase + 0x8000;

class DebugPointsTest : public ::testing::TestWithParam<EngineKind> {};

TEST_P(DebugPointsTest, BreakpointsStepsAndWatchpointsStopExactly) {
  const std::vector<uint32_t> program = {
      addi(a0, zero, 0),
      addi(a0, a0, 1),   // +4: the loop
      addi(a0, a0, 1),   // +8: breakpoint, mid-block
      sd(a0, s0, 0),     // +12: the watched store
      addi(t0, a0, -40),
      bne(t0, zero, -16),
      ecall,             // +24
  };
  ProgramHart run(program, kBase, kRamBytes, EngineConfig{GetParam(), 1});
  Hart& hart = *run.hart;
  hart.setXreg(s0, kData);
  ASSERT_EQ(hart.step(9), 9u);  // a loop round and more, decoded (and translated) without points

  hart.setDebugPoints({{kBase + 8}, {}});
  ASSERT_EQ(hart.run(), ExitReason::DebugStop);
  EXPECT_EQ(hart.pc(), kBase + 8);
  EXPECT_EQ(hart.lastDebugStop().kind, DebugStop::Kind::Breakpoint);
  const uint64_t before = hart.xreg(a0);
  EXPECT_EQ(hart.debugStep(), 1u);  // steps off the breakpoint it is on
  EXPECT_EQ(hart.pc(), kBase + 12);
  EXPECT_EQ(hart.xreg(a0), before + 1);
  ASSERT_EQ(hart.run(), ExitReason::DebugStop);  // one round later, at the same place
  EXPECT_EQ(hart.pc(), kBase + 8);
  EXPECT_EQ(hart.xreg(a0), before + 2);

  hart.setDebugPoints({{}, {{kData, 8, false, true}}});
  ASSERT_EQ(hart.run(), ExitReason::DebugStop);
  EXPECT_EQ(hart.pc(), kBase + 12);  // before the store
  const DebugStop stop = hart.lastDebugStop();
  EXPECT_EQ(stop.kind, DebugStop::Kind::Watchpoint);
  EXPECT_EQ(stop.address, kData);
  EXPECT_TRUE(stop.write);
  uint64_t stored = 0;
  ASSERT_TRUE(hart.debugReadMemory(kData, reinterpret_cast<uint8_t*>(&stored), 8));
  EXPECT_EQ(stored, hart.xreg(a0) - 2);  // the previous round's value (a round adds 2)
  EXPECT_EQ(hart.debugStep(), 1u);
  ASSERT_TRUE(hart.debugReadMemory(kData, reinterpret_cast<uint8_t*>(&stored), 8));
  EXPECT_EQ(stored, hart.xreg(a0));

  hart.setDebugPoints({});
  EXPECT_EQ(hart.run(), ExitReason::HartStopped);
  EXPECT_EQ(hart.xreg(a0), 40u);
  EXPECT_EQ(hart.pc(), kBase + 28);
}

TEST_P(DebugPointsTest, MemoryOutsideRamIsRefused) {
  auto ram = std::make_unique<uint8_t[]>(kRamBytes);
  TestHost host;
  TestMmio mmio;
  Hart hart(0, PhysicalMemory{kBase, kRamBytes, ram.get(), &mmio}, host, EngineConfig{GetParam(), 1});
  uint8_t bytes[16] = {};
  EXPECT_FALSE(hart.debugReadMemory(0x1000, bytes, sizeof bytes));
  EXPECT_FALSE(hart.debugReadMemory(kBase + kRamBytes - 8, bytes, sizeof bytes));  // runs off the end
  EXPECT_TRUE(hart.debugWriteMemory(kBase + 0x100, bytes, sizeof bytes));
}

INSTANTIATE_TEST_SUITE_P(Engines, DebugPointsTest, ::testing::Values(EngineKind::Interpreter, EngineKind::Jit));

}  // namespace
}  // namespace strata::cpu::test
