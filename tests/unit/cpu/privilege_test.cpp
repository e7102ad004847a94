// CSR semantics, privilege checks, trap entry/return, delegation, interrupts,
// Sstc, WFI and the cross-thread controls.
#include <chrono>
#include <thread>

#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;
using namespace std::chrono_literals;

class Privileged : public CpuTest {
 protected:
  static constexpr uint64_t kWakeFlag = kRamBase + 0x1000;

  // A program that waits in WFI, then stores 1 at kWakeFlag and spins.
  void loadWfiThenSetFlag() {
    hart().setXreg(s0, kWakeFlag);
    loadWords(kRamBase, {wfi, addi(a0, zero, 1), sw(a0, s0, 0), jal(zero, 0)});
  }
  uint32_t wakeFlag() { return __atomic_load_n(reinterpret_cast<uint32_t*>(ram(kWakeFlag)), __ATOMIC_ACQUIRE); }
  // Polls for up to 2 s for the hart, running on another thread, to set the flag.
  bool waitForWakeFlag() {
    for (int i = 0; i < 400; ++i) {
      if (wakeFlag() == 1) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

constexpr uint64_t kInt = csr::kInterruptFlag;

TEST_F(Privileged, CsrInstructionSemantics) {
  hart().setXreg(a0, 0xf0);
  hart().setXreg(a1, 0x3c);
  runProgram({
      csrrw(t0, csr::kMscratch, a0),  // t0 = 0, mscratch = 0xf0
      csrrs(t1, csr::kMscratch, a1),  // t1 = 0xf0, mscratch = 0xfc
      csrrc(t2, csr::kMscratch, a0),  // t2 = 0xfc, mscratch = 0x0c
      csrrwi(s0, csr::kMscratch, 31), // s0 = 0x0c, mscratch = 31
      csrrsi(s1, csr::kMscratch, 0),  // read only: 31
      csrrci(s2, csr::kMscratch, 3),  // s2 = 31, mscratch = 28
      csrr(s3, csr::kMscratch),
  });
  EXPECT_EQ(x(t0), 0u);
  EXPECT_EQ(x(t1), 0xf0u);
  EXPECT_EQ(x(t2), 0xfcu);
  EXPECT_EQ(x(s0), 0x0cu);
  EXPECT_EQ(x(s1), 31u);
  EXPECT_EQ(x(s2), 31u);
  EXPECT_EQ(x(s3), 28u);
}

TEST_F(Privileged, IdentityAndReadOnlyRegisters) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x200);
  runProgram({csrr(a0, csr::kMisa), csrr(a1, csr::kMhartid), csrr(a2, csr::kMvendorid), csrw(csr::kMhartid, a0)},
             4);
  EXPECT_EQ(x(a0), 0x800000000014112dull);  // RV64 ACDFIMSU
  EXPECT_EQ(x(a1), 0u);
  EXPECT_EQ(x(a2), 0u);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
  EXPECT_EQ(csr(csr::kMtval), csrw(csr::kMhartid, a0));
  EXPECT_EQ(csr(csr::kMepc), kRamBase + 12);
  EXPECT_FALSE(hart().writeCsr(csr::kMhartid, 5));
  EXPECT_FALSE(hart().readCsr(0x7ff).has_value());  // unimplemented
}

TEST_F(Privileged, MstatusIsWarl) {
  ASSERT_TRUE(hart().writeCsr(csr::kMstatus, ~0ull));
  const uint64_t status = csr(csr::kMstatus);
  EXPECT_EQ(status & csr::kStatusUxl, 2ull << 32);
  EXPECT_EQ(status & csr::kStatusSxl, 2ull << 34);
  EXPECT_NE(status & csr::kStatusSd, 0u);  // FS = dirty
  EXPECT_EQ(status & csr::kStatusMpp, 3ull << 11);
  EXPECT_EQ(status & (1ull << 6), 0u);  // UBE not implemented
  // MPP = 2 is reserved: the field keeps its value.
  hart().writeCsr(csr::kMstatus, 2ull << 11);
  EXPECT_EQ(csr(csr::kMstatus) & csr::kStatusMpp, 3ull << 11);
  // The S view shows only S fields.
  hart().writeCsr(csr::kMstatus, csr::kStatusMie | csr::kStatusSie | csr::kStatusSum);
  EXPECT_EQ(csr(csr::kSstatus), csr::kStatusSie | csr::kStatusSum | (2ull << 32));
  hart().writeCsr(csr::kSstatus, 0);
  EXPECT_EQ(csr(csr::kMstatus) & csr::kStatusMie, csr::kStatusMie);  // untouched through sstatus
}

TEST_F(Privileged, InterruptRegisterViews) {
  hart().writeCsr(csr::kMideleg, ~0ull);
  EXPECT_EQ(csr(csr::kMideleg), csr::kSupervisorInterrupts);
  hart().writeCsr(csr::kMie, ~0ull);
  EXPECT_EQ(csr(csr::kMie), csr::kAllInterrupts);
  EXPECT_EQ(csr(csr::kSie), csr::kSupervisorInterrupts);
  hart().writeCsr(csr::kSie, 0);
  EXPECT_EQ(csr(csr::kMie), csr::kMsip | csr::kMtip | csr::kMeip);
  hart().writeCsr(csr::kMip, ~0ull);  // only SSIP, STIP, SEIP are writable
  EXPECT_EQ(csr(csr::kMip), csr::kSupervisorInterrupts);
  hart().writeCsr(csr::kSip, 0);  // only SSIP through sip
  EXPECT_EQ(csr(csr::kMip), csr::kStip | csr::kSeip);
  hart().writeCsr(csr::kMip, 0);
  hart().setInterruptLine(kSupervisorExternal, true);
  EXPECT_EQ(csr(csr::kMip), csr::kSeip);
  EXPECT_EQ(csr(csr::kSip), csr::kSeip);
  hart().setInterruptLine(kSupervisorExternal, false);
  EXPECT_EQ(csr(csr::kMip), 0u);
  hart().writeCsr(csr::kMedeleg, ~0ull);
  EXPECT_EQ(csr(csr::kMedeleg), 0xb3ffu);  // ecall from M can never be delegated
}

// Firmware (OpenSBI) forwards IPIs with `csrs mip, SSIP`. The read-modify-write
// must not copy the PLIC's SEIP line into the software SEIP bit, or SEIP stays
// pending after the line drops and the guest loops in its interrupt handler.
TEST_F(Privileged, SetMipLeavesSeipLineOut) {
  hart().setInterruptLine(kSupervisorExternal, true);
  runProgram({csrrsi(a0, csr::kMip, 2)}, 1);  // set SSIP
  EXPECT_EQ(hart().xreg(a0), csr::kSeip);      // the read still shows the line
  EXPECT_EQ(csr(csr::kMip), csr::kSeip | csr::kSsip);
  hart().setInterruptLine(kSupervisorExternal, false);
  EXPECT_EQ(csr(csr::kMip), csr::kSsip);
  // A software SEIP set by M-mode survives csrrc of another bit.
  hart().writeCsr(csr::kMip, csr::kSeip);
  loadWords(kRamBase + 0x100, {csrrci(a0, csr::kMip, 2)});
  hart().setPc(kRamBase + 0x100);
  hart().step(1);
  EXPECT_EQ(csr(csr::kMip), csr::kSeip);
}

TEST_F(Privileged, SupervisorCannotTouchMachineCsrs) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  hart().setPrivilege(Privilege::Supervisor);
  runProgram({csrr(a0, csr::kSstatus), csrr(a1, csr::kMstatus)}, 2);
  EXPECT_EQ(hart().privilege(), Privilege::Machine);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
  EXPECT_EQ(csr(csr::kMtval), csrr(a1, csr::kMstatus));
  EXPECT_EQ(csr(csr::kMepc), kRamBase + 4);
  EXPECT_EQ((csr(csr::kMstatus) & csr::kStatusMpp) >> 11, 1u);  // came from S
}

