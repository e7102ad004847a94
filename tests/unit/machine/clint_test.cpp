#include "machine/clint.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace strata::machine {
namespace {

class FakeTarget : public ClintTarget {
 public:
  void setSoftwareInterrupt(bool level) override { softwareLevels.push_back(level); }
  void setTimerCompare(uint64_t value) override {
    compare = value;
    ++compareWrites;
  }
  uint64_t timerCompare() const override { return compare; }

  std::vector<bool> softwareLevels;
  uint64_t compare = ~uint64_t{0};  // reset value: never fires
  unsigned compareWrites = 0;
};

class ClintTest : public ::testing::Test {
 protected:
  ClintTest() : clint_(std::vector<ClintTarget*>{&hart0_, &hart1_}, [this] { return time_.load(); }) {}
  FakeTarget hart0_;
  FakeTarget hart1_;
  std::atomic<uint64_t> time_{0x1111'2222'3333'4444};
  Clint clint_;
};

TEST_F(ClintTest, MsipRoutesToTheRightHart) {
  clint_.write(Clint::kMsipBase + 4, 4, 1);
  EXPECT_TRUE(hart0_.softwareLevels.empty());
  EXPECT_EQ(hart1_.softwareLevels, (std::vector<bool>{true}));
  EXPECT_EQ(clint_.read(Clint::kMsipBase + 4, 4), 1u);
  EXPECT_EQ(clint_.read(Clint::kMsipBase, 4), 0u);
  EXPECT_TRUE(clint_.softwareInterruptPending(1));

  clint_.write(Clint::kMsipBase + 4, 4, 0xfffffffe);  // only bit 0 counts
  EXPECT_EQ(hart1_.softwareLevels, (std::vector<bool>{true, false}));
  EXPECT_EQ(clint_.read(Clint::kMsipBase + 4, 4), 0u);

  clint_.write(Clint::kMsipBase, 4, 1);
  EXPECT_EQ(hart0_.softwareLevels, (std::vector<bool>{true}));
  EXPECT_TRUE(clint_.softwareInterruptPending(0));
  EXPECT_FALSE(clint_.softwareInterruptPending(1));
  EXPECT_FALSE(clint_.softwareInterruptPending(7));
}

TEST_F(ClintTest, MtimecmpRoutesAs64BitValue) {
  clint_.write(Clint::kMtimecmpBase + 8, 8, 0x0123'4567'89ab'cdef);
  EXPECT_EQ(hart1_.compare, 0x0123'4567'89ab'cdefu);
  EXPECT_EQ(hart0_.compareWrites, 0u);
  EXPECT_EQ(clint_.read(Clint::kMtimecmpBase + 8, 8), 0x0123'4567'89ab'cdefu);
}

TEST_F(ClintTest, MtimecmpHalvesAreAccessibleAs32Bit) {
  clint_.write(Clint::kMtimecmpBase, 4, 0x89ab'cdef);  // low half
  EXPECT_EQ(hart0_.compare, 0xffff'ffff'89ab'cdefu);
  clint_.write(Clint::kMtimecmpBase + 4, 4, 0x0000'0042);  // high half
  EXPECT_EQ(hart0_.compare, 0x0000'0042'89ab'cdefu);
  EXPECT_EQ(clint_.read(Clint::kMtimecmpBase, 4), 0x89ab'cdefu);
  EXPECT_EQ(clint_.read(Clint::kMtimecmpBase + 4, 4), 0x42u);
  EXPECT_EQ(hart1_.compareWrites, 0u);
}

TEST_F(ClintTest, MtimeIsReadableAndReadOnly) {
  EXPECT_EQ(clint_.read(Clint::kMtime, 8), 0x1111'2222'3333'4444u);
  EXPECT_EQ(clint_.read(Clint::kMtime, 4), 0x3333'4444u);
  EXPECT_EQ(clint_.read(Clint::kMtime + 4, 4), 0x1111'2222u);
  clint_.write(Clint::kMtime, 8, 0);
  time_ = 5;
  EXPECT_EQ(clint_.read(Clint::kMtime, 8), 5u);
}

TEST_F(ClintTest, AccessesOutsideRegistersAreHarmless) {
  // Hart 2 does not exist.
  clint_.write(Clint::kMsipBase + 8, 4, 1);
  clint_.write(Clint::kMtimecmpBase + 16, 8, 1);
  EXPECT_EQ(clint_.read(Clint::kMsipBase + 8, 4), 0u);
  EXPECT_EQ(clint_.read(Clint::kMtimecmpBase + 16, 8), 0u);
  // Straddling two registers, or a bad size.
  clint_.write(Clint::kMtimecmpBase + 4, 8, 0);
  clint_.write(Clint::kMtimecmpBase, 3, 0);
  EXPECT_EQ(clint_.read(Clint::kMsipBase, 8), 0u);
  EXPECT_EQ(clint_.read(Clint::kMmioSize, 4), 0u);
  EXPECT_EQ(clint_.read(uint64_t{1} << 60, 8), 0u);
  EXPECT_TRUE(hart0_.softwareLevels.empty());
  EXPECT_TRUE(hart1_.softwareLevels.empty());
  EXPECT_EQ(hart0_.compareWrites + hart1_.compareWrites, 0u);
}

}  // namespace
}  // namespace strata::machine

namespace strata::machine {
namespace {

// Has the cpu::Hart calls HartClintTarget uses, so the adapter is tested without a Hart.
struct FakeHart {
  void setInterruptLine(cpu::InterruptBit bit, bool level) { lines.emplace_back(bit, level); }
  void setMachineTimerCompare(uint64_t value) { compare = value; }
  uint64_t machineTimerCompare() const { return compare; }
  void kick() { ++kicks; }

  std::vector<std::pair<cpu::InterruptBit, bool>> lines;
  uint64_t compare = 0;
  unsigned kicks = 0;
};

TEST(ClintHartAdapterTest, MsipDrivesMachineSoftwareLineAndKicks) {
  FakeHart hart0;
  FakeHart hart1;
  Clint clint(std::vector<FakeHart*>{&hart0, &hart1}, [] { return uint64_t{0}; });
  clint.write(Clint::kMsipBase + 4, 4, 1);
  EXPECT_TRUE(hart0.lines.empty());
  ASSERT_EQ(hart1.lines.size(), 1u);
  EXPECT_EQ(hart1.lines[0], std::make_pair(cpu::kMachineSoftware, true));
  EXPECT_EQ(hart1.kicks, 1u);

  clint.write(Clint::kMtimecmpBase, 8, 12345);
  EXPECT_EQ(hart0.compare, 12345u);
  EXPECT_EQ(hart0.kicks, 1u);
  hart0.compare = 777;  // the hart owns mtimecmp (SBI may set it directly)
  EXPECT_EQ(clint.read(Clint::kMtimecmpBase, 8), 777u);
}

}  // namespace
}  // namespace strata::machine
