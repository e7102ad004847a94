// VmControl: the control surface of one running VM — state, pause, resume,
// shutdown, reset, stats — safe to call from any thread (the API server's) and
// kept across reboots, which build a new board (ControlledMachine) each time.
// It also owns the guest clock, which stands still while the VM is paused.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cpu/hart.h"
#include "machine/guest_ram.h"
#include "network/counting_port.h"
#include "vmm/balloon_control.h"
#include "vmm/page_sharing.h"
#include "vmm/vm.h"
#include "vmm/vm_config.h"

namespace strata {
class EventLoop;
}
namespace strata::storage {
class BlockDevice;
}

namespace strata::vmm {

enum class VmState { Running, Paused, ShuttingDown };
const char* vmStateName(VmState state);  // "running", "paused", "shutting_down"

struct HartStats {
  unsigned id = 0;
  uint64_t instructionsRetired = 0;
  std::vector<cpu::EngineStat> engine;
};

class LiveDisk;

struct VmStats {
  std::vector<HartStats> harts;  // sampled at an instruction boundary of each hart
};

// What one boot of the VM (GuestMachine) does for VmControl.
class ControlledMachine {
 public:
  virtual ~ControlledMachine() = default;
  // Asks every vCPU to park at its next instruction boundary and the devices to
  // take no more queue work; returns at once.
  virtual void beginPause() = 0;
  // Blocks until every vCPU is parked and no disk request is in flight, or the boot ends.
  virtual void waitPaused() = 0;
  // Lets the vCPUs run on from where they parked.
  virtual void resume() = 0;
  virtual void requestExit(GuestExit exit) = 0;
  virtual VmStats sampleStats() = 0;
  // Paused: writes DIR/state and DIR/memory, or DIR/memory.zst when `compress`
  // (each to a temporary name, then renamed).
  virtual Result<void> saveSnapshot(const std::string& dir, bool compress) = 0;
  // Live migration's source side. Guest RAM and its dirty log:
  virtual machine::GuestRam& guestRam() = 0;
  // Every hart drops its TLBs (returns once each did or runs no guest code), so
  // its next store to any page takes the slow path, which marks the page dirty.
  virtual void flushHartTlbs() = 0;
  // --with-disks: the VM's disks and the loop their requests run on.
  virtual std::vector<storage::BlockDevice*> disks() = 0;
  virtual EventLoop& diskLoop() = 0;
  // Paused: the state a snapshot holds but its warm sets (StateWriter framing); fails once the boot is ending.
  virtual Result<std::vector<uint8_t>> saveStateBytes() = 0;
  // Paused: the board's harts (their threads parked or not started).
  virtual std::vector<cpu::Hart*> harts() = 0;
  // Paused: the parked vCPU thread of hart `id` executes one instruction
  // (Hart::debugStep) and parks again. False if that hart is not running (never
  // started, or stopped).
  virtual bool stepHart(unsigned id) = 0;
};

class VmControl {
 public:
  explicit VmControl(const VmConfig& config);

  const VmConfig& config() const { return config_; }
  VmState state() const;
  double uptimeSeconds() const;

  // Each returns the state it left the VM in. pause() returns once the VM is
  // quiescent (vCPUs parked, disk requests done); pausing a paused VM and
  // resuming a running one change nothing.
  VmState pause();
  VmState resume();
  VmState shutdown();  // ends the VM: `strata run` exits 0
  VmState reset();     // reboots the guest; a paused VM runs again after it
  VmStats stats();
  // Pauses, writes the snapshot into dir (created if missing), resumes if asked
  // (and if the VM was running before). Returns the state it left the VM in.
  // Refused before anything happens (`refused` set) when the VM would run on
  // with a disk whose contents the snapshot cannot keep (a writable pool volume).
  Result<VmState> snapshot(const std::string& dir, bool resume, bool compress = false, bool* refused = nullptr);
  // The VM's disks, which runVm opens once for every boot and sets before the
  // first one: what a snapshot flushes, records and puts overlays on.
  void setDisks(std::vector<LiveDisk*> disks) { disks_ = std::move(disks); }
  const std::vector<LiveDisk*>& disks() const { return disks_; }
  BalloonControl& balloon() { return balloon_; }
  // With --mem-merge: what the host's KSM says of this VM's pages; none without.
  const PageSharingReport* pageSharing() const { return pageSharing_ ? &*pageSharing_ : nullptr; }
  // One per NIC (config order), counted since the VM started, across reboots: GET /vm/stats meters them.
  std::vector<network::TrafficCounters>& nicTraffic() { return nicTraffic_; }

