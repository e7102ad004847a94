// Physical memory protection: region matching (TOR, NA4, NAPOT), priority,
// partial matches, the lock bit against M-mode, fetch checks on pages a region
// splits, and cached translations dropped when the rules change.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

constexpr uint8_t kR = 1, kW = 2, kX = 4, kTor = 1 << 3, kNa4 = 2 << 3, kNapot = 3 << 3, kLock = 0x80;
constexpr uint64_t kTrapVector = 0x80000f00;

class Pmp : public CpuTest {
 protected:
  Pmp() {
    hart().writeCsr(csr::kPmpcfg0, 0);
    hart().writeCsr(csr::kPmpaddr0, 0);
    hart().writeCsr(csr::kMtvec, kTrapVector);
  }
  // Entry `index` of pmpcfg0 (entries 0-7) gets `cfg`, the others keep theirs.
  void setEntry(unsigned index, uint64_t address, uint8_t cfg) {
    hart().writeCsr(csr::kPmpaddr0 + index, address);
    uint64_t all = *hart().readCsr(csr::kPmpcfg0);
    all = (all & ~(0xffull << (8 * index))) | (static_cast<uint64_t>(cfg) << (8 * index));
    hart().writeCsr(csr::kPmpcfg0, all);
  }
  static uint64_t napot(uint64_t base, uint64_t size) { return (base >> 2) | ((size >> 3) - 1); }
  // Runs one instruction in `privilege` (each at a fresh address on the first
  // page, so no decoded block is reused); true if it trapped to M.
  bool runOne(Privilege privilege, uint32_t instruction) {
    const uint64_t pc = kRamBase + nextCodeOffset_;
    nextCodeOffset_ += 4;
    hart().setPrivilege(privilege);
    loadWords(pc, {instruction});
    hart().setPc(pc);
    hart().step(1);
    return hart().pc() == kTrapVector;
  }
  uint64_t nextCodeOffset_ = 0;
  uint64_t csr(uint16_t number) { return *hart().readCsr(number); }
};

TEST_F(Pmp, NoActiveEntryDeniesSupervisorButNotMachine) {
  EXPECT_TRUE(runOne(Privilege::Supervisor, addi(a0, zero, 1)));
  EXPECT_EQ(csr(csr::kMcause), csr::kInstructionAccessFault);
  EXPECT_EQ(csr(csr::kMtval), kRamBase);
  EXPECT_FALSE(runOne(Privilege::Machine, addi(a0, zero, 1)));
  EXPECT_EQ(x(a0), 1u);
}

TEST_F(Pmp, LowestMatchingEntryDecides) {
  const uint64_t data = kRamBase + 0x2000;
  setEntry(0, data >> 2, kNa4 | kR);                      // one read-only word
  setEntry(1, napot(kRamBase, 1 << 20), kNapot | kR | kW | kX);  // the first MiB: everything
  hart().setXreg(a1, data);
  poke<uint32_t>(data, 0x1234);
  EXPECT_FALSE(runOne(Privilege::Supervisor, lw(a0, a1, 0)));
  EXPECT_EQ(x(a0), 0x1234u);
  EXPECT_TRUE(runOne(Privilege::Supervisor, sw(a0, a1, 0)));
  EXPECT_EQ(csr(csr::kMcause), csr::kStoreAccessFault);
  EXPECT_EQ(csr(csr::kMtval), data);
  EXPECT_FALSE(runOne(Privilege::User, sw(a0, a1, 4)));  // the next word belongs to entry 1
  EXPECT_EQ(peek<uint32_t>(data + 4), 0x1234u);
  // Beyond the first MiB nothing matches.
  hart().setXreg(a1, kRamBase + (1 << 20));
  EXPECT_TRUE(runOne(Privilege::Supervisor, lw(a0, a1, 0)));
  EXPECT_EQ(csr(csr::kMcause), csr::kLoadAccessFault);
}

TEST_F(Pmp, AccessMatchingOnlyPartOfAnEntryFails) {
  const uint64_t data = kRamBase + 0x2000;
  setEntry(0, data >> 2, kNa4 | kR | kW);
  setEntry(1, napot(kRamBase, 1 << 20), kNapot | kR | kW | kX);
  hart().setXreg(a1, data);
  EXPECT_TRUE(runOne(Privilege::Supervisor, ld(a0, a1, 0)));  // bytes 4-7 are outside entry 0
  EXPECT_EQ(csr(csr::kMcause), csr::kLoadAccessFault);
  EXPECT_FALSE(runOne(Privilege::Supervisor, lw(a0, a1, 0)));
}

