// WarmBoard: the part of a restored board that is the same in every clone of
// a snapshot, built once by the clone server before it forks (clone_server.h):
// guest RAM mapped copy-on-write from the snapshot's memory file, the bus the
// harts reach devices through (empty until a GuestMachine maps its devices),
// and the harts with their saved state loaded and their warm set (the blocks
// the jit had translated when the snapshot was taken) decoded and translated
// from the snapshot's memory, and the state file they came from. Each forked
// clone's GuestMachine adopts it, so
// the clones share all of it copy-on-write and each pays only for what it
// changes. The harts' host is this object, forwarding to the machine that
// adopted it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/state_stream.h"
#include "cpu/hart.h"
#include "machine/bus.h"
#include "machine/guest_ram.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

class WarmBoard final : public cpu::HartHost {
 public:
  // config: the snapshot's board (restoreConfig of config.restoreDir).
  static Result<std::unique_ptr<WarmBoard>> create(const VmConfig& config);

  const std::string& restoreDir() const { return restoreDir_; }
  // The snapshot's state file as the server read and checked it: a clone
  // loads its devices from these bytes, shared with the server, rather than
  // reading its own copy of the file into its heap.
  StateReader& state() { return *state_; }
  size_t warmedBlocks() const { return warmedBlocks_; }

  // The adopting machine: every hart's host from now on. Before any hart runs.
  void adoptedBy(cpu::HartHost& machine) { machine_ = &machine; }
  std::unique_ptr<machine::GuestRam> ram;
  std::unique_ptr<machine::Bus> bus;
  std::vector<std::unique_ptr<cpu::Hart>> harts;

  // cpu::HartHost
  uint64_t timeNow() override { return machine_->timeNow(); }
  bool supervisorEcall(cpu::Hart& hart) override { return machine_->supervisorEcall(hart); }
  void flushDeferredOutput() override { machine_->flushDeferredOutput(); }

 private:
  WarmBoard() = default;
  std::string restoreDir_;
  std::shared_ptr<StateReader> state_;
  size_t warmedBlocks_ = 0;
  cpu::HartHost* machine_ = nullptr;
};

// A snapshot's "warm-set" section: the translated blocks of each hart's Hart::warmSet(). Snapshots
// without one (older ones) restore the same, just cold.
void saveWarmSets(StateWriter& out, const std::vector<std::unique_ptr<cpu::Hart>>& harts);
Result<std::vector<std::vector<uint64_t>>> loadWarmSets(StateReader& in, size_t hartCount);

}  // namespace strata::vmm
