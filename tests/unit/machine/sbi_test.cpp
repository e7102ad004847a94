// SBI calls as a guest kernel makes them: the hart mask arithmetic of IPI and
// RFENCE (hart_mask_base + bit) must select exactly the harts named, treat
// base = -1 as "all harts", and refuse anything out of range, never wrap.
#include "machine/sbi.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "cpu/csr_defs.h"
#include "cpu/hart.h"

namespace strata::machine {
namespace {

constexpr uint64_t kIpiExtension = 0x735049;
constexpr uint64_t kRfenceExtension = 0x52464E43;
constexpr unsigned kA0 = 10, kA1 = 11, kA6 = 16, kA7 = 17;
constexpr unsigned kHarts = 4;
constexpr int64_t kInvalidParam = -3;

class SbiTest : public ::testing::Test, private cpu::HartHost, private SbiPlatform {
 protected:
  SbiTest() : ram_(4096), sbi_(static_cast<SbiPlatform&>(*this)) {
    cpu::PhysicalMemory memory{0x80000000, ram_.size(), ram_.data(), nullptr};
    cpu::HartHost& host = *this;
    for (unsigned id = 0; id < kHarts; ++id) harts_.push_back(std::make_unique<cpu::Hart>(id, memory, host));
  }

  // Makes hart 0 call extension/function with a0 = mask, a1 = base; returns a0 (the SBI error).
  int64_t call(uint64_t extension, uint64_t function, uint64_t hartMask, uint64_t hartMaskBase) {
    cpu::Hart& caller = *harts_[0];
    caller.setXreg(kA7, extension);
    caller.setXreg(kA6, function);
    caller.setXreg(kA0, hartMask);
    caller.setXreg(kA1, hartMaskBase);
    sbi_.handleEcall(caller);
    return static_cast<int64_t>(caller.xreg(kA0));
  }

  // Which harts have a supervisor software interrupt pending (bit i = hart i); clears them.
  unsigned takeIpis() {
    unsigned pending = 0;
    for (unsigned id = 0; id < kHarts; ++id) {
      if (harts_[id]->readCsr(cpu::csr::kMip).value_or(0) & cpu::csr::kSsip) pending |= 1u << id;
      harts_[id]->writeCsr(cpu::csr::kMip, 0);
    }
    return pending;
  }

 private:
  uint64_t timeNow() override { return 0; }
  bool supervisorEcall(cpu::Hart&) override { return false; }
  unsigned hartCount() const override { return kHarts; }
  cpu::Hart& hart(unsigned id) override { return *harts_.at(id); }
  HartRunState hartState(unsigned) override { return HartRunState::Started; }
  SbiError startHart(unsigned, uint64_t, uint64_t) override { return SbiError::Failed; }
  void resetSystem(SystemResetKind, uint32_t) override {}
  void consoleWrite(const uint8_t*, size_t) override {}
  size_t consoleRead(uint8_t*, size_t) override { return 0; }
  uint8_t* guestRam(uint64_t, uint64_t) override { return nullptr; }

  std::vector<uint8_t> ram_;
  std::vector<std::unique_ptr<cpu::Hart>> harts_;
  Sbi sbi_;
};

TEST_F(SbiTest, IpiReachesTheHartsTheMaskNames) {
  EXPECT_EQ(call(kIpiExtension, 0, 0b101, 1), 0);
  EXPECT_EQ(takeIpis(), 0b1010u);  // harts 1 and 3
  EXPECT_EQ(call(kIpiExtension, 0, 0b1, 3), 0);
  EXPECT_EQ(takeIpis(), 0b1000u);
  EXPECT_EQ(call(kIpiExtension, 0, 0, 2), 0);  // an empty mask selects nobody
  EXPECT_EQ(takeIpis(), 0u);
}

TEST_F(SbiTest, BaseMinusOneMeansAllHarts) {
  EXPECT_EQ(call(kIpiExtension, 0, 0, ~uint64_t{0}), 0);
  EXPECT_EQ(takeIpis(), 0b1111u);
}

TEST_F(SbiTest, MaskBeyondTheLastHartIsInvalid) {
  EXPECT_EQ(call(kIpiExtension, 0, 0b100, 2), kInvalidParam);  // hart 4 does not exist
  EXPECT_EQ(call(kIpiExtension, 0, uint64_t{1} << 63, 0), kInvalidParam);
  EXPECT_EQ(call(kIpiExtension, 0, 1, kHarts), kInvalidParam);
  EXPECT_EQ(call(kIpiExtension, 0, 0, kHarts), kInvalidParam);  // the base itself names no hart
  EXPECT_EQ(takeIpis(), 0u) << "a refused call must not interrupt any hart";
}

TEST_F(SbiTest, HugeBaseDoesNotWrapToSmallHartIds) {
  // base + bit wraps past 2^64 to hart 0 (or 1) if computed naively.
  EXPECT_EQ(call(kIpiExtension, 0, 0b100, ~uint64_t{0} - 1), kInvalidParam);
  EXPECT_EQ(call(kIpiExtension, 0, uint64_t{1} << 63, uint64_t{1} << 63), kInvalidParam);
  EXPECT_EQ(call(kIpiExtension, 0, ~uint64_t{0}, ~uint64_t{0} - 62), kInvalidParam);
  EXPECT_EQ(takeIpis(), 0u);
  EXPECT_EQ(call(kRfenceExtension, 0, 0b1000, ~uint64_t{0} - 2), kInvalidParam);
}

}  // namespace
}  // namespace strata::machine
