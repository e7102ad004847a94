// Page-table walks (Sv39/48/57), permissions, SUM/MXR/MPRV, A/D updates,
// superpages, TLB invalidation by sfence.vma.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

constexpr uint64_t V = 1, R = 2, W = 4, X = 8, U = 16, A = 64, D = 128;

class Mmu : public CpuTest {
 protected:
  static constexpr uint64_t kPool = kRamBase + 0x100000;  // page-table pages come from here
  static constexpr uint64_t kCodeVa = 0x1000;
  static constexpr uint64_t kTrapVector = kRamBase + 0x800;  // M-mode, untranslated

  void useMode(unsigned levels) {
    levels_ = levels;
    next_ = kPool;
    root_ = allocateTable();
  }
  uint64_t allocateTable() {
    const uint64_t table = next_;
    next_ += 4096;
    std::memset(ram(table), 0, 4096);
    return table;
  }
  uint64_t pteAddress(uint64_t va, unsigned leafLevel) {
    uint64_t table = root_;
    for (unsigned level = levels_ - 1; level > leafLevel; --level) {
      const uint64_t slot = table + ((va >> (12 + 9 * level)) & 511) * 8;
      uint64_t pte = peek<uint64_t>(slot);
      if (!(pte & V)) {
        pte = ((allocateTable() >> 12) << 10) | V;
        poke(slot, pte);
      }
      table = ((pte >> 10) & ((1ull << 44) - 1)) << 12;
    }
    return table + ((va >> (12 + 9 * leafLevel)) & 511) * 8;
  }
  void map(uint64_t va, uint64_t pa, uint64_t flags, unsigned leafLevel = 0) {
    poke(pteAddress(va, leafLevel), ((pa >> 12) << 10) | flags | V);
  }
  uint64_t pte(uint64_t va, unsigned leafLevel = 0) { return peek<uint64_t>(pteAddress(va, leafLevel)); }
  uint64_t satpValue() const {
    const uint64_t mode = levels_ == 3 ? 8 : levels_ == 4 ? 9 : 10;
    return (mode << 60) | (root_ >> 12);
  }
  // Maps the code page, enables translation and enters S-mode at the code.
  void start(const std::vector<uint32_t>& code, Privilege mode = Privilege::Supervisor) {
    map(kCodeVa, kRamBase, R | X | A | (mode == Privilege::User ? U : 0));
    loadWords(kRamBase, code);
    hart().writeCsr(csr::kMtvec, kTrapVector);
    hart().writeCsr(csr::kSatp, satpValue());
    hart().setPrivilege(mode);
    hart().setPc(kCodeVa);
  }
  void expectTrap(uint64_t cause, uint64_t tval) {
    EXPECT_EQ(hart().privilege(), Privilege::Machine);
    EXPECT_EQ(csr(csr::kMcause), cause);
    EXPECT_EQ(csr(csr::kMtval), tval);
  }

  unsigned levels_ = 3;
  uint64_t root_ = 0;
  uint64_t next_ = kPool;
};

TEST_F(Mmu, Sv39LoadAndStoreThroughMapping) {
  useMode(3);
  const uint64_t dataVa = 0x40000000, dataPa = kRamBase + 0x20000;
  map(dataVa, dataPa, R | W | A | D);
  poke<uint64_t>(dataPa + 8, 0x1122334455667788ull);
  hart().setXreg(s0, dataVa);
  start({ld(a0, s0, 8), addi(a1, a0, 1), sd(a1, s0, 16)});
  hart().step(3);
  EXPECT_EQ(x(a0), 0x1122334455667788ull);
  EXPECT_EQ(peek<uint64_t>(dataPa + 16), 0x1122334455667789ull);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(hart().pc(), kCodeVa + 12);
}

TEST_F(Mmu, AccessedAndDirtyBitsAreSetByHardware) {
  useMode(3);
  const uint64_t dataVa = 0x40000000, dataPa = kRamBase + 0x20000;
  map(dataVa, dataPa, R | W);
  hart().setXreg(s0, dataVa);
  start({ld(a0, s0, 0), sd(a0, s0, 8)});
  hart().step(1);
  EXPECT_EQ(pte(dataVa) & (A | D), A);
  hart().step(1);
  EXPECT_EQ(pte(dataVa) & (A | D), A | D);
  EXPECT_EQ(pte(kCodeVa) & A, A);
}

