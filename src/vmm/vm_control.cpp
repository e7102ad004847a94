#include "vmm/vm_control.h"

#include <time.h>

#include <fmt/core.h>

#include "vmm/live_disk.h"

namespace strata::vmm {
namespace {

uint64_t hostNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

const char* vmStateName(VmState state) {
  switch (state) {
    case VmState::Running: return "running";
    case VmState::Paused: return "paused";
    case VmState::ShuttingDown: return "shutting_down";
  }
  return "unknown";
}

// pausedNs_ starts at the host time of the VM's start, so guest time counts from 0.
VmControl::VmControl(const VmConfig& config)
    : config_(config),
      started_(std::chrono::steady_clock::now()),
      balloon_(config.balloonTargetBytes, config.memoryBytes),
      nicTraffic_(config.tapDevices.size() + config.tapFds.size() + config.switchNets.size()),  // one per NIC
      pausedNs_(hostNs()) {
  if (config.memMerge) pageSharing_.emplace();
}

VmState VmControl::state() const {
  std::lock_guard lock(mutex_);
  return stateLocked();
}

VmState VmControl::stateLocked() const {
  if (ending_) return VmState::ShuttingDown;
  return paused_ ? VmState::Paused : VmState::Running;
}

double VmControl::uptimeSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

uint64_t VmControl::guestNs() const {
  // frozenNs_ is cleared only after pausedNs_ took the pause in (both seq_cst),
  // so a reader never pairs the running formula with a stale offset.
  uint64_t frozen = frozenNs_.load();
  if (frozen != kNotFrozen) return frozen;
  return hostNs() - pausedNs_.load();
}

void VmControl::freezeClock() {
  pauseStartedNs_ = hostNs();
  frozenNs_.store(pauseStartedNs_ - pausedNs_.load());
}

void VmControl::thawClock() {
  pausedNs_.fetch_add(hostNs() - pauseStartedNs_);
  frozenNs_.store(kNotFrozen);
}

VmState VmControl::pause() {
  std::lock_guard operation(operationMutex_);
  ControlledMachine* machine;
  {
    std::lock_guard lock(mutex_);
    if (ending_ || paused_) return stateLocked();
    machine = machine_;
    if (machine) machine->beginPause();
  }
  // Between boots (a reboot in progress) the next board starts parked instead.
  // detach() takes operationMutex_, so the machine outlives this wait.
  if (machine) machine->waitPaused();
  std::lock_guard lock(mutex_);
  if (ending_) return VmState::ShuttingDown;
  paused_ = true;
  freezeClock();
  return VmState::Paused;
}

VmState VmControl::resume() {
  std::lock_guard operation(operationMutex_);
  std::lock_guard lock(mutex_);
  if (ending_ || !paused_ || pauseHeld_) return stateLocked();
  thawClock();
  paused_ = false;
  if (machine_) machine_->resume();
  return VmState::Running;
}

VmState VmControl::shutdown() {
  std::lock_guard operation(operationMutex_);
  std::lock_guard lock(mutex_);
  ending_ = true;
  if (machine_) machine_->requestExit(GuestExit::Quit);
  return VmState::ShuttingDown;
}

VmState VmControl::reset() {
  std::lock_guard operation(operationMutex_);
  std::lock_guard lock(mutex_);
  if (ending_) return VmState::ShuttingDown;
  if (pauseHeld_) return stateLocked();
  if (paused_) {
    thawClock();
    paused_ = false;
  }
  if (machine_) machine_->requestExit(GuestExit::Reboot);
  return VmState::Running;
}

Result<VmState> VmControl::snapshot(const std::string& dir, bool resumeAfter, bool compress, bool* refused) {
  bool wasRunning = state() == VmState::Running;
  for (const LiveDisk* disk : disks_) {
    if (!resumeAfter || !wasRunning || disk->snapshotKeepsContents()) continue;
    if (refused) *refused = true;
    return Error{fmt::format("disk {} is a pool volume but not a thin one, whose contents a snapshot cannot keep while the VM runs on; "
                             "take it without resuming (\"resume\": false, strata vm snapshot --no-resume)",
                             disk->current().path)};
  }
  if (pause() != VmState::Paused) return Error{"the VM is shutting down"};
  Result<void> saved = [&]() -> Result<void> {
    std::lock_guard operation(operationMutex_);
    std::lock_guard lock(mutex_);
    if (!machine_) return Error{"the guest is rebooting; no board to snapshot"};
    return machine_->saveSnapshot(dir, compress);
  }();
  if (resumeAfter && wasRunning) resume();
  if (!saved) return saved.error();
  return state();
}

VmStats VmControl::stats() {
  std::lock_guard operation(operationMutex_);
  ControlledMachine* machine;
  {
    std::lock_guard lock(mutex_);
    machine = machine_;
  }
  return machine ? machine->sampleStats() : VmStats{};
}

void VmControl::attach(ControlledMachine* machine) {
  std::lock_guard lock(mutex_);
  machine_ = machine;
  // A debugger's points, set before this board existed (or before a reboot), apply to its harts too.
  for (cpu::Hart* hart : machine_->harts()) hart->setDebugPoints(debugPoints_);
  if (paused_) machine_->beginPause();
}

Result<std::unique_ptr<VmControl::MachineLease>> VmControl::leaseMachine() {
  std::unique_ptr<MachineLease> lease(new MachineLease(boardMutex_, nullptr));
  std::lock_guard lock(mutex_);
  if (ending_) return Error{"the VM is shutting down"};
  if (!machine_) return Error{"the guest is rebooting; try again"};
  lease->machine_ = machine_;
  return lease;
}

void VmControl::holdPaused(bool hold) {
  std::lock_guard lock(mutex_);
  pauseHeld_ = hold;
}

void VmControl::detach() {
  std::unique_lock board(boardMutex_);
  std::lock_guard operation(operationMutex_);
  std::lock_guard lock(mutex_);
  machine_ = nullptr;
}

void VmControl::markEnded() {
  std::lock_guard lock(mutex_);
  ending_ = true;
}

bool VmControl::withPausedHarts(const std::function<void(const std::vector<cpu::Hart*>&)>& fn) {
  std::lock_guard operation(operationMutex_);
  std::lock_guard lock(mutex_);
  if (!paused_ || ending_ || !machine_) return false;
  fn(machine_->harts());
  return true;
}

bool VmControl::stepHart(unsigned id) {
  std::lock_guard operation(operationMutex_);  // the board stays, and stays paused
  ControlledMachine* machine;
  {
    std::lock_guard lock(mutex_);
    if (!paused_ || ending_ || !machine_) return false;
    machine = machine_;
  }
  return machine->stepHart(id);
}

void VmControl::setDebugPoints(const cpu::DebugPoints& points) {
  std::lock_guard operation(operationMutex_);
  std::lock_guard lock(mutex_);
  debugPoints_ = points;
  if (paused_ && machine_)
    for (cpu::Hart* hart : machine_->harts()) hart->setDebugPoints(points);
}

cpu::DebugPoints VmControl::debugPoints() const {
  std::lock_guard lock(mutex_);
  return debugPoints_;
}

void VmControl::setDebugStopHandler(std::function<void(unsigned hart)> handler) {
  std::lock_guard lock(mutex_);
  debugStopHandler_ = std::move(handler);
}

bool VmControl::debugStopped(unsigned hart) {
  std::lock_guard lock(mutex_);
  if (!debugStopHandler_) return false;
  debugStopHandler_(hart);
  return true;
}

}  // namespace strata::vmm
