// The board a snapshot was taken of, kept in its state file's "vm" section:
// the VmConfig options that shape the guest's machine (memory, harts, engine,
// boot files, disks, NICs, balloon), the virtio slots' devices and each disk's
// size. `strata run --restore DIR` builds the board from it alone.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/state_stream.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

// A snapshot's memory: the sparse file a restore maps, or compressed (compressed_memory.h).
inline constexpr const char* kMemoryFile = "memory";
inline constexpr const char* kCompressedMemoryFile = "memory.zst";

struct RecordedBoard {
  VmConfig config;  // its board options only; host-side ones (console, sandbox, API socket) stay default
  std::vector<std::string> virtioNames;  // slot order
  std::vector<uint64_t> diskBytes;       // per config.disks entry
  std::string memoryFile = kMemoryFile;  // in the snapshot's directory
  std::shared_ptr<StateReader> state;    // readSnapshotBoard's: the whole state file, checked
};

// disks: each of config.disks as the VM has it now (after a snapshot, its overlay).
void saveBoard(StateWriter& out, const VmConfig& config, std::span<const DiskConfig> disks,
               std::span<const std::string> virtioNames, std::span<const uint64_t> diskBytes,
               const std::string& memoryFile = kMemoryFile);
Result<RecordedBoard> loadBoard(StateReader& in);
// DIR/state checked whole (framing, version, checksum), then its board; the reader goes with it.
Result<RecordedBoard> readSnapshotBoard(const std::string& dir);

// The config to restore with: the snapshot's board, with the host-side options
// of `commandLine`. A board option the command line set (`given` names it, e.g.
// "--mem") must equal the snapshot's; the first that does not is the error. The
// config carries the recorded state file on (VmConfig::restoreState).
Result<VmConfig> restoreConfig(const RecordedBoard& recorded, const VmConfig& commandLine,
                               const std::vector<std::string>& given);

}  // namespace strata::vmm