TEST_F(Privileged, CounterAccessFollowsCounteren) {
  host_.time = 12345;
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  hart().setPrivilege(Privilege::Supervisor);
  runProgram({csrr(a0, csr::kTime)}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);  // mcounteren.TM = 0
  hart().writeCsr(csr::kMcounteren, 0x2);
  hart().setPrivilege(Privilege::Supervisor);
  hart().setPc(kRamBase);
  hart().step(1);
  EXPECT_EQ(x(a0), 12345u);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  // U-mode also needs scounteren.
  hart().setPrivilege(Privilege::User);
  hart().setPc(kRamBase);
  hart().step(1);
  EXPECT_EQ(hart().privilege(), Privilege::Machine);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
}

TEST_F(Privileged, EcallFromUserTrapsToMachineOrDelegatedSupervisor) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  hart().writeCsr(csr::kStvec, kRamBase + 0x400);
  hart().setPrivilege(Privilege::User);
  runProgram({ecall}, 1);
  EXPECT_EQ(hart().privilege(), Privilege::Machine);
  EXPECT_EQ(csr(csr::kMcause), csr::kEcallFromU);
  EXPECT_EQ(csr(csr::kMepc), kRamBase);
  EXPECT_EQ(csr(csr::kMtval), 0u);
  EXPECT_EQ(hart().pc(), kRamBase + 0x300);

  hart().writeCsr(csr::kMedeleg, 1u << csr::kEcallFromU);
  hart().writeCsr(csr::kMstatus, csr::kStatusSie);
  hart().setPrivilege(Privilege::User);
  hart().setPc(kRamBase);
  hart().step(1);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(csr(csr::kScause), csr::kEcallFromU);
  EXPECT_EQ(csr(csr::kSepc), kRamBase);
  EXPECT_EQ(hart().pc(), kRamBase + 0x400);
  const uint64_t status = csr(csr::kMstatus);
  EXPECT_EQ(status & csr::kStatusSie, 0u);
  EXPECT_NE(status & csr::kStatusSpie, 0u);
  EXPECT_EQ(status & csr::kStatusSpp, 0u);  // from U
}

