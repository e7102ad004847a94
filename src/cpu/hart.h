// Hart: one RISC-V RV64GC hardware thread (M, S and U modes, Sv39/48/57 MMU,
// Sstc) executed by an Engine (interpreter or translator, chosen per hart) from
// pre-decoded blocks keyed by guest physical address. One host thread drives one Hart through run();
// other threads talk to it only through the thread-safe calls marked below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cpu/physical_memory.h"

namespace strata {
class StateWriter;
class StateReader;
}  // namespace strata

namespace strata::cpu {

// The platform timer ticks at this rate (the `virt` board's timebase-frequency).
inline constexpr uint64_t kTimebaseHz = 10'000'000;

enum class Privilege : uint8_t { User = 0, Supervisor = 1, Machine = 3 };

// mip/mie bit numbers.
enum InterruptBit : unsigned {
  kSupervisorSoftware = 1,
  kMachineSoftware = 3,
  kSupervisorTimer = 5,
  kMachineTimer = 7,
  kSupervisorExternal = 9,
  kMachineExternal = 11,
};

class Hart;

// What the hart needs from the machine around it.
class HartHost {
 public:
  virtual ~HartHost() = default;
  // The platform timer (mtime / the `time` CSR), in kTimebaseHz ticks.
  virtual uint64_t timeNow() = 0;
  // An ECALL from S-mode. When the machine plays M-mode firmware itself (SBI
  // as hypercalls) it handles the call, sets a0/a1 and returns true; the hart
  // then resumes after the ecall. False: the ecall traps as architected.
  virtual bool supervisorEcall(Hart& hart) = 0;
  // Called by a running hart every kTimerCheckInterval blocks and before it
  // sleeps in WFI: the machine hands on what its devices batch (console
  // output), so it is never held up by a guest that goes quiet.
  virtual void flushDeferredOutput() {}
};

enum class ExitReason {
  StopRequested,  // requestStop() was called
  HartStopped,    // stopSelf() (SBI HSM hart_stop)
  DebugStop,      // a debugger's breakpoint or watchpoint (setDebugPoints); see lastDebugStop()
};

// What a debugger (`strata run --gdb`) asks a hart to stop at. These are the
// host's, invisible to the guest (unlike the Sdtrig triggers it programs
// itself): breakpoints on the virtual pc, watchpoints on virtual data addresses.
struct DebugWatchpoint {
  uint64_t address = 0;
  uint64_t length = 1;
  bool onRead = false;
  bool onWrite = false;
  bool operator==(const DebugWatchpoint&) const = default;
};
struct DebugPoints {
  std::vector<uint64_t> breakpoints;
  std::vector<DebugWatchpoint> watchpoints;
  bool operator==(const DebugPoints&) const = default;
};
// Why run() last returned DebugStop. A watchpoint stops before the access
// executes: pc is that of the load or store.
struct DebugStop {
  enum class Kind : uint8_t { None, Breakpoint, Watchpoint } kind = Kind::None;
  uint64_t address = 0;  // the breakpoint's pc, or the data address accessed
  bool write = false;    // watchpoint: the access was a store
};

enum class RemoteFence { Tlb, InstructionCache };

// Which engine executes guest code (`strata run --engine`).
enum class EngineKind : uint8_t { Interpreter, Jit };
const char* engineName(EngineKind kind);

class EngineTrace;

// The engine of one hart and its tuning (converts from a bare EngineKind).
struct EngineConfig {
  EngineConfig(EngineKind engineKind = EngineKind::Interpreter, uint32_t threshold = 128,  // NOLINT: implicit on purpose
               size_t codeBytes = 32u << 20)
      : kind(engineKind), translateThreshold(threshold), codeCacheBytes(codeBytes) {}
  // jit: where each translation is written beside its guest code (--engine-trace); shared by the harts.
  std::shared_ptr<EngineTrace> trace;
  EngineKind kind;
  // jit: times a block runs in the interpreter before it is translated (tests use 1).
  // A Linux boot runs most of its code a few dozen times at most: translating
  // at 16 runs translated 15k blocks, at 128 5k, for less CPU time overall.
  uint32_t translateThreshold;
  // jit: size of the hart's code cache; when full, every translation is dropped.
  size_t codeCacheBytes;
};
// "interp", "jit" or "jit,threshold=N" (N >= 1); nullopt for anything else.
std::optional<EngineConfig> parseEngineConfig(std::string_view text);

// One counter an engine reports for `strata run --stats`.
struct EngineStat {
  std::string name;
  uint64_t value;
};

class Hart {
 public:
  Hart(unsigned hartId, PhysicalMemory memory, HartHost& host, EngineConfig engine = {});
  ~Hart();
  Hart(const Hart&) = delete;
  Hart& operator=(const Hart&) = delete;

  unsigned id() const;

