// The boot loader over a crafted file, as GuestMachine uses it. Input: mode
// (0: kernel then initrd, 1: firmware, 2: bare-metal ELF), RAM size in 2 MiB
// steps (2-16 MiB), initrd size in 32-byte units (u16), then the file. Every
// placement reported must lie inside guest RAM.
#include <array>
#include <cstdlib>
#include <memory>
#include <vector>

#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "machine/boot_loader.h"
#include "machine/virt_layout.h"

namespace strata::fuzz {

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr size_t kRamSizes = 8;

void require(bool invariant) {
  if (!invariant) std::abort();
}

struct BootState {
  BootState() { quietLogs(); }
  InputFile file{"boot"};
  InputFile initrd{"initrd"};
  // One RAM per size, reused: loaders overwrite what they place and read nothing else.
  std::array<std::unique_ptr<machine::GuestRam>, kRamSizes> rams;

  machine::GuestRam& ram(size_t index) {
    if (!rams[index]) rams[index] = std::move(*machine::GuestRam::create(machine::virt::kRamBase, (index + 1) * 2 * kMiB));
    return *rams[index];
  }
};

BootState& state() {
  static BootState instance;
  return instance;
}

void requireInside(const machine::LoadedImage& image, const machine::GuestRam& ram) {
  require(image.start >= ram.base() && image.start <= image.end && image.end <= ram.end());
}

void kernelAndInitrd(BootState& boot, machine::GuestRam& ram, size_t initrdBytes) {
  auto kernel = machine::loadKernel(boot.file.path(), ram);
  if (!kernel) return;
  requireInside(*kernel, ram);
  // Where GuestMachine puts a device tree of a few KiB.
  uint64_t fdtAddress = machine::deviceTreeAddress(ram, 4096 + 64);
  if (initrdBytes == 0 || fdtAddress < kernel->end) return;
  if (!boot.initrd.write(std::vector<uint8_t>(initrdBytes, 0xA5))) return;
  auto initrd = machine::loadInitrd(boot.initrd.path(), ram, kernel->end, fdtAddress);
  if (initrd) require(initrd->first >= kernel->end && initrd->first <= initrd->second && initrd->second <= fdtAddress);
}

}  // namespace

int bootLoaderOneInput(const uint8_t* data, size_t size) {
  BootState& boot = state();
  FuzzInput input(data, size);
  uint8_t mode = input.u8() % 3;
  machine::GuestRam& ram = boot.ram(input.u8() % kRamSizes);
  size_t initrdBytes = size_t{input.u16()} * 32;
  if (!boot.file.write(input.rest())) return 0;
  switch (mode) {
    case 0: kernelAndInitrd(boot, ram, initrdBytes); break;
    case 1:
      if (auto firmware = machine::loadFirmware(boot.file.path(), ram)) requireInside(*firmware, ram);
      break;
    case 2:
      if (auto program = machine::loadElfAtLinkAddress(boot.file.path(), ram)) requireInside(*program, ram);
      break;
  }
  (void)machine::findElfSymbol(boot.file.path(), "tohost");
  return 0;
}

}  // namespace strata::fuzz