TEST_F(Pmp, TorRangeUsesThePreviousAddress) {
  setEntry(0, (kRamBase + 0x1000) >> 2, 0);               // OFF, only the lower bound
  setEntry(1, (kRamBase + 0x3000) >> 2, kTor | kR);       // [base+0x1000, base+0x3000)
  setEntry(2, napot(kRamBase, 0x1000), kNapot | kX);      // the code page
  hart().setXreg(a1, kRamBase + 0x2ffc);
  EXPECT_FALSE(runOne(Privilege::User, lw(a0, a1, 0)));
  hart().setXreg(a1, kRamBase + 0x3000);
  EXPECT_TRUE(runOne(Privilege::User, lw(a0, a1, 0)));
  EXPECT_EQ(csr(csr::kMcause), csr::kLoadAccessFault);
}

TEST_F(Pmp, LockedEntriesBindMachineModeAndFreezeThemselves) {
  const uint64_t data = kRamBase + 0x4000;
  setEntry(0, napot(data, 0x1000), kNapot | kR);
  hart().setXreg(a1, data);
  EXPECT_FALSE(runOne(Privilege::Machine, sw(a1, a1, 0)));  // unlocked: M is not bound
  setEntry(0, napot(data, 0x1000), kNapot | kR | kLock);
  EXPECT_TRUE(runOne(Privilege::Machine, sw(a1, a1, 0)));
  EXPECT_EQ(csr(csr::kMcause), csr::kStoreAccessFault);
  // Neither the configuration nor the address can change until reset.
  hart().writeCsr(csr::kPmpcfg0, kNapot | kR | kW | kX);
  hart().writeCsr(csr::kPmpaddr0, 0);
  EXPECT_EQ(csr(csr::kPmpcfg0) & 0xff, uint64_t{kNapot | kR | kLock});
  EXPECT_EQ(csr(csr::kPmpaddr0), napot(data, 0x1000));
  // A locked TOR entry freezes the address below it too.
  setEntry(2, (kRamBase + 0x8000) >> 2, 0);
  setEntry(3, (kRamBase + 0x9000) >> 2, kTor | kR | kLock);
  hart().writeCsr(csr::kPmpaddr0 + 2, 0);
  EXPECT_EQ(csr(csr::kPmpaddr0 + 2), (kRamBase + 0x8000) >> 2);
}

TEST_F(Pmp, FetchStopsAtTheEdgeOfAnExecutableRegionInsideAPage) {
  // Only the first two instructions are executable; the third is on the same page.
  setEntry(0, (kRamBase + 8) >> 2, kTor | kX);
  hart().setPrivilege(Privilege::Supervisor);
  loadWords(kRamBase, {addi(a0, zero, 1), addi(a0, a0, 1), addi(a0, a0, 1)});
  hart().setPc(kRamBase);
  hart().step(3);
  EXPECT_EQ(x(a0), 2u);
  EXPECT_EQ(hart().pc(), kTrapVector);
  EXPECT_EQ(csr(csr::kMcause), csr::kInstructionAccessFault);
  EXPECT_EQ(csr(csr::kMtval), kRamBase + 8);
}

TEST_F(Pmp, NewRulesApplyToPagesAlreadyCached) {
  setEntry(0, napot(kRamBase, 1 << 20), kNapot | kR | kW | kX);
  const uint64_t data = kRamBase + 0x5000;
  hart().setXreg(a1, data);
  EXPECT_FALSE(runOne(Privilege::Supervisor, sw(a1, a1, 0)));  // the page is now in the write TLB
  setEntry(1, napot(kRamBase, 1 << 20), kNapot | kR | kW | kX);
  setEntry(0, napot(data, 0x1000), kNapot | kR);
  EXPECT_TRUE(runOne(Privilege::Supervisor, sw(a1, a1, 0)));
  EXPECT_EQ(csr(csr::kMcause), csr::kStoreAccessFault);
}

TEST_F(Pmp, PageTableReadsAreCheckedAsSupervisorAccesses) {
  // An Sv39 root table whose page PMP does not let S-mode read.
  const uint64_t root = kRamBase + 0x10000;
  setEntry(0, napot(root, 0x1000), kNapot);
  setEntry(1, napot(kRamBase, 1 << 20), kNapot | kR | kW | kX);
  poke<uint64_t>(root + 8 * 2, ((kRamBase >> 12) << 10) | 0xcf);  // 1 GiB leaf at 0x80000000, RWX AD V
  hart().writeCsr(csr::kSatp, (csr::kSatpModeSv39 << 60) | (root >> 12));
  hart().writeCsr(csr::kMedeleg, 0);
  EXPECT_TRUE(runOne(Privilege::Supervisor, addi(a0, zero, 1)));
  EXPECT_EQ(csr(csr::kMcause), csr::kInstructionAccessFault);
  setEntry(0, napot(root, 0x1000), kNapot | kR);
  EXPECT_FALSE(runOne(Privilege::Supervisor, addi(a0, zero, 7)));
  EXPECT_EQ(x(a0), 7u);
}

}  // namespace
}  // namespace strata::cpu::test