TEST_F(Privileged, MretAndSretRestoreState) {
  // M -> S via mret, S -> U via sret.
  hart().writeCsr(csr::kMepc, kRamBase + 0x100);
  hart().writeCsr(csr::kMstatus, (1ull << 11) | csr::kStatusMpie | csr::kStatusSpie | csr::kStatusMprv);
  hart().writeCsr(csr::kSepc, kRamBase + 0x200);
  loadWords(kRamBase, {mret});
  loadWords(kRamBase + 0x100, {sret});
  loadWords(kRamBase + 0x200, {addi(a0, zero, 9)});
  hart().step(1);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(hart().pc(), kRamBase + 0x100);
  uint64_t status = csr(csr::kMstatus);
  EXPECT_NE(status & csr::kStatusMie, 0u);
  EXPECT_NE(status & csr::kStatusMpie, 0u);
  EXPECT_EQ(status & csr::kStatusMpp, 0u);
  EXPECT_EQ(status & csr::kStatusMprv, 0u);  // cleared when leaving M for a lower mode
  hart().step(2);
  EXPECT_EQ(hart().privilege(), Privilege::User);
  EXPECT_EQ(x(a0), 9u);
  status = csr(csr::kMstatus);
  EXPECT_NE(status & csr::kStatusSie, 0u);
  EXPECT_NE(status & csr::kStatusSpie, 0u);
}

TEST_F(Privileged, TrapVirtualizationBits) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  auto expectIllegalInS = [&](uint32_t insn) {
    loadWords(kRamBase, {insn});
    hart().writeCsr(csr::kMcause, 0);
    hart().setPrivilege(Privilege::Supervisor);
    hart().setPc(kRamBase);
    hart().requestRemoteFence(RemoteFence::InstructionCache);
    hart().step(1);
    EXPECT_EQ(hart().privilege(), Privilege::Machine) << std::hex << insn;
    EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction) << std::hex << insn;
    EXPECT_EQ(csr(csr::kMtval), insn);
  };
  hart().writeCsr(csr::kMstatus, csr::kStatusTsr | csr::kStatusTvm | csr::kStatusTw);
  expectIllegalInS(sret);
  hart().writeCsr(csr::kMstatus, csr::kStatusTvm | csr::kStatusTw);
  expectIllegalInS(csrr(a0, csr::kSatp));
  expectIllegalInS(sfence_vma(0, 0));
  expectIllegalInS(wfi);
  expectIllegalInS(mret);
}

TEST_F(Privileged, WfiInUserModeIsIllegal) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  hart().setPrivilege(Privilege::User);
  runProgram({wfi}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
}

