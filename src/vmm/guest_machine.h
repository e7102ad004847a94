// GuestMachine: one boot of a VM — guest RAM, the `virt` board's devices, the
// harts and their threads, run on the VM's I/O event loop. It plays M-mode
// firmware for the guest (SBI) and reports how the boot ended. A reboot builds
// a new one around the same loop, open disks and network ports, which the VM owns. VmControl
// pauses and resumes it through ControlledMachine.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/loop_timer.h"
#include "base/result.h"
#include "base/state_stream.h"
#include "cpu/hart.h"
#include "machine/bus.h"
#include "machine/guest_ram.h"
#include "machine/sbi.h"
#include "network/ethernet.h"
#include "vmm/host_console.h"
#include "vmm/net_interfaces.h"
#include "vmm/snapshot_config.h"
#include "vmm/vm.h"
#include "vmm/vm_config.h"
#include "vmm/vm_control.h"
#include "vmm/warm_board.h"

namespace strata::machine {
class Plic;
class Uart16550;
class GoldfishRtc;
class Clint;
class PvPanic;
class SifiveTest;
class VmGenerationId;
}  // namespace strata::machine

namespace strata::virtio {
class VirtioBlk;
class VirtioMmioTransport;
class VirtioDevice;
class VirtioConsole;
class VirtioBalloon;
}  // namespace strata::virtio

namespace strata::storage {
class BlockDevice;
}

namespace strata::vmm {

class GuestMachine : public cpu::HartHost, public machine::SbiPlatform, public ControlledMachine {
 public:
  // disks (one per config.disks entry) complete on loop and nics (openNetInterfaces) receive on it;
  // they, the loop and control outlive the machine.
  // restoreDir non-empty: the board resumes the snapshot there (DIR/state, DIR/memory mapped) instead of booting;
  // warm: that snapshot's RAM and harts, already loaded and warmed (a clone server's fork), taken over as they are.
  static Result<std::unique_ptr<GuestMachine>> create(const VmConfig& config, VmControl& control, HostConsole& console,
                                                      EventLoop& loop,
                                                      const std::vector<std::unique_ptr<storage::BlockDevice>>& disks,
                                                      const std::vector<NetInterface>& nics,
                                                      const std::string& restoreDir = {},
                                                      std::unique_ptr<WarmBoard> warm = nullptr);
  // Live migration's destination: the board with zeroed RAM and no boot payload,
  // for the incoming pages and then loadState.
  static Result<std::unique_ptr<GuestMachine>> createForIncoming(
      const VmConfig& config, VmControl& control, HostConsole& console, EventLoop& loop,
      const std::vector<std::unique_ptr<storage::BlockDevice>>& disks, const std::vector<NetInterface>& nics);
  ~GuestMachine() override;
  // After a live migration: each NIC broadcasts its MAC a few times (self_announce.h)
  // once the loop runs, so switches learn the VM's new port.
  Result<void> announceSelf();

  // Runs the guest until it powers off, reboots, panics or quit is requested.
  GuestOutcome run();

  // ControlledMachine (any thread but the vCPUs' and the loop's)
  void beginPause() override;
  void waitPaused() override;
  void resume() override;
  void requestExit(GuestExit exit) override { finish(exit); }
  VmStats sampleStats() override;
  Result<void> saveSnapshot(const std::string& dir, bool compress) override;  // paused
  machine::GuestRam& guestRam() override { return *ram_; }
  void flushHartTlbs() override;
  Result<std::vector<uint8_t>> saveStateBytes() override;
  std::vector<storage::BlockDevice*> disks() override { return disks_; }
  EventLoop& diskLoop() override { return *loop_; }
  std::vector<cpu::Hart*> harts() override;
  bool stepHart(unsigned id) override;

  // Every hart, the hart slots, the board's devices, the virtio transports in
  // slot order and the guest clock, after a "vm" section naming the board they fit.
  // memoryFile: what the snapshot's memory is called (snapshot_config.h);
  // recordedDisks: the disks to name (default: each as the VM writes it now).
  // Not the harts' warm sets, which only a snapshot holds (saveSnapshot): a
  // migration's destination has no use for them, and walking the block cache
  // for them took ~5 ms of the switch-over's pause.
  void saveState(StateWriter& out, const std::string& memoryFile = kMemoryFile,
                 std::optional<std::vector<DiskConfig>> recordedDisks = std::nullopt) const;
  // disksMirrored: the disks came with the VM (--with-disks), so their paths may differ from the source's;
  // hartsLoaded: the harts came from a WarmBoard of the same state, so their sections are not read again
  // (a load drops the decoded blocks and translations the warm board made).
  Result<void> loadState(StateReader& in, bool disksMirrored = false, bool hartsLoaded = false);
  // Before RAM is mapped from the snapshot: its size, and the memory file's name.
  Result<std::string> checkMemorySize(StateReader& in) const;

  // cpu::HartHost
  uint64_t timeNow() override;
  void flushDeferredOutput() override;
  bool supervisorEcall(cpu::Hart& hart) override;