TEST_F(Mmu, StoreToReadOnlyPageFaults) {
  useMode(3);
  const uint64_t dataVa = 0x40000000;
  map(dataVa, kRamBase + 0x20000, R | A | D);
  hart().setXreg(s0, dataVa);
  start({ld(a0, s0, 0), sw(a0, s0, 0x24)});
  hart().step(2);
  expectTrap(csr::kStorePageFault, dataVa + 0x24);
  EXPECT_EQ(csr(csr::kMepc), kCodeVa + 4);
}

TEST_F(Mmu, ExecuteOnlyPageNeedsMxrToLoad) {
  useMode(3);
  const uint64_t dataVa = 0x40000000, dataPa = kRamBase + 0x20000;
  map(dataVa, dataPa, X | A);
  poke<uint32_t>(dataPa, 0xdeadbeef);
  hart().setXreg(s0, dataVa);
  start({lwu(a0, s0, 0)});
  hart().step(1);
  expectTrap(csr::kLoadPageFault, dataVa);
  hart().writeCsr(csr::kMstatus, csr::kStatusMxr);
  hart().setPrivilege(Privilege::Supervisor);
  hart().setPc(kCodeVa);
  hart().step(1);
  EXPECT_EQ(x(a0), 0xdeadbeefu);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
}

TEST_F(Mmu, SupervisorAccessToUserPagesNeedsSum) {
  useMode(3);
  const uint64_t userVa = 0x40000000, userPa = kRamBase + 0x20000;
  map(userVa, userPa, R | W | X | U | A | D);
  poke<uint64_t>(userPa, 77);
  hart().setXreg(s0, userVa);
  start({ld(a0, s0, 0)});
  hart().step(1);
  expectTrap(csr::kLoadPageFault, userVa);
  hart().writeCsr(csr::kMstatus, csr::kStatusSum);
  hart().setPrivilege(Privilege::Supervisor);
  hart().setPc(kCodeVa);
  hart().step(1);
  EXPECT_EQ(x(a0), 77u);
  // Even with SUM, S-mode may not execute user pages.
  hart().setPc(userVa);
  hart().step(1);
  expectTrap(csr::kInstructionPageFault, userVa);
}

TEST_F(Mmu, UserCannotTouchSupervisorPages) {
  useMode(3);
  const uint64_t dataVa = 0x40000000;
  map(dataVa, kRamBase + 0x20000, R | W | A | D);
  hart().setXreg(s0, dataVa);
  start({ld(a0, s0, 0)}, Privilege::User);
  hart().step(1);
  expectTrap(csr::kLoadPageFault, dataVa);
  EXPECT_EQ((csr(csr::kMstatus) & csr::kStatusMpp) >> 11, 0u);
}

TEST_F(Mmu, MegapageAndMisalignedMegapage) {
  useMode(3);
  const uint64_t megaVa = 0x40200000, megaPa = kRamBase + 0x200000;
  map(megaVa, megaPa, R | W | A | D, 1);
  poke<uint64_t>(megaPa + 0x12340, 0xabcdef);
  const uint64_t badVa = 0x40400000;
  map(badVa, kRamBase + 0x1000, R | W | A | D, 1);  // PPN not 2 MiB aligned
  hart().setXreg(s0, megaVa + 0x12340);
  hart().setXreg(s1, badVa);
  start({ld(a0, s0, 0), ld(a1, s1, 0)});
  hart().step(2);
  EXPECT_EQ(x(a0), 0xabcdefu);
  expectTrap(csr::kLoadPageFault, badVa);
}

TEST_F(Mmu, GigapageMapsWithOffset) {
  useMode(3);
  // A 1 GiB page at VA 0xC0000000 -> PA 0x80000000 (the RAM base is 1 GiB aligned).
  map(0xc0000000, kRamBase, R | W | A | D, 2);
  poke<uint64_t>(kRamBase + 0x345678, 0x5150);
  hart().setXreg(s0, 0xc0345678);
  start({ld(a0, s0, 0)});
  hart().step(1);
  EXPECT_EQ(x(a0), 0x5150u);
}

TEST_F(Mmu, Sv48AndSv57Walks) {
  for (unsigned levels : {4u, 5u}) {
    useMode(levels);
    const uint64_t dataVa = levels == 4 ? 0x00007f0000000000ull : 0x00ff000000000000ull;
    const uint64_t dataPa = kRamBase + 0x30000;
    map(dataVa, dataPa, R | W | A | D);
    poke<uint64_t>(dataPa, 1000 + levels);
    hart().setXreg(s0, dataVa);
    hart().requestRemoteFence(RemoteFence::InstructionCache);
    start({ld(a0, s0, 0)});
    hart().step(1);
    EXPECT_EQ(x(a0), 1000u + levels) << levels;
    EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
    hart().setPrivilege(Privilege::Machine);
  }
}