TEST_F(Privileged, TimerInterruptUsesVectoredMtvec) {
  host_.time = 100;
  hart().setMachineTimerCompare(50);
  hart().writeCsr(csr::kMie, csr::kMtip);
  hart().writeCsr(csr::kMtvec, (kRamBase + 0x100) | 1);
  loadWords(kRamBase, {csrrsi(zero, csr::kMstatus, 8), addi(a0, zero, 1)});
  loadWords(kRamBase + 0x100 + 4 * 7, {addi(a1, zero, 7)});
  hart().step(2);
  EXPECT_EQ(x(a0), 0u);
  EXPECT_EQ(x(a1), 7u);
  EXPECT_EQ(csr(csr::kMcause), kInt | 7);
  EXPECT_EQ(csr(csr::kMepc), kRamBase + 4);
  EXPECT_EQ(csr(csr::kMip) & csr::kMtip, csr::kMtip);
  const uint64_t status = csr(csr::kMstatus);
  EXPECT_EQ(status & csr::kStatusMie, 0u);
  EXPECT_NE(status & csr::kStatusMpie, 0u);
  // Moving the compare into the future clears MTIP.
  hart().setMachineTimerCompare(1000);
  hart().step(1);
  EXPECT_EQ(csr(csr::kMip) & csr::kMtip, 0u);
}

TEST_F(Privileged, InterruptPriorityOrder) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x100);
  hart().writeCsr(csr::kMie, csr::kAllInterrupts);
  hart().writeCsr(csr::kMip, csr::kSsip | csr::kStip);
  hart().setMachineTimerCompare(0);  // time 0 >= 0: MTIP
  hart().setInterruptLine(kMachineExternal, true);
  hart().writeCsr(csr::kMstatus, csr::kStatusMie);
  loadWords(kRamBase, {nop});
  loadWords(kRamBase + 0x100, {nop});
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), kInt | kMachineExternal);
  hart().setInterruptLine(kMachineExternal, false);
  hart().writeCsr(csr::kMstatus, csr::kStatusMie);
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), kInt | kMachineTimer);
  hart().setMachineTimerCompare(~0ull);
  hart().writeCsr(csr::kMstatus, csr::kStatusMie);
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), kInt | kSupervisorSoftware);  // SSI before STI
}

TEST_F(Privileged, DelegatedInterruptsRespectSie) {
  hart().writeCsr(csr::kMideleg, csr::kSupervisorInterrupts);
  hart().writeCsr(csr::kMie, csr::kSsip);
  hart().writeCsr(csr::kStvec, kRamBase + 0x200);
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  loadWords(kRamBase, {nop, nop, nop, nop});
  loadWords(kRamBase + 0x200, {nop});
  hart().postSupervisorSoftwareInterrupt();
  hart().step(1);  // M-mode: delegated interrupts never preempt M
  EXPECT_EQ(hart().pc(), kRamBase + 4);
  hart().setPrivilege(Privilege::Supervisor);  // SIE = 0
  hart().step(1);
  EXPECT_EQ(hart().pc(), kRamBase + 8);
  hart().setPrivilege(Privilege::User);  // always enabled below S
  hart().step(1);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(csr(csr::kScause), kInt | kSupervisorSoftware);
  EXPECT_EQ(csr(csr::kSepc), kRamBase + 8);
  EXPECT_EQ(hart().pc(), kRamBase + 0x204);  // the handler's first instruction ran
}

TEST_F(Privileged, SstcDrivesStip) {
  hart().writeCsr(csr::kMenvcfg, csr::kEnvcfgStce);
  hart().writeCsr(csr::kMcounteren, 2);
  host_.time = 500;
  hart().setPrivilege(Privilege::Supervisor);
  hart().setXreg(a0, 400);
  hart().setXreg(a1, 600);
  runProgram({csrw(csr::kStimecmp, a0), csrr(s0, csr::kSip), csrw(csr::kStimecmp, a1), csrr(s1, csr::kSip)});
  EXPECT_EQ(x(s0) & csr::kStip, 0u);  // not delegated: invisible in sip
  EXPECT_EQ(csr(csr::kMip) & csr::kStip, 0u);
  hart().writeCsr(csr::kMideleg, csr::kSupervisorInterrupts);
  hart().setPc(kRamBase);
  hart().step(2);
  EXPECT_EQ(x(s0) & csr::kStip, csr::kStip);
  hart().writeCsr(csr::kMip, csr::kStip);  // software cannot set STIP under Sstc
  hart().step(2);
  EXPECT_EQ(x(s1) & csr::kStip, 0u);
  // Without STCE, stimecmp is not accessible from S.
  hart().writeCsr(csr::kMenvcfg, 0);
  hart().writeCsr(csr::kMtvec, kRamBase + 0x300);
  hart().setPc(kRamBase);
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
}