  // Live migration: the board running now, kept attached while the lease lives
  // (a reboot's detach waits for it), and, while holdPaused(true), a pause
  // nobody else may lift (resume and reset leave the VM paused).
  class MachineLease {
   public:
    ControlledMachine& machine() const { return *machine_; }
   private:
    friend class VmControl;
    MachineLease(std::shared_mutex& board, ControlledMachine* machine) : lock_(board), machine_(machine) {}
    std::shared_lock<std::shared_mutex> lock_;
    ControlledMachine* machine_;
  };
  Result<std::unique_ptr<MachineLease>> leaseMachine();
  void holdPaused(bool hold);
  // Post-copy lost its link after the switch-over (migration_postcopy.h): either
  // side waits for a shutdown; GET /vm says so.
  void setPostcopyPaused() { postcopyPaused_ = true; }
  bool postcopyPaused() const { return postcopyPaused_; }

  // ---- The debugger (`strata run --gdb`, debug/gdb_stub.h), one at a time.
  // Runs fn on the harts of the board while the VM is paused; false (fn not
  // run) when it is not paused or between boots.
  bool withPausedHarts(const std::function<void(const std::vector<cpu::Hart*>&)>& fn);
  bool stepHart(unsigned id);  // paused; see ControlledMachine::stepHart
  // The points every hart stops at, this board's (applied now: paused only)
  // and those built after a reboot.
  void setDebugPoints(const cpu::DebugPoints& points);
  cpu::DebugPoints debugPoints() const;
  // Who hears that a hart stopped at a debug point (its vCPU thread then waits for a pause).
  void setDebugStopHandler(std::function<void(unsigned hart)> handler);
  // vCPU threads; false when no debugger listens (the hart then runs on).
  bool debugStopped(unsigned hart);

  // Guest time in ns since the VM started: host monotonic time less the time
  // spent paused, frozen while paused. Lock-free; vCPUs read it constantly.
  uint64_t guestNs() const;

  // For runVm: the boot about to run (it starts parked if the VM is paused, with the debugger's points), or none.
  void attach(ControlledMachine* machine);
  void detach();
  void markEnded();  // the VM is going away: state shutting_down from now on

 private:
  VmState stateLocked() const;  // mutex_ held
  void freezeClock();
  void thawClock();

  const VmConfig& config_;
  const std::chrono::steady_clock::time_point started_;
  BalloonControl balloon_;
  std::shared_mutex boardMutex_;  // leases share it; detach takes it alone
  bool pauseHeld_ = false;        // guarded by mutex_
  std::optional<PageSharingReport> pageSharing_;  // opened here, before the sandbox
  std::vector<LiveDisk*> disks_;
  std::vector<network::TrafficCounters> nicTraffic_;  // never resized: ports count into it
  std::mutex operationMutex_;  // one control operation at a time; held across a pause's wait
  mutable std::mutex mutex_;   // guards machine_ and the state below
  ControlledMachine* machine_ = nullptr;
  bool paused_ = false;
  bool ending_ = false;
  std::atomic<bool> postcopyPaused_{false};
  // The clock: guest ns = host ns - pausedNs_, or frozenNs_ while paused.
  static constexpr uint64_t kNotFrozen = ~0ull;
  uint64_t pauseStartedNs_ = 0;  // host ns; guarded by mutex_
  std::atomic<uint64_t> pausedNs_;
  std::atomic<uint64_t> frozenNs_{kNotFrozen};
  cpu::DebugPoints debugPoints_;                    // guarded by mutex_
  std::function<void(unsigned)> debugStopHandler_;  // guarded by mutex_
};

}  // namespace strata::vmm
