// A snapshot's memory compressed with zstd (`strata vm snapshot --compress`):
// what GuestRam::saveTo writes, minus its holes, as records of up to 1 MiB of
// non-zero pages, each one zstd frame with its checksum, then an end record.
// Smaller than the sparse memory file, but a restore must read and inflate it
// all into fresh RAM instead of mapping the file, so it grows with the guest.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "machine/guest_ram.h"

namespace strata::vmm {

// The guest must not be running.
Result<void> saveCompressedMemory(const machine::GuestRam& ram, const std::string& path);
// New RAM of `size` bytes at `base` (backing as GuestRam::create) holding what
// path recorded; a damaged, truncated or mismatched file is refused, with the
// file's name and what is wrong in one line.
Result<std::unique_ptr<machine::GuestRam>> loadCompressedMemory(uint64_t base, uint64_t size, machine::RamBacking backing,
                                                                const std::string& path);

}  // namespace strata::vmm