TEST_F(Privileged, SupervisorEcallHandledByHost) {
  host_.onEcall = [](Hart& h) {
    h.setXreg(10, 0);
    h.setXreg(11, h.xreg(17) * 2);
    return true;
  };
  hart().resetToSupervisorBoot(kRamBase, 0x1234);
  EXPECT_EQ(x(a0), 0u);
  EXPECT_EQ(x(a1), 0x1234u);
  hart().setXreg(a7, 21);
  runProgram({ecall, addi(a2, a1, 1)});
  EXPECT_EQ(x(a1), 42u);
  EXPECT_EQ(x(a2), 43u);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(hart().instructionsRetired(), 2u);
}

TEST_F(Privileged, SupervisorBootState) {
  hart().resetToSupervisorBoot(kRamBase + 0x2000, 0x87000000);
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(hart().pc(), kRamBase + 0x2000);
  EXPECT_EQ(x(a1), 0x87000000u);
  EXPECT_EQ(csr(csr::kSatp), 0u);
  EXPECT_EQ(csr(csr::kMideleg), csr::kSupervisorInterrupts);
  const uint64_t deleg = csr(csr::kMedeleg);
  for (unsigned cause : {0u, 3u, 8u, 12u, 13u, 15u}) EXPECT_TRUE((deleg >> cause) & 1) << cause;
  EXPECT_FALSE((deleg >> 9) & 1);
  EXPECT_EQ(csr(csr::kMenvcfg) & csr::kEnvcfgStce, csr::kEnvcfgStce);
  EXPECT_EQ(csr(csr::kMcounteren) & 7, 7u);
  // A user page fault lands in S.
  hart().writeCsr(csr::kStvec, kRamBase + 0x3000);
  hart().setPrivilege(Privilege::User);
  hart().setXreg(s0, 0x1000);
  hart().writeCsr(csr::kSatp, (8ull << 60) | ((kRamBase + 0x10000) >> 12));  // empty Sv39 table
  loadWords(kRamBase + 0x2000, {ld(a0, s0, 0)});
  hart().step(1);
  // Fetch from an unmapped page in U-mode is an instruction page fault.
  EXPECT_EQ(hart().privilege(), Privilege::Supervisor);
  EXPECT_EQ(csr(csr::kScause), csr::kInstructionPageFault);
  EXPECT_EQ(csr(csr::kStval), kRamBase + 0x2000);
}

TEST_F(Privileged, UnsupportedSatpModeIsIgnored) {
  hart().writeCsr(csr::kSatp, (8ull << 60) | 0x1234);
  hart().writeCsr(csr::kSatp, (5ull << 60) | 0x5678);  // reserved mode
  EXPECT_EQ(csr(csr::kSatp), (8ull << 60) | 0x1234);
  hart().writeCsr(csr::kSatp, (10ull << 60) | 0x42);  // Sv57
  EXPECT_EQ(csr(csr::kSatp), (10ull << 60) | 0x42);
}