  // ---- Architectural state. Owner thread only (or while the hart is not running).
  uint64_t xreg(unsigned index) const;
  void setXreg(unsigned index, uint64_t value);  // writes to x0 are ignored
  uint64_t freg(unsigned index) const;           // raw 64-bit pattern
  void setFreg(unsigned index, uint64_t bits);
  uint64_t pc() const;
  void setPc(uint64_t pc);
  Privilege privilege() const;
  void setPrivilege(Privilege privilege);
  std::optional<uint64_t> readCsr(uint16_t csr) const;  // no privilege check
  bool writeCsr(uint16_t csr, uint64_t value);          // no privilege check

  // Resets to the power-on state in M-mode at `pc` (bare-metal and firmware boot).
  void resetToMachineMode(uint64_t pc);
  // Puts the hart where M-mode firmware leaves it before jumping to a kernel:
  // S-mode at `entry`, a0 = hart id, a1 = `a1`, satp = 0, interrupts and
  // exceptions delegated to S-mode as OpenSBI does, counters and Sstc enabled
  // for S-mode, misaligned accesses handled transparently.
  void resetToSupervisorBoot(uint64_t entry, uint64_t a1);

  // ---- Snapshots (while the hart is not running). The section is "hart<id>";
  // TLBs and decoded blocks are derived and rebuilt after a load, an LR
  // reservation is dropped (SC fails once, as after any trap).
  void save(StateWriter& out) const;
  Result<void> load(StateReader& in);

  // ---- Warm set (while the hart is not running): the code a copy of this
  // moment will run first. A key is a cached block's guest physical address,
  // bit 0 set when the engine had translated it and it lies on a page the
  // fetch TLB holds (code run since the last TLB flush: translations of code
  // run only long ago, mostly boot's, would be made for clones that do not
  // run them; theirs are left to the engine to make again if they turn hot).
  // A snapshot records them and
  // a clone server re-creates them (prewarm) before it forks its clones,
  // which then share the blocks and translations copy-on-write.
  // Cold (untranslated) blocks are left out unless they ran minColdRuns times in the interpreter.
  std::vector<uint64_t> warmSet(uint32_t minColdRuns = 0) const;
  // Applies pending fences (a load's flush), then decodes each key's block
  // from memory as it is now and translates those marked translated. Keys
  // outside RAM or on pages that cannot be cached are skipped. Returns the
  // number of blocks cached.
  size_t prewarm(std::span<const uint64_t> keys);

  // ---- Execution (owner thread).
  // Executes until requestStop() or stopSelf(). Sleeps in WFI without burning CPU.
  ExitReason run();
  // Executes at most `count` instructions (for tests and single-stepping); returns the number retired.
  uint64_t step(uint64_t count);
  // Called from inside an ecall handler: the run loop returns HartStopped after this instruction.
  void stopSelf();

  // ---- Thread-safe calls from devices, SBI and the VMM.
  // Drives an interrupt line wired into mip (MEIP/SEIP from the PLIC, MSIP from the CLINT).
  void setInterruptLine(InterruptBit bit, bool level);
  // Sets the software-writable mip.SSIP bit (an SBI IPI).
  void postSupervisorSoftwareInterrupt();
  // M-mode timer compare (CLINT mtimecmp): MTIP is pending while time >= value.
  void setMachineTimerCompare(uint64_t value);
  uint64_t machineTimerCompare() const;
  // Asks the hart to flush its TLB or decoded-instruction cache before it runs more code.
  void requestRemoteFence(RemoteFence fence);
  // Blocks until every requested fence is applied, or the hart is asleep or stopped
  // (it applies them before executing anything else).
  void waitForRemoteFences();
  // Makes run() return StopRequested as soon as possible (also wakes WFI).
  void requestStop();
  // Wakes the hart from WFI so it re-evaluates interrupts and requests.
  void kick();

  // ---- Debugger (while the hart is not running).
  // Both engines honour these: blocks end at breakpoints and every block
  // boundary checks the pc; loads and stores take the slow path while a
  // watchpoint is set. Changing breakpoints drops the hart's decoded blocks.
  void setDebugPoints(const DebugPoints& points);
  DebugStop lastDebugStop() const;
  // Executes one instruction with interrupts held off and debug points
  // ignored (a debugger's single step). Returns the instructions retired
  // (0 when it trapped: pc is then at the trap handler).
  uint64_t debugStep();
  // Reads or writes guest memory as this hart sees it now (its MMU, without
  // permission checks or A/D updates), falling back to the address as a
  // physical one where it does not translate; RAM only. False if any byte is
  // not in RAM. A write does not drop decoded blocks: use requestRemoteFence.
  bool debugReadMemory(uint64_t address, uint8_t* out, size_t length);
  bool debugWriteMemory(uint64_t address, const uint8_t* data, size_t length);

  // Instructions retired since reset (minstret).
  uint64_t instructionsRetired() const;
  // The engine's counters (owner thread, or after run() returned).
  std::vector<EngineStat> engineStats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace strata::cpu
