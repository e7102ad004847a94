// mcycle/minstret: values written by software (seen by the next instruction,
// not moving the hart's own retired count), mcountinhibit.CY/IR holding them,
// and the hpm counters and event selectors being read-only zero.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

using Counters = CpuTest;

constexpr uint16_t kMcountinhibit = csr::kMcountinhibit;

TEST_F(Counters, WrittenMinstretIsReadByTheNextInstruction) {
  hart().setXreg(a0, 1000);
  hart().setXreg(a1, 5000);
  runProgram({
      nop,
      csrw(csr::kMinstret, a0),  // the write replaces the count after this instruction retires
      csrr(a2, csr::kMinstret),  // 1000
      nop,
      csrr(a3, csr::kInstret),   // 1002
      csrw(csr::kMcycle, a1),
      csrr(a4, csr::kMcycle),    // 5000
  });
  EXPECT_EQ(x(a2), 1000u);
  EXPECT_EQ(x(a3), 1002u);
  EXPECT_EQ(x(a4), 5000u);
  // The hart's own count of retired instructions is not the guest's minstret.
  EXPECT_EQ(hart().instructionsRetired(), 7u);
  EXPECT_EQ(csr(csr::kMinstret), 1005u);
}

TEST_F(Counters, InhibitHoldsCycleAndInstret) {
  hart().setXreg(a0, 5);  // CY | IR
  hart().setXreg(a1, 50);
  runProgram({
      csrr(s0, csr::kMinstret),       // 0
      csrw(kMcountinhibit, a0),       // counted itself: both hold 2
      nop,
      csrr(s1, csr::kMinstret),       // 2
      csrr(s2, csr::kMcycle),         // 2
      csrw(csr::kMcycle, a1),         // taken while inhibited
      nop,
      csrr(s3, csr::kMcycle),         // 50
      csrw(kMcountinhibit, zero),     // counting again from here
      csrr(s4, csr::kMcycle),         // 50
      csrr(s5, csr::kMinstret),       // 3
      nop,
      csrr(s6, csr::kMinstret),       // 5
  });
  EXPECT_EQ(x(s0), 0u);
  EXPECT_EQ(x(s1), 2u);
  EXPECT_EQ(x(s2), 2u);
  EXPECT_EQ(x(s3), 50u);
  EXPECT_EQ(x(s4), 50u);
  EXPECT_EQ(x(s5), 3u);
  EXPECT_EQ(x(s6), 5u);
  EXPECT_EQ(hart().instructionsRetired(), 13u);
}

TEST_F(Counters, InhibitOneCounterOnly) {
  ASSERT_TRUE(hart().writeCsr(kMcountinhibit, 4));  // IR
  runProgram({nop, nop, nop, csrr(a0, csr::kMinstret), csrr(a1, csr::kMcycle)});
  EXPECT_EQ(x(a0), 0u);
  EXPECT_EQ(x(a1), 4u);
  // Bit 1 (time) does not exist; the register is 32 bits wide.
  ASSERT_TRUE(hart().writeCsr(kMcountinhibit, ~0ull));
  EXPECT_EQ(csr(kMcountinhibit), 0xfffffffdull);
  const uint64_t held = csr(csr::kMcycle);
  hart().setPc(kRamBase);
  hart().step(3);
  EXPECT_EQ(csr(csr::kMcycle), held);
}

TEST_F(Counters, HpmCountersAndEventsAreReadOnlyZero) {
  for (uint16_t n = 3; n <= 31; ++n) {
    SCOPED_TRACE(n);
    EXPECT_TRUE(hart().writeCsr(static_cast<uint16_t>(csr::kMhpmCounter3 + n - 3), 0x1234));
    EXPECT_TRUE(hart().writeCsr(static_cast<uint16_t>(csr::kMhpmEvent3 + n - 3), 1));
    EXPECT_EQ(csr(static_cast<uint16_t>(csr::kMhpmCounter3 + n - 3)), 0u);
    EXPECT_EQ(csr(static_cast<uint16_t>(csr::kMhpmEvent3 + n - 3)), 0u);
    EXPECT_EQ(csr(static_cast<uint16_t>(csr::kHpmCounter3 + n - 3)), 0u);
  }
  // From M-mode by instruction too, counter 31 included.
  hart().setXreg(a0, 77);
  runProgram({csrw(csr::kMhpmCounter31, a0), csrr(a1, csr::kMhpmCounter31), csrr(a2, csr::kHpmCounter31)});
  EXPECT_EQ(hart().privilege(), Privilege::Machine);
  EXPECT_EQ(hart().pc(), kRamBase + 12);
  EXPECT_EQ(x(a1), 0u);
  EXPECT_EQ(x(a2), 0u);
}

}  // namespace
}  // namespace strata::cpu::test