TEST_F(Privileged, WfiSleepsUntilInterruptLineFromAnotherThread) {
  hart().writeCsr(csr::kMie, csr::kMeip);  // locally enabled, globally disabled: wake without trap
  loadWfiThenSetFlag();
  ExitReason reason{};
  std::thread runner([&] { reason = hart().run(); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(wakeFlag(), 0u);
  hart().waitForRemoteFences();  // returns although the hart is asleep
  hart().setInterruptLine(kMachineExternal, true);
  bool woke = waitForWakeFlag();
  hart().requestStop();
  runner.join();
  EXPECT_TRUE(woke);
  EXPECT_EQ(reason, ExitReason::StopRequested);
}

// The machine's batched console output must never wait on a quiet guest:
// the hart flushes before it sleeps and at its periodic poll while it spins.
TEST_F(Privileged, DeferredOutputIsFlushedBeforeWfiSleepAndWhileSpinning) {
  hart().writeCsr(csr::kMie, csr::kMeip);
  loadWfiThenSetFlag();
  std::thread runner([&] { hart().run(); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(wakeFlag(), 0u);
  EXPECT_GE(host_.deferredFlushes.load(), 1u);
  hart().setInterruptLine(kMachineExternal, true);
  const bool woke = waitForWakeFlag();
  const unsigned afterWake = host_.deferredFlushes.load();
  bool flushedWhileSpinning = false;
  for (int i = 0; i < 2000 && !flushedWhileSpinning; ++i) {
    flushedWhileSpinning = host_.deferredFlushes.load() > afterWake + 1;
    std::this_thread::sleep_for(1ms);
  }
  hart().requestStop();
  runner.join();
  EXPECT_TRUE(woke);
  EXPECT_TRUE(flushedWhileSpinning);
}

TEST_F(Privileged, WfiWakesAtTimerDeadline) {
  hart().writeCsr(csr::kMie, csr::kMtip);
  hart().setMachineTimerCompare(1000);
  loadWfiThenSetFlag();
  std::thread runner([&] { hart().run(); });
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(wakeFlag(), 0u);
  host_.time = 2000;  // nobody kicks: the hart must notice its deadline passed by itself
  bool woke = waitForWakeFlag();
  hart().requestStop();
  runner.join();
  EXPECT_TRUE(woke);
}

TEST_F(Privileged, StopSelfFromEcallEndsRun) {
  host_.onEcall = [](Hart& h) {
    h.stopSelf();
    return true;
  };
  hart().resetToSupervisorBoot(kRamBase, 0);
  loadWords(kRamBase, {addi(a0, zero, 5), ecall, addi(a0, zero, 6)});
  EXPECT_EQ(hart().run(), ExitReason::HartStopped);
  EXPECT_EQ(x(a0), 5u);
  EXPECT_EQ(hart().pc(), kRamBase + 8);
}

TEST_F(Privileged, RequestStopBeforeRunReturnsImmediately) {
  loadWords(kRamBase, {jal(zero, 0)});
  hart().requestStop();
  EXPECT_EQ(hart().run(), ExitReason::StopRequested);
}

TEST_F(Privileged, RemoteFenceWaitCompletesWhileRunning) {
  loadWords(kRamBase, {jal(zero, 0)});
  std::thread runner([&] { hart().run(); });
  std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 100; ++i) {
    hart().requestRemoteFence(i % 2 ? RemoteFence::Tlb : RemoteFence::InstructionCache);
    hart().waitForRemoteFences();
  }
  hart().requestStop();
  runner.join();
  SUCCEED();
}

// Two harts whose SBI calls fence each other must not deadlock: a hart waiting
// inside its own ecall counts as asleep for the other's wait.
TEST_F(Privileged, MutualRemoteFencesFromEcallsDoNotDeadlock) {
  Hart second(1, PhysicalMemory{kRamBase, kRamSize, ram_.get(), &mmio_}, host_);
  Hart* harts[] = {&hart(), &second};
  std::atomic<uint64_t> fences{0};
  host_.onEcall = [&](Hart& h) {
    if (h.xreg(a7) == 0) {
      h.stopSelf();
      return true;
    }
    Hart& other = *harts[h.id() == 0 ? 1 : 0];
    other.requestRemoteFence(RemoteFence::Tlb);
    other.waitForRemoteFences();
    fences.fetch_add(1);
    return true;
  };
  loadWords(kRamBase, {addi(a7, zero, 1), ecall, addi(t0, t0, -1), bne(t0, zero, -8), addi(a7, zero, 0), ecall});
  for (Hart* h : harts) {
    h->resetToSupervisorBoot(kRamBase, 0);
    h->setXreg(t0, 2000);
  }
  std::thread other([&] { second.run(); });
  hart().run();
  other.join();
  EXPECT_EQ(fences.load(), 4000u);
}

}  // namespace
}  // namespace strata::cpu::test
