// HartCore: the complete state and slow-path behaviour of one hart (CSRs,
// traps and interrupts, MMU and TLBs, atomics, WFI sleep, cross-thread
// requests). It is the body behind Hart's pimpl; engines (the interpreter,
// later a translator) reach into it directly. Memory fast paths live here
// inline so every engine shares them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/state_stream.h"
#include "cpu/block_cache.h"
#include "cpu/csr_defs.h"
#include "cpu/decoder.h"
#include "cpu/hart.h"
#include "cpu/hart_state.h"

namespace strata::cpu {

enum class Access : uint8_t { Fetch, Load, Store };

// Bits of HartCore::attention: reasons to leave the fast path at a block boundary.
enum AttentionBit : uint32_t {
  kAttnStop = 1u << 0,        // requestStop()
  kAttnSelfStop = 1u << 1,    // stopSelf()
  kAttnFence = 1u << 2,       // remote or local fences pending
  kAttnInterrupts = 1u << 3,  // interrupt state may have changed: re-evaluate
  kAttnTimers = 1u << 4,      // timer compare changed: re-read time
  kAttnWfi = 1u << 5,         // a WFI wants to sleep
  kAttnKick = 1u << 6,        // kick(): just wake up and look around
  // A debugger's breakpoints are set (kept set, so no engine chains past a
  // block boundary without checking the pc), or a watchpoint was hit.
  kAttnDebug = 1u << 7,
};

// kFenceICache (fence.i) drops the decoded blocks whose code changed;
// kFenceAllBlocks drops every block (the rules they were admitted under changed).
enum FenceBit : uint32_t { kFenceTlb = 1u << 0, kFenceICache = 1u << 1, kFenceAllBlocks = 1u << 2 };

class Engine;

// The hot registers, TLBs and run-loop signals come from HartHotState (the
// first base, so its fields sit at the offsets generated code uses).
class HartCore : public HartHotState {
 public:
  static constexpr unsigned kMaxBlockInstructions = 128;

  HartCore(Hart& owner, unsigned hartId, PhysicalMemory memory, HartHost& host);

  // ---------------- architectural state (owner thread) ----------------
  Privilege priv = Privilege::Machine;
  // mcycle and minstret: an offset from instret while counting, the held value
  // while mcountinhibit.CY/IR stops them.
  struct Counter {
    uint64_t offset = 0;
    uint64_t held = 0;
  };
  Counter cycleCounter, instretCounter;

  uint64_t mstatus = csr::kStatusXlen64;
  uint64_t medeleg = 0, mideleg = 0, mie = 0, mtvec = 0, mscratch = 0, mepc = 0, mcause = 0, mtval = 0;
  uint64_t mcounteren = 0, menvcfg = 0, mcountinhibit = 0;
  uint64_t stvec = 0, sscratch = 0, sepc = 0, scause = 0, stval = 0, scounteren = 0, senvcfg = 0, satp = 0;
  uint64_t stimecmp = ~0ull;
  uint8_t pmpcfg[64] = {};
  uint64_t pmpaddr[64] = {};
  unsigned pmpActiveEntries = 0;  // 1 + the last entry whose mode is not OFF

  // Sdtrig address triggers (triggers.cpp): tdata1 is an mcontrol6 or disabled.
  static constexpr unsigned kTriggers = 4;
  static constexpr uint64_t kTriggerDisabled = 15ull << 60;
  uint64_t tselect = 0;
  uint64_t tdata1[kTriggers] = {kTriggerDisabled, kTriggerDisabled, kTriggerDisabled, kTriggerDisabled};
  uint64_t tdata2[kTriggers] = {};
  // Some trigger can fire: no TLB fills and no cached blocks, so every fetch
  // goes through lookupBlock() and every load/store through translate().
  bool triggersArmed = false;

  // The debugger's points (debug.cpp; breakpoints sorted) and what stopped the hart last.
  DebugPoints debugPoints;
  bool debugWatchArmed = false;
  bool debugStepping = false;     // Hart::debugStep(): points ignored, interrupts held
  bool debugStopPending = false;  // a watchpoint hit waits to be reported by serviceAttention
  DebugStop debugStop;
  // pendingCause of a watchpoint hit: not an architectural trap, takeException() stops the hart instead.
  static constexpr uint64_t kDebuggerStopCause = ~0ull;

  // mip: architectural bits plus the SEIP line from the interrupt controller
  // kept apart (bit kSeipLineBit) because software can also write SEIP.
  static constexpr uint64_t kSeipLineBit = 1ull << 41;
  std::atomic<uint64_t> mip{0};
  std::atomic<uint64_t> mtimecmp{~0ull};

  // LR/SC reservation (host address of the reserved word and the value read).
  bool reservationValid = false;
  uint64_t reservationPa = 0;
  uint64_t reservationValue = 0;

