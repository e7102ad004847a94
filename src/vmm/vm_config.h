// VmConfig: everything `strata run` needs to build one virtual machine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "cpu/hart.h"
#include "vmm/host_console.h"

namespace strata::vmm {

struct DiskConfig {
  std::string path;
  bool readOnly = false;
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
  uint64_t memoryBytes = 256ull << 20;
  unsigned cpus = 1;
  cpu::EngineConfig engine;
  bool printEngineStats = false;  // per-hart engine counters on stderr when the VM ends
  ConsoleConfig console;
};

// "PATH" or "PATH,readonly" (also "ro").
Result<DiskConfig> parseDiskConfig(const std::string& text);
// "256M", "1G", "1048576" (bytes), at least 1 MiB.
Result<uint64_t> parseMemorySize(const std::string& text);

}  // namespace strata::vmm
