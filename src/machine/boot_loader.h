// Places a guest's boot payload in RAM the way QEMU's `virt` machine does: the
// kernel (a RISC-V Linux `Image` or an ELF) at its load address, the initrd and
// the device tree at the top of RAM. Every file is untrusted: a missing,
// truncated or foreign file, or RAM too small for it, is an error naming it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "machine/guest_ram.h"

namespace strata::machine {

struct LoadedImage {
  uint64_t entry = 0;
  uint64_t start = 0;  // lowest guest-physical byte occupied
  uint64_t end = 0;    // one past the highest (including an Image's bss)
};

Result<std::vector<uint8_t>> readWholeFile(const std::string& path, uint64_t maxBytes);

// A Linux `Image` (loaded at RAM base + text_offset) or an ELF kernel.
Result<LoadedImage> loadKernel(const std::string& path, GuestRam& ram);

// An ELF executable loaded at its physical (link) addresses, for bare-metal
// programs and firmware. Segments must lie wholly in RAM.
Result<LoadedImage> loadElfAtLinkAddress(const std::string& path, GuestRam& ram);

// M-mode firmware (e.g. OpenSBI fw_jump): an ELF at its link addresses, or a
// flat binary at the RAM base; its entry is where every hart starts.
Result<LoadedImage> loadFirmware(const std::string& path, GuestRam& ram);

// Looks up a global symbol's address in an ELF file (e.g. `tohost`).
Result<std::optional<uint64_t>> findElfSymbol(const std::string& path, const std::string& name);

// Copies the initrd right below `limit` (page aligned) and returns [start, end).
// Fails if it would overlap [0, floor).
Result<std::pair<uint64_t, uint64_t>> loadInitrd(const std::string& path, GuestRam& ram, uint64_t floor,
                                                 uint64_t limit);

// Where the device tree goes: 2 MiB aligned below the top of RAM, as QEMU does.
uint64_t deviceTreeAddress(const GuestRam& ram, uint64_t blobSize);

}  // namespace strata::machine
