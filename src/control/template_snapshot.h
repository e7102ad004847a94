// Template snapshots: a template booted once in a private `strata run` (its
// disk a linked clone kept in DATADIR/templates/NAME.snapshot/), prepared by
// commands typed on its console, and snapshotted paused there; VMs made from
// the template then resume that snapshot as clones instead of booting.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "base/result.h"
#include "control/store.h"
#include "control/vm_spec.h"

namespace strata::control {

// What a finished template snapshot was taken of: the VMs resumed from it get
// this board, and later boot the same kernel from their own disk.
struct TemplateSnapshot {
  std::string dir;  // holds state, memory and disk.qcow2
  unsigned cpus = 1;
  uint64_t memoryMib = 0;
  std::string kernel, initrd, append;
};

std::string templateSnapshotDir(const std::string& dataDir, const std::string& templateName);
// The finished snapshot of a template, or nullopt (none, or one still being taken).
std::optional<TemplateSnapshot> readTemplateSnapshot(const std::string& dataDir, const std::string& templateName);

// Removes the snapshot directories an interrupted daemon left unfinished.
void dropUnfinishedTemplateSnapshots(const std::string& dataDir);

struct TemplateSnapshotJob {
  std::string strataBinary, dataDir;
  TemplateRecord source;
  VmSpec boot;           // cpus, memory, kernel, initrd, append of the template's boot (name, disks unused)
  std::string commands;  // typed on the console once the shell answers, before the snapshot
};

// Into templateSnapshotDir, which the caller made (empty: making it is the claim
// on it). Boots, waits until the guest's shell answers on the console, types
// the commands, waits for them, snapshots paused and ends the VM; progress
// counts those steps. A failure removes the directory.
Result<void> takeTemplateSnapshot(const TemplateSnapshotJob& job,
                                  const std::function<void(uint64_t done, uint64_t total)>& progress);

}  // namespace strata::control