  // Exception being raised by a slow path (read by takeException()).
  uint64_t pendingCause = 0;
  uint64_t pendingTval = 0;

  // ---------------- cross-thread coordination ----------------
  std::atomic<uint32_t> pendingFences{0};
  std::atomic<bool> sleeping{false};
  enum class RunState : uint8_t { Idle, Running, Sleeping };
  std::atomic<RunState> runState{RunState::Idle};
  std::atomic<std::thread::id> ownerThread{};
  std::mutex sleepMutex;
  std::condition_variable sleepCv;
  std::mutex fenceMutex;
  std::condition_variable fenceCv;
  uint32_t localFences = 0;  // fences requested by this hart's own fence.i (applied between blocks)

  // The hart whose run()/step() is executing on this thread, if any. Inline
  // with a constant initializer: with the out-of-line definition, GCC 12's
  // UBSan build reported RunScope's store to it as a store to a null pointer.
  static inline thread_local HartCore* current = nullptr;

  Hart& owner;
  const unsigned hartId;
  const PhysicalMemory memory;
  HartHost& host;
  BlockCache blocks;

  // ---------------- memory fast paths ----------------
  template <typename T>
  bool load(uint64_t va, T& out) {
    const TlbEntry& e = currentReadTlb[(va >> 12) & (kTlbSlots - 1)];
    if (e.tag == (va >> 12) && (va & 0xfff) <= 4096 - sizeof(T)) [[likely]] {
      std::memcpy(&out, reinterpret_cast<const void*>(va + e.hostAddend), sizeof(T));
      return true;
    }
    uint64_t value;
    if (!loadSlow(va, sizeof(T), value)) return false;
    out = static_cast<T>(value);
    return true;
  }
  template <typename T>
  bool store(uint64_t va, T value) {
    const TlbEntry& e = currentWriteTlb[(va >> 12) & (kTlbSlots - 1)];
    if (e.tag == (va >> 12) && (va & 0xfff) <= 4096 - sizeof(T)) [[likely]] {
      std::memcpy(reinterpret_cast<void*>(va + e.hostAddend), &value, sizeof(T));
      return true;
    }
    return storeSlow(va, sizeof(T), static_cast<uint64_t>(value));
  }

  bool loadSlow(uint64_t va, unsigned size, uint64_t& out);
  bool storeSlow(uint64_t va, unsigned size, uint64_t value);
  // Translates va for an access of `size` bytes (within one page) in the
  // current context (MPRV applies to loads and stores) and checks it against
  // PMP; fills the TLB for RAM pages PMP treats uniformly. False:
  // pendingCause/Tval set.
  bool translate(uint64_t va, unsigned size, Access access, uint64_t& pa);
  bool readPhysical(uint64_t pa, unsigned size, uint64_t& value, Access access, uint64_t va);
  bool writePhysical(uint64_t pa, unsigned size, uint64_t value, uint64_t va);
  // Host pointer of an aligned RAM word for an atomic at va (write permission); null on fault.
  uint8_t* atomicAddress(uint64_t va, unsigned size, bool isLoadReserved);

  // ---------------- instruction fetch and blocks ----------------
  // The block starting at pc (decoding it if needed), or null with a pending
  // fetch exception. Returns an uncached one-instruction scratch block for
  // code straddling two pages or on a page PMP splits (checked every time).
  Block* lookupBlock();
  Block* buildBlock(uint64_t va, uint64_t pa);
  Block* buildStraddlingBlock(uint64_t va, uint64_t pa);
  Block* buildRestrictedBlock(uint64_t va, uint64_t pa);
  Block* scratchBlock(uint64_t pa, uint32_t word);
  struct ScratchBlock {  // same layout as a cached block: header, then instructions
    Block block;
    DecodedInsn insns[2];
  } scratch;

  // ---------------- slow-path executors (return false on exception) ----------------
  bool executeCsr(const DecodedInsn& insn, uint64_t retiredInBlock);
  bool executeSystem(const DecodedInsn& insn);  // pc is that of insn; sets the next pc
  bool executeAtomic(const DecodedInsn& insn);
  bool executeFp(const DecodedInsn& insn);
  bool raiseIllegal(const DecodedInsn& insn) { return raise(csr::kIllegalInstruction, insn.raw); }
  bool raise(uint64_t cause, uint64_t tval) {
    pendingCause = cause;
    pendingTval = tval;
    return false;
  }