TEST_F(Mmu, NonCanonicalAddressFaults) {
  useMode(3);
  const uint64_t bad = 0x0000008000000000ull;  // bit 39 set, bit 38 clear: not Sv39-canonical
  hart().setXreg(s0, bad);
  start({ld(a0, s0, 0)});
  hart().step(1);
  expectTrap(csr::kLoadPageFault, bad);
}

TEST_F(Mmu, ReservedPteBitsFault) {
  useMode(3);
  const uint64_t dataVa = 0x40000000;
  map(dataVa, kRamBase + 0x20000, R | W | A | D | (1ull << 61));  // PBMT without Svpbmt
  hart().setXreg(s0, dataVa);
  start({ld(a0, s0, 0)});
  hart().step(1);
  expectTrap(csr::kLoadPageFault, dataVa);
}

TEST_F(Mmu, SfenceVmaPicksUpRemappedPage) {
  useMode(3);
  const uint64_t dataVa = 0x40000000, first = kRamBase + 0x20000, second = kRamBase + 0x21000;
  map(dataVa, first, R | W | A | D);
  poke<uint64_t>(first, 1);
  poke<uint64_t>(second, 2);
  hart().setXreg(s0, dataVa);
  start({ld(a0, s0, 0), sfence_vma(s0, zero), ld(a1, s0, 0)});
  hart().step(1);
  EXPECT_EQ(x(a0), 1u);
  map(dataVa, second, R | W | A | D);  // the guest edits its page table
  hart().step(2);
  EXPECT_EQ(x(a1), 2u);
}

TEST_F(Mmu, PageCrossingLoadUsesBothTranslations) {
  useMode(3);
  const uint64_t va = 0x40000000;
  map(va, kRamBase + 0x25000, R | W | A | D);
  map(va + 0x1000, kRamBase + 0x22000, R | W | A | D);  // physically not contiguous
  poke<uint32_t>(kRamBase + 0x25ffc, 0x44332211);
  poke<uint32_t>(kRamBase + 0x22000, 0x88776655);
  hart().setXreg(s0, va + 0xffe);
  start({ld(a0, s0, 0)});
  hart().step(1);
  EXPECT_EQ(x(a0), 0x0000887766554433ull);
}

TEST_F(Mmu, StoreFaultOnSecondPageLeavesFirstUntouched) {
  useMode(3);
  const uint64_t va = 0x40000000;
  map(va, kRamBase + 0x25000, R | W | A | D);
  map(va + 0x1000, kRamBase + 0x22000, R | A);  // read-only
  hart().setXreg(s0, va + 0xffc);
  hart().setXreg(a0, ~0ull);
  start({sd(a0, s0, 0)});
  hart().step(1);
  // tval names the part of the access that faulted (privileged spec, mtval).
  expectTrap(csr::kStorePageFault, va + 0x1000);
  EXPECT_EQ(peek<uint32_t>(kRamBase + 0x25ffc), 0u);
}

TEST_F(Mmu, MprvTranslatesMachineLoads) {
  useMode(3);
  const uint64_t dataVa = 0x40000000, dataPa = kRamBase + 0x20000;
  map(dataVa, dataPa, R | W | A | D);
  poke<uint64_t>(dataPa, 0x77);
  hart().writeCsr(csr::kSatp, satpValue());
  hart().writeCsr(csr::kMstatus, csr::kStatusMprv | (1ull << 11));  // MPP = S
  hart().setXreg(s0, dataVa);
  loadWords(kRamBase, {ld(a0, s0, 0)});
  hart().setPc(kRamBase);  // fetch stays untranslated in M-mode
  hart().step(1);
  EXPECT_EQ(x(a0), 0x77u);
  EXPECT_EQ(hart().privilege(), Privilege::Machine);
}

TEST_F(Mmu, InstructionFetchFromNonExecutablePage) {
  useMode(3);
  const uint64_t dataVa = 0x40000000;
  map(dataVa, kRamBase + 0x20000, R | W | A | D);
  start({jalr(zero, s0, 0)});
  hart().setXreg(s0, dataVa + 0x10);
  hart().step(2);
  expectTrap(csr::kInstructionPageFault, dataVa + 0x10);
  EXPECT_EQ(csr(csr::kMepc), dataVa + 0x10);
}

}  // namespace
}  // namespace strata::cpu::test
