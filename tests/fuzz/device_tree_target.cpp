// buildDeviceTree over specs decoded from the input. A tree it returns must be
// one a kernel can trust: libfdt's full structure check passes, phandles are
// unique, and /chosen, /memory, the harts and the virtio slots say what the
// spec said. Input: hart count (u16), RAM size (u64), flags (bit 0: initrd),
// initrd start and end (u64), slot count and slots (u8 each), rng-seed length
// and bytes, then the boot arguments.
#include <libfdt.h>

#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include <fmt/core.h>

#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "machine/device_tree.h"
#include "machine/virt_layout.h"

namespace strata::fuzz {

namespace {

void require(bool invariant) {
  if (!invariant) std::abort();
}

uint64_t loadBe64(const void* p) {
  return static_cast<uint64_t>(fdt32_to_cpu(static_cast<const fdt32_t*>(p)[0])) << 32 |
         fdt32_to_cpu(static_cast<const fdt32_t*>(p)[1]);
}

bool propertyIs(const void* fdt, const char* path, const char* name, const void* value, int length) {
  int node = fdt_path_offset(fdt, path);
  if (node < 0) return false;
  int found = 0;
  const void* stored = fdt_getprop(fdt, node, name, &found);
  return stored != nullptr && found == length && std::memcmp(stored, value, length) == 0;
}

void checkTree(const machine::DeviceTreeSpec& spec, const std::vector<uint8_t>& blob) {
  const void* fdt = blob.data();
  require(fdt_check_full(fdt, blob.size()) == 0);

  std::set<uint32_t> phandles;
  unsigned cpus = 0;
  for (int node = fdt_next_node(fdt, -1, nullptr); node >= 0; node = fdt_next_node(fdt, node, nullptr)) {
    int length = 0;
    if (const void* phandle = fdt_getprop(fdt, node, "phandle", &length)) {
      require(length == 4 && phandles.insert(fdt32_to_cpu(*static_cast<const fdt32_t*>(phandle))).second);
    }
    const char* type = static_cast<const char*>(fdt_getprop(fdt, node, "device_type", &length));
    if (type != nullptr && std::strcmp(type, "cpu") == 0) ++cpus;
  }
  require(cpus == spec.hartCount);

  require(propertyIs(fdt, "/chosen", "bootargs", spec.bootArgs.c_str(), static_cast<int>(spec.bootArgs.size() + 1)));
  int memory = fdt_path_offset(fdt, fmt::format("/memory@{:x}", machine::virt::kRamBase).c_str());
  int length = 0;
  const auto* reg = static_cast<const uint8_t*>(fdt_getprop(fdt, memory, "reg", &length));
  require(reg != nullptr && length == 16 && loadBe64(reg) == machine::virt::kRamBase && loadBe64(reg + 8) == spec.ramSize);
  if (spec.initrd) {
    fdt64_t start = cpu_to_fdt64(spec.initrd->first), end = cpu_to_fdt64(spec.initrd->second);
    require(propertyIs(fdt, "/chosen", "linux,initrd-start", &start, 8) &&
            propertyIs(fdt, "/chosen", "linux,initrd-end", &end, 8));
  }
  for (unsigned slot : spec.virtioSlots)
    require(fdt_path_offset(fdt, fmt::format("/soc/virtio_mmio@{:x}", machine::virt::virtioSlotBase(slot)).c_str()) >= 0);
}

}  // namespace

int deviceTreeOneInput(const uint8_t* data, size_t size) {
  quietLogs();
  FuzzInput input(data, size);
  machine::DeviceTreeSpec spec;
  spec.hartCount = input.u16();
  spec.ramSize = input.u64();
  uint8_t flags = input.u8();
  uint64_t initrdStart = input.u64(), initrdEnd = input.u64();
  if (flags & 1) spec.initrd = std::make_pair(initrdStart, initrdEnd);
  unsigned slots = input.u8() % 16;
  for (unsigned i = 0; i < slots; ++i) spec.virtioSlots.push_back(input.u8());
  spec.rngSeed = input.bytes(input.u8());
  auto bootArgs = input.rest();
  spec.bootArgs.assign(bootArgs.begin(), bootArgs.end());

  auto tree = machine::buildDeviceTree(spec);
  if (tree) checkTree(spec, *tree);
  return 0;
}

}  // namespace strata::fuzz