  // ---------------- CSRs ----------------
  // privileged=true applies the privilege/read-only rules of CSR instructions.
  bool csrRead(uint16_t number, uint64_t& value, bool privileged, uint64_t retiredInBlock = 0);
  // retiredInBlock: instructions of the running block retired before this
  // point (for a CSR instruction's write: including itself, as the write
  // takes effect after it completes).
  bool csrWrite(uint16_t number, uint64_t value, bool privileged, uint64_t retiredInBlock = 0);
  uint64_t counterValue(const Counter& counter, uint64_t inhibitBit, uint64_t retired) const;
  void setCounter(Counter& counter, uint64_t inhibitBit, uint64_t value, uint64_t retired);
  void writeMcountinhibit(uint64_t value, uint64_t retired);
  bool csrAccessible(uint16_t number, bool write) const;
  uint64_t effectiveMip() const {
    uint64_t m = mip.load(std::memory_order_relaxed);
    return (m & csr::kAllInterrupts) | ((m & kSeipLineBit) ? csr::kSeip : 0);
  }
  void writeMstatus(uint64_t value);
  bool triggerCsrRead(uint16_t number, uint64_t& value) const;
  bool triggerCsrWrite(uint16_t number, uint64_t value);
  // True if an armed trigger matches an access (Fetch = execute) at `address`
  // in the current mode: the access raises a breakpoint exception instead.
  bool triggerFires(uint64_t address, Access access) const;
  // Pages whose translations and decoded blocks may be cached.
  bool cacheablePage(uint64_t pageBase) const { return !triggersArmed && pmpUniformPage(pageBase); }
  // Drops cached translations and decoded blocks between blocks (the running
  // block stays valid until it ends): the rules they were admitted under changed.
  void dropCachedTranslations();
  void setFsDirty() { mstatus |= csr::kFsDirty; }
  bool fpEnabled() const { return (mstatus & csr::kStatusFs) != 0; }

  // ---------------- traps and interrupts ----------------
  void takeTrap(uint64_t cause, uint64_t tval, bool interrupt);
  void takeException() {
    if (pendingCause == kDebuggerStopCause) [[unlikely]] {
      attention.fetch_or(kAttnDebug, std::memory_order_relaxed);
      return;
    }
    takeTrap(pendingCause, pendingTval, false);
  }
  // Takes the highest-priority pending and enabled interrupt; true if one was taken.
  bool takePendingInterrupt();
  bool interruptWakesWfi() const { return (effectiveMip() & mie) != 0; }
  void checkTimers();
  void setPrivilege(Privilege p);
  void updateTranslationContext();
  void flushTlb();
  void requestAttention(uint32_t bits);  // from any thread: set bits and wake a sleeper

  // ---------------- run loop services ----------------
  // Handles everything flagged in `attention`. Returns an exit reason when the run must end.
  bool serviceAttention(bool mayStop, bool maySleep, ExitReason& reason);
  void applyFences();
  void sleepUntilWoken();
  void notifyFenceWaiters();

  void resetToMachineMode(uint64_t entry);
  void resetToSupervisorBoot(uint64_t entry, uint64_t a1);

  // ---------------- debugger (debug.cpp) ----------------
  void setDebugPoints(const DebugPoints& points);
  bool debugBreakpointAt(uint64_t va) const;
  // A load or store at [va, va + size) that a watchpoint covers: records the stop.
  bool debugWatchHit(uint64_t va, unsigned size, Access access);
  // serviceAttention, before code runs at pc: true (and `reason` set) when the debugger stops here.
  bool debugStopsHere(ExitReason& reason);
  // va as the debugger sees it: the current MMU context without checks or side effects, else physical.
  uint64_t debugPhysicalAddress(uint64_t va);

  // ---------------- snapshots (hart_snapshot.cpp) ----------------
  void saveState(StateWriter& out) const;
  Result<void> loadState(StateReader& in);

  // ---------------- physical memory protection (pmp.cpp) ----------------
  bool pmpAllows(uint64_t pa, uint64_t size, Access access, Privilege p) const;
  // True if no PMP region starts or ends inside the 4 KiB page: every byte of
  // it gets the same answer for every privilege, so it may be cached.
  bool pmpUniformPage(uint64_t pageBase) const;
  uint64_t readPmpcfg(unsigned firstEntry) const;
  void writePmpcfg(unsigned firstEntry, uint64_t value);
  void writePmpaddr(unsigned index, uint64_t value);
  // What firmware does before entering S-mode: one entry granting RWX everywhere.
  void allowAllPhysicalMemory();

 private:
  struct PmpRange {
    uint64_t begin, end;  // [begin, end); empty when begin >= end
  };
  PmpRange pmpRange(unsigned index) const;
  void pmpChanged();
  // inspectOnly: the debugger's walk, with no permission checks and no A/D updates.
  bool walk(uint64_t va, Access access, Privilege effective, uint64_t& pa, bool inspectOnly = false);
  bool pageFault(Access access, uint64_t va);
  bool accessFault(Access access, uint64_t va);
  void fillTlb(uint64_t va, uint64_t pa, Access access);
};

}  // namespace strata::cpu
