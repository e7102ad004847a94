// A extension: AMO results, LR/SC, alignment and device faults, and harts on
// two host threads sharing one counter.
#include <thread>

#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

using Atomics = CpuTest;

TEST_F(Atomics, AmoOperationsReturnOldValue) {
  const uint64_t w = kRamBase + 0x1000, d = kRamBase + 0x1008;
  poke<uint32_t>(w, 0x80000000u);
  poke<uint64_t>(d, 0xf0f0);
  hart().setXreg(s0, w);
  hart().setXreg(s1, d);
  hart().setXreg(a0, 5);
  hart().setXreg(a1, static_cast<uint64_t>(-3));
  runProgram({
      amoadd_w(t0, s0, a0),    // t0 = sext(0x80000000), mem = 0x80000005
      amoswap_w(t1, s0, a1),   // t1 = sext(0x80000005), mem = 0xfffffffd
      amomin_w(t2, s0, a0),    // signed min(-3, 5) = -3 stays
      amomaxu_w(s2, s0, a0),   // unsigned max(0xfffffffd, 5) stays
      amoor_w(s3, s0, a0),     // mem = 0xfffffffd | 5 = 0xfffffffd
      amoxor_w(s4, s0, a1),    // mem = 0
      amoand_d(s5, s1, a0),    // s5 = 0xf0f0, mem = 0xf0f0 & 5 = 0
      amomax_d(s6, s1, a1),    // max(0, -3) = 0
      amominu_d(s7, s1, a1),   // minu(0, huge) = 0
      amoadd_d(s8, s1, a1),    // mem = -3
  });
  EXPECT_EQ(x(t0), 0xffffffff80000000ull);
  EXPECT_EQ(x(t1), 0xffffffff80000005ull);
  EXPECT_EQ(x(t2), static_cast<uint64_t>(-3));
  EXPECT_EQ(x(s2), static_cast<uint64_t>(-3));
  EXPECT_EQ(x(s3), static_cast<uint64_t>(-3));
  EXPECT_EQ(x(s4), static_cast<uint64_t>(-3));
  EXPECT_EQ(peek<uint32_t>(w), 0u);
  EXPECT_EQ(x(s5), 0xf0f0u);
  EXPECT_EQ(x(s6), 0u);
  EXPECT_EQ(x(s7), 0u);
  EXPECT_EQ(x(s8), 0u);
  EXPECT_EQ(peek<uint64_t>(d), static_cast<uint64_t>(-3));
}

TEST_F(Atomics, LoadReservedStoreConditional) {
  const uint64_t addr = kRamBase + 0x1000;
  poke<uint64_t>(addr, 41);
  hart().setXreg(s0, addr);
  hart().setXreg(a1, 100);
  runProgram({
      lr_d(a0, s0),          // a0 = 41
      addi(a0, a0, 1),
      sc_d(t0, s0, a0),      // succeeds: t0 = 0, mem = 42
      sc_d(t1, s0, a1),      // no reservation: fails, t1 = 1
      lr_w(a2, s0),          // a2 = 42
      sw(a1, s0, 0),         // our own store changes the value
      sc_w(t2, s0, a2),      // fails: memory no longer holds what LR saw
  });
  EXPECT_EQ(x(t0), 0u);
  EXPECT_EQ(x(t1), 1u);
  EXPECT_EQ(x(a2), 42u);
  EXPECT_EQ(x(t2), 1u);
  EXPECT_EQ(peek<uint64_t>(addr), 100u);
}

TEST_F(Atomics, MisalignedAtomicsRaiseMisalignedExceptions) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x800);
  hart().setXreg(s0, kRamBase + 0x1002);
  runProgram({amoadd_w(a0, s0, a1)}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kStoreMisaligned);
  EXPECT_EQ(csr(csr::kMtval), kRamBase + 0x1002);
  loadWords(kRamBase + 0x800, {lr_d(a0, s0)});
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), csr::kLoadMisaligned);
}

TEST_F(Atomics, AtomicsOnDevicesAreAccessFaults) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x800);
  hart().setXreg(s0, TestMmio::kBase);
  runProgram({amoswap_w(a0, s0, a1)}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kStoreAccessFault);
  EXPECT_TRUE(mmio_.writes.empty());
}

// Two harts on two host threads increment one counter; every increment must land.
class SharedCounter : public CpuTest {
 protected:
  static constexpr uint64_t kCounter = kRamBase + 0x10000;
  static constexpr uint64_t kIterations = 200000;

  void runBoth(uint64_t entry0, uint64_t entry1) {
    host_.onEcall = [](Hart& h) {
      h.stopSelf();
      return true;
    };
    Hart second(1, PhysicalMemory{kRamBase, kRamSize, ram_.get(), &mmio_}, host_);
    Hart* harts[] = {&hart(), &second};
    const uint64_t entries[] = {entry0, entry1};
    for (int i = 0; i < 2; ++i) {
      harts[i]->resetToSupervisorBoot(entries[i], 0);
      harts[i]->setXreg(s0, kCounter);
      harts[i]->setXreg(t0, kIterations);
      harts[i]->setXreg(t1, 1);
    }
    ExitReason reasons[2];
    std::thread other([&] { reasons[1] = second.run(); });
    reasons[0] = hart().run();
    other.join();
    EXPECT_EQ(reasons[0], ExitReason::HartStopped);
    EXPECT_EQ(reasons[1], ExitReason::HartStopped);
  }
};

constexpr uint64_t kAmoLoop = 0x80000000 + 0x100;
constexpr uint64_t kLrScLoop = 0x80000000 + 0x200;

TEST_F(SharedCounter, AmoAddFromTwoThreads) {
  loadWords(kAmoLoop, {amoadd_w(zero, s0, t1), addi(t0, t0, -1), bne(t0, zero, -8), ecall});
  runBoth(kAmoLoop, kAmoLoop);
  EXPECT_EQ(peek<uint32_t>(kCounter), 2 * kIterations);
}

TEST_F(SharedCounter, LrScLoopFromTwoThreads) {
  loadWords(kLrScLoop, {lr_w(a0, s0), addi(a0, a0, 1), sc_w(a1, s0, a0), bne(a1, zero, -12), addi(t0, t0, -1),
                        bne(t0, zero, -20), ecall});
  runBoth(kLrScLoop, kLrScLoop);
  EXPECT_EQ(peek<uint32_t>(kCounter), 2 * kIterations);
}

TEST_F(SharedCounter, MixedAmoAndLrSc) {
  loadWords(kAmoLoop, {amoadd_w(zero, s0, t1), addi(t0, t0, -1), bne(t0, zero, -8), ecall});
  loadWords(kLrScLoop, {lr_w(a0, s0), addi(a0, a0, 1), sc_w(a1, s0, a0), bne(a1, zero, -12), addi(t0, t0, -1),
                        bne(t0, zero, -20), ecall});
  runBoth(kAmoLoop, kLrScLoop);
  EXPECT_EQ(peek<uint32_t>(kCounter), 2 * kIterations);
}

}  // namespace
}  // namespace strata::cpu::test