  // machine::SbiPlatform
  unsigned hartCount() const override { return static_cast<unsigned>(harts_.size()); }
  cpu::Hart& hart(unsigned id) override { return *harts_[id]; }
  machine::HartRunState hartState(unsigned id) override;
  machine::SbiError startHart(unsigned id, uint64_t startAddress, uint64_t opaque) override;
  void resetSystem(machine::SystemResetKind kind, uint32_t reason) override;
  void consoleWrite(const uint8_t* data, size_t length) override;
  size_t consoleRead(uint8_t* data, size_t length) override;
  uint8_t* guestRam(uint64_t gpa, uint64_t length) override { return ram_->translate(gpa, length); }

 private:
  struct HartSlot {
    machine::HartRunState state = machine::HartRunState::Stopped;
    uint64_t startAddress = 0;
    uint64_t opaque = 0;     // a1 at entry
    bool machineMode = false;  // enter in M-mode (firmware, bare programs) instead of S-mode
    bool parked = false;       // its vCPU thread waits out a pause inside a run
    bool stepRequested = false;  // parked: execute one instruction for the debugger (stepHart)
    bool resumeInPlace = false;  // restored mid-run: StartPending enters run() without a reset
    uint64_t sampleRound = 0;  // the last stats round this hart answered
    HartStats sample;
  };

  GuestMachine(const VmConfig& config, VmControl& control, HostConsole& console, EventLoop& loop,
               const std::vector<NetInterface>& nics);
  // warm: RAM, bus and harts taken from it instead of made (memoryFile is then its).
  Result<void> buildBoard(const std::vector<std::unique_ptr<storage::BlockDevice>>& disks, const std::string& memoryFile,
                          std::unique_ptr<WarmBoard> warm = nullptr);
  Result<void> addVirtioDevices(const std::vector<std::unique_ptr<storage::BlockDevice>>& disks);
  void waitForDiskRequests();
  Result<void> addVirtioDevice(const std::string& name, std::unique_ptr<virtio::VirtioDevice> device);
  Result<void> loadBootPayload();
  Result<void> loadBareProgram();
  Result<void> watchToHost(uint64_t toHost, std::optional<uint64_t> fromHost);
  void pollToHost();
  void vcpuThread(unsigned id);
  // vCPU thread, mutex_ held, after run() returned StopRequested: answers a stats
  // round, waits out a pause. False when the boot is ending.
  bool serviceStopRequest(unsigned id, std::unique_lock<std::mutex>& lock);
  bool runsGuestCode(unsigned id) const;  // mutex_ held
  HartStats sampleHart(unsigned id) const;  // its thread running no guest code
  // Loop thread, after each loop round: holds the device queues once every vCPU
  // parked and reports the pause done once no disk request is in flight.
  void updatePause();
  uint64_t diskRequestsInFlight() const;
  void finish(GuestExit exit, int status = 0);

  const VmConfig& config_;
  VmControl& control_;
  HostConsole& console_;
  uint64_t clockStartNs_ = 0;

  EventLoop* loop_;
  std::unique_ptr<WarmBoard> warm_;  // adopted: the harts' host, forwarding to this machine (outlives harts_)
  std::unique_ptr<machine::GuestRam> ram_;
  std::unique_ptr<machine::Bus> bus_ = std::make_unique<machine::Bus>();
  machine::Sbi sbi_{*this};
  std::vector<std::unique_ptr<cpu::Hart>> harts_;
  std::unique_ptr<machine::Plic> plic_;
  std::unique_ptr<machine::Uart16550> uart_;
  std::unique_ptr<machine::GoldfishRtc> rtc_;
  std::unique_ptr<machine::Clint> clint_;
  std::unique_ptr<machine::PvPanic> pvpanic_;
  std::unique_ptr<machine::SifiveTest> sifiveTest_;
  std::unique_ptr<machine::VmGenerationId> generationId_;
  std::vector<virtio::VirtioBlk*> blockDevices_;  // in virtioDevices_
  std::vector<storage::BlockDevice*> disks_;  // owned by runVm, outliving every boot
  std::vector<uint64_t> diskBytes_;  // each disk's size, recorded in a snapshot as part of its identity
  const std::vector<NetInterface>& nics_;  // each one's virtio-net in virtioDevices_
  std::unique_ptr<LoopTimer> announceTimer_;
  unsigned announceRounds_ = 0;
  virtio::VirtioConsole* virtioConsole_ = nullptr;
  virtio::VirtioBalloon* balloon_ = nullptr;  // in virtioDevices_, with --balloon
  std::vector<std::unique_ptr<virtio::VirtioDevice>> virtioDevices_;
  std::vector<std::unique_ptr<virtio::VirtioMmioTransport>> virtio_;
  std::vector<unsigned> virtioSlots_;

  std::mutex mutex_;  // guards slots_, outcome_ and the pause and stats state
  bool pauseRequested_ = false;
  bool paused_ = false;       // parked and drained
  bool queuesHeld_ = false;   // loop thread
  uint64_t sampleRound_ = 0;
  std::condition_variable changed_;
  std::vector<HartSlot> slots_;
  std::optional<GuestOutcome> outcome_;
  uint64_t restoredRunningNs_ = 0;  // CLOCK_MONOTONIC when a restored hart first ran (--stats prints it)
  // Bare programs: the HTIF words in guest RAM and the timer that polls them.
  uint64_t* toHost_ = nullptr;
  uint64_t* fromHost_ = nullptr;
  UniqueFd toHostTimer_;
  std::atomic<bool> stopping_{false};
};

}  // namespace strata::vmm
