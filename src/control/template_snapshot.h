// Template snapshots: a template booted once in a private `strata run` (its
// disk a linked clone kept in DATADIR/templates/NAME.snapshot/), prepared by
// commands typed on its console, and snapshotted paused there; VMs made from
// the template then resume that snapshot as clones instead of booting. A new
// snapshot replaces the old in a directory of its own (a snapshot names its
// files by absolute path, so it cannot move): NAME.snapshot, then NAME.snapshot.1, .2...
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

// Every snapshot directory of a template, finished or not, oldest first.
std::vector<std::string> templateSnapshotDirs(const std::string& dataDir, const std::string& templateName);
// The newest finished snapshot of a template, or nullopt (none yet, or only one still being taken).
std::optional<TemplateSnapshot> readTemplateSnapshot(const std::string& dataDir, const std::string& templateName);
// The directory a new snapshot of the template goes to, or nullopt while one is being taken.
std::optional<std::string> nextTemplateSnapshotDir(const std::string& dataDir, const std::string& templateName);

// A directory VMs may resume from is kept while `inUse` says one does.
using SnapshotInUse = std::function<bool(const std::string& dir)>;
// In use: some VM in the store resumes from it.
SnapshotInUse resumedByAnyVm(Store& store);
// Removes the template's snapshots older than its newest finished one that no VM uses.
void removeReplacedTemplateSnapshots(const std::string& dataDir, const std::string& templateName,
                                     const SnapshotInUse& inUse);
// At startup: removes the snapshot directories an interrupted daemon left unfinished, and replaced ones no VM uses.
void dropStaleTemplateSnapshots(const std::string& dataDir, const SnapshotInUse& inUse);

struct TemplateSnapshotJob {
  std::string strataBinary, dataDir;
  std::string dir;  // from nextTemplateSnapshotDir, made by the caller
  TemplateRecord source;
  VmSpec boot;           // cpus, memory, kernel, initrd, append of the template's boot (name, disks unused)
  std::string commands;  // typed on the console once the shell answers, before the snapshot
};

// Into job.dir, which the caller made (empty: making it is the claim on it). Boots, waits until the guest's shell answers on the console, types
// the commands, waits for them, snapshots paused and ends the VM; progress
// counts those steps. A failure removes the directory.
Result<void> takeTemplateSnapshot(const TemplateSnapshotJob& job,
                                  const std::function<void(uint64_t done, uint64_t total)>& progress);

}  // namespace strata::control
