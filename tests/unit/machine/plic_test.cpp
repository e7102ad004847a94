#include "machine/plic.h"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

namespace strata::machine {
namespace {

using Drive = std::tuple<unsigned, cpu::InterruptBit, bool>;

class PlicTest : public ::testing::Test {
 protected:
  // Two harts: contexts 0 (hart 0 M), 1 (hart 0 S), 2 (hart 1 M), 3 (hart 1 S).
  PlicTest()
      : plic_(2, 96, [this](unsigned hart, cpu::InterruptBit bit, bool level) {
          drives_.emplace_back(hart, bit, level);
        }) {}

  static uint64_t priority(unsigned source) { return Plic::kPriorityBase + 4 * source; }
  static uint64_t enable(unsigned context, unsigned word) {
    return Plic::kEnableBase + Plic::kEnableStride * context + 4 * word;
  }
  static uint64_t threshold(unsigned context) { return Plic::kContextBase + Plic::kContextStride * context; }
  static uint64_t claim(unsigned context) { return threshold(context) + Plic::kClaimOffset; }

  void write32(uint64_t offset, uint32_t value) { plic_.write(offset, 4, value); }
  uint32_t read32(uint64_t offset) { return static_cast<uint32_t>(plic_.read(offset, 4)); }

  std::vector<Drive> drives_;
  Plic plic_;
};

TEST_F(PlicTest, PriorityRegistersHoldThreeBitsAndSourceZeroIsHardwired) {
  write32(priority(5), 0xffffffff);
  write32(priority(0), 3);
  EXPECT_EQ(read32(priority(5)), 7u);
  EXPECT_EQ(read32(priority(0)), 0u);
  // Beyond the last source (95) nothing is implemented.
  write32(priority(96), 3);
  EXPECT_EQ(read32(priority(96)), 0u);
}

TEST_F(PlicTest, EnableBitsAreMaskedToExistingSources) {
  write32(enable(1, 0), 0xffffffff);
  EXPECT_EQ(read32(enable(1, 0)), 0xfffffffeu);  // source 0 does not exist
  write32(enable(1, 2), 0xffffffff);
  EXPECT_EQ(read32(enable(1, 2)), 0xffffffffu);  // sources 64..95 all exist
  write32(enable(1, 3), 0xffffffff);              // sources 96.. do not
  EXPECT_EQ(read32(enable(1, 3)), 0u);
  write32(enable(4, 0), 0xffffffff);  // no context 4 with two harts
  EXPECT_EQ(read32(enable(4, 0)), 0u);
}

TEST_F(PlicTest, ClaimAndCompleteOnSupervisorContext) {
  write32(priority(10), 1);
  write32(enable(1, 0), 1u << 10);
  EXPECT_TRUE(drives_.empty());

  plic_.line(10).setLevel(true);
  EXPECT_EQ(read32(Plic::kPendingBase), 1u << 10);
  ASSERT_EQ(drives_.size(), 1u);
  EXPECT_EQ(drives_[0], Drive(0, cpu::kSupervisorExternal, true));

  EXPECT_EQ(read32(claim(1)), 10u);
  EXPECT_EQ(read32(Plic::kPendingBase), 0u);
  ASSERT_EQ(drives_.size(), 2u);
  EXPECT_EQ(drives_[1], Drive(0, cpu::kSupervisorExternal, false));
  EXPECT_EQ(read32(claim(1)), 0u);  // nothing left to claim

  plic_.line(10).setLevel(false);
  write32(claim(1), 10);
  EXPECT_EQ(read32(Plic::kPendingBase), 0u);
  EXPECT_EQ(drives_.size(), 2u);
}

TEST_F(PlicTest, MachineContextOfSecondHartDrivesItsMeip) {
  write32(priority(33), 2);
  write32(enable(2, 1), 1u << 1);  // source 33 = word 1, bit 1
  plic_.line(33).setLevel(true);
  ASSERT_EQ(drives_.size(), 1u);
  EXPECT_EQ(drives_[0], Drive(1, cpu::kMachineExternal, true));
  EXPECT_EQ(read32(Plic::kPendingBase + 4), 1u << 1);
  EXPECT_EQ(read32(claim(0)), 0u);  // not enabled for hart 0's M context
  EXPECT_EQ(read32(claim(2)), 33u);
  EXPECT_EQ(drives_.back(), Drive(1, cpu::kMachineExternal, false));
}

TEST_F(PlicTest, LevelStillAssertedAtCompleteBecomesPendingAgain) {
  write32(priority(7), 1);
  write32(enable(1, 0), 1u << 7);
  plic_.line(7).setLevel(true);
  EXPECT_EQ(read32(claim(1)), 7u);
  // While claimed, the asserted line does not re-pend or interrupt.
  plic_.line(7).setLevel(true);
  EXPECT_EQ(read32(Plic::kPendingBase), 0u);
  EXPECT_EQ(read32(claim(1)), 0u);
  const size_t drivesBeforeComplete = drives_.size();

  write32(claim(1), 7);
  EXPECT_EQ(read32(Plic::kPendingBase), 1u << 7);
  ASSERT_EQ(drives_.size(), drivesBeforeComplete + 1);
  EXPECT_EQ(drives_.back(), Drive(0, cpu::kSupervisorExternal, true));
  EXPECT_EQ(read32(claim(1)), 7u);
}

TEST_F(PlicTest, DeassertedLineWithdrawsItsRequest) {
  write32(priority(3), 1);
  write32(enable(1, 0), 1u << 3);
  plic_.line(3).setLevel(true);
  plic_.line(3).setLevel(false);
  EXPECT_EQ(read32(Plic::kPendingBase), 0u);
  EXPECT_EQ(drives_, (std::vector<Drive>{{0, cpu::kSupervisorExternal, true},
                                         {0, cpu::kSupervisorExternal, false}}));
  EXPECT_EQ(read32(claim(1)), 0u);
}

TEST_F(PlicTest, ClaimPicksHighestPriorityThenLowestId) {
  write32(priority(4), 2);
  write32(priority(6), 5);
  write32(priority(9), 5);
  write32(enable(1, 0), (1u << 4) | (1u << 6) | (1u << 9));
  plic_.line(9).setLevel(true);
  plic_.line(4).setLevel(true);
  plic_.line(6).setLevel(true);
  EXPECT_EQ(read32(claim(1)), 6u);  // priority 5, lower id than 9
  EXPECT_EQ(read32(claim(1)), 9u);
  EXPECT_EQ(read32(claim(1)), 4u);
  EXPECT_EQ(read32(claim(1)), 0u);
}

TEST_F(PlicTest, PriorityZeroNeverInterrupts) {
  write32(enable(1, 0), 1u << 5);
  plic_.line(5).setLevel(true);
  EXPECT_EQ(read32(Plic::kPendingBase), 1u << 5);  // pending, but masked by priority 0
  EXPECT_TRUE(drives_.empty());
  EXPECT_EQ(read32(claim(1)), 0u);
  write32(priority(5), 1);  // raising the priority delivers it
  EXPECT_EQ(drives_, (std::vector<Drive>{{0, cpu::kSupervisorExternal, true}}));
}

TEST_F(PlicTest, ThresholdMasksPrioritiesAtOrBelowIt) {
  write32(priority(12), 3);
  write32(enable(1, 0), 1u << 12);
  write32(threshold(1), 3);
  EXPECT_EQ(read32(threshold(1)), 3u);
  plic_.line(12).setLevel(true);
  EXPECT_TRUE(drives_.empty());
  EXPECT_EQ(read32(claim(1)), 0u);
  write32(threshold(1), 2);
  EXPECT_EQ(drives_, (std::vector<Drive>{{0, cpu::kSupervisorExternal, true}}));
  write32(threshold(1), 7);
  EXPECT_EQ(drives_.back(), Drive(0, cpu::kSupervisorExternal, false));
}

TEST_F(PlicTest, EnableIsPerContextAndDrivesOnlyOnChange) {
  write32(priority(20), 1);
  write32(enable(1, 0), 1u << 20);
  write32(enable(3, 0), 1u << 20);
  plic_.line(20).setLevel(true);
  EXPECT_EQ(drives_, (std::vector<Drive>{{0, cpu::kSupervisorExternal, true},
                                         {1, cpu::kSupervisorExternal, true}}));
  plic_.line(20).setLevel(true);  // no change, no calls
  write32(priority(20), 2);       // still wanted everywhere, no calls
  EXPECT_EQ(drives_.size(), 2u);

  // Hart 1 claims: both contexts drop, since the source is claimed globally.
  EXPECT_EQ(read32(claim(3)), 20u);
  EXPECT_EQ(drives_.size(), 4u);
  EXPECT_EQ(read32(claim(1)), 0u);

  // Completing from a context where the source is not enabled is ignored.
  write32(claim(0), 20);
  EXPECT_EQ(drives_.size(), 4u);
  write32(claim(3), 20);
  EXPECT_EQ(drives_.size(), 6u);  // still asserted: both contexts fire again
}

TEST_F(PlicTest, InvalidAccessesAreHarmless) {
  EXPECT_EQ(plic_.read(Plic::kPriorityBase + 4, 2), 0u);
  EXPECT_EQ(plic_.read(Plic::kPriorityBase + 2, 4), 0u);
  plic_.write(Plic::kPendingBase, 4, 0xffffffff);  // pending is read-only
  EXPECT_EQ(read32(Plic::kPendingBase), 0u);
  write32(claim(3), 500);  // completing a source that does not exist
  write32(claim(9), 1);    // and a context that does not exist
  EXPECT_EQ(read32(claim(9)), 0u);
  EXPECT_EQ(read32(Plic::kMmioSize - 4), 0u);
  EXPECT_EQ(read32(uint64_t{1} << 40), 0u);
  // Source numbers outside the PLIC give a disconnected line.
  plic_.line(0).setLevel(true);
  plic_.line(96).setLevel(true);
  EXPECT_TRUE(drives_.empty());
}

}  // namespace
}  // namespace strata::machine
