// VmConfig: everything `strata run` needs to build one virtual machine.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "storage/disk_image.h"
#include "network/switch.h"
#include "cpu/hart.h"
#include "vmm/balloon_policy.h"
#include "vmm/host_console.h"

namespace strata {
class StateReader;
}

namespace strata::vmm {

struct DiskConfig {
  std::string path;  // an image file, or pool:NAME/VOLUME
  bool readOnly = false;
  // Auto: probed once when the VM starts (images only; volumes have no format).
  storage::ImageFormat format = storage::ImageFormat::Auto;
};

// The process sandbox (src/vmm/sandbox.h), on by default.
struct SandboxConfig {
  bool seccomp = true;   // off only for debugging
  bool landlock = true;  // used when the host kernel has Landlock
};

// --net switch=NAME[,vlan=N|,trunk=N,M,...][,mac=..]: a NIC on `strata switch NAME`.
struct SwitchNetConfig {
  std::string switchName;
  network::PortVlans vlans;
  std::optional<network::MacAddress> mac;  // none: the NIC's default address
};

struct VmConfig {
  // Boot modes: a Linux kernel entered in S-mode with strata answering SBI
  // (default); M-mode `firmware` that then boots the kernel; or a `bareProgram`
  // ELF run in M-mode that reports through the HTIF tohost word.
  std::string firmware;
  std::string bareProgram;
  std::string kernel;
  std::string initrd;  // empty: none
  std::string commandLine;
  std::vector<DiskConfig> disks;
  std::vector<std::string> tapDevices;
  std::vector<int> tapFds;  // TAP fds the jailer opened and handed over (--net tapfd=N)
  std::vector<SwitchNetConfig> switchNets;  // NICs after the TAP ones
  uint64_t memoryBytes = 256ull << 20;
  // --balloon TARGET: a virtio-balloon device (free page reporting included)
  // asking the guest for TARGET bytes back from the start; none without it.
  std::optional<uint64_t> balloonTargetBytes;
  // --balloon-auto: the balloon's target follows the host's free memory and the guest's pressure.
  std::optional<BalloonPolicyConfig> balloonAuto;
  // --mem-merge: guest RAM private and MADV_MERGEABLE so the host's KSM can share its pages.
  bool memMerge = false;
  unsigned cpus = 1;
  cpu::EngineConfig engine;
  bool printEngineStats = false;  // per-hart engine counters on stderr when the VM ends
  ConsoleConfig console;
  SandboxConfig sandbox;
  // --restore DIR: the first boot resumes the snapshot in DIR (written by PUT /vm/snapshot)
  // instead of loading the kernel; the board options must match the snapshot's.
  std::string restoreDir;
  // Its state file as the command line read and checked it for the board (restoreConfig),
  // which the restore goes on from rather than mapping and checking it again; null: read then.
  std::shared_ptr<StateReader> restoreState;
  // --clone (with --restore): one of many VMs from the same snapshot: its RAM
  // shares the snapshot's pages copy-on-write, each disk is a new qcow2 overlay
  // (a linked clone) on the snapshot's image, each NIC gets a new random MAC.
  bool clone = false;
  // --clone-dir: where the clone's disk overlays go (DIR/clone-diskN.qcow2), so
  // a manager keeps them with the VM they belong to; empty: beside the snapshot.
  std::string cloneDir;
  // --incoming tcp:ADDR:PORT: the first boot is a VM live-migrated from another
  // strata (PUT /vm/migrate there), received before anything runs; board options must match.
  std::string incoming;
  std::string incomingTlsCerts;  // --tls-certs DIR: TLS required of the source (the NBD server's layout)
  std::string apiSocket;  // --api-socket: where the control API is served (api_server.h); empty: none
  std::string gdb;        // --gdb tcp:HOST:PORT: where the GDB stub listens (gdb_stub.h); empty: none
  bool gdbWait = false;   // --gdb-wait: the guest starts paused, until the debugger resumes it
};

// "PATH" followed by options, each after a comma: "readonly" (also "ro") and
// "format=raw" or "format=qcow2" (image files only).
Result<DiskConfig> parseDiskConfig(const std::string& text);
// "256M", "1G", "1048576" (bytes), at least 1 MiB.
Result<uint64_t> parseMemorySize(const std::string& text);
// The same syntax for any size option (0 allowed, at most 64G); errors name `option`.
Result<uint64_t> parseByteSize(const std::string& text, std::string_view option);

}  // namespace strata::vmm
