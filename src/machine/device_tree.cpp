#include "machine/device_tree.h"

#include <libfdt.h>

#include <fmt/core.h>

#include "cpu/hart.h"
#include "machine/virt_layout.h"

namespace strata::machine {
namespace {

// Sequential-write FDT builder that remembers the first libfdt error, so the
// tree can be written as straight-line code and checked once at the end.
class FdtWriter {
 public:
  explicit FdtWriter(size_t capacity) : blob_(capacity) {
    check(fdt_create(blob_.data(), static_cast<int>(blob_.size())));
    check(fdt_finish_reservemap(blob_.data()));
  }
  void begin(const std::string& name) { check(fdt_begin_node(blob_.data(), name.c_str())); }
  void end() { check(fdt_end_node(blob_.data())); }
  void prop(const char* name) { check(fdt_property(blob_.data(), name, nullptr, 0)); }
  void prop(const char* name, const std::string& value) { check(fdt_property_string(blob_.data(), name, value.c_str())); }
  void prop(const char* name, std::initializer_list<const char*> strings) {
    std::string joined;
    for (const char* s : strings) joined.append(s).push_back('\0');
    check(fdt_property(blob_.data(), name, joined.data(), static_cast<int>(joined.size())));
  }
  void propU32(const char* name, uint32_t value) { check(fdt_property_u32(blob_.data(), name, value)); }
  void propU64(const char* name, uint64_t value) { check(fdt_property_u64(blob_.data(), name, value)); }
  void propCells(const char* name, const std::vector<uint32_t>& cells) {
    std::vector<fdt32_t> be;
    for (uint32_t c : cells) be.push_back(cpu_to_fdt32(c));
    check(fdt_property(blob_.data(), name, be.data(), static_cast<int>(be.size() * sizeof(fdt32_t))));
  }
  void propBytes(const char* name, const std::vector<uint8_t>& bytes) {
    check(fdt_property(blob_.data(), name, bytes.data(), static_cast<int>(bytes.size())));
  }
  // reg = <base size> with #address-cells = #size-cells = 2.
  void reg(uint64_t base, uint64_t size) {
    propCells("reg", {static_cast<uint32_t>(base >> 32), static_cast<uint32_t>(base),
                      static_cast<uint32_t>(size >> 32), static_cast<uint32_t>(size)});
  }

  Result<std::vector<uint8_t>> finish() {
    check(fdt_finish(blob_.data()));
    if (error_ != 0) return Error{fmt::format("building the device tree: {}", fdt_strerror(error_))};
    blob_.resize(fdt_totalsize(blob_.data()));
    return std::move(blob_);
  }

 private:
  void check(int rc) {
    if (rc < 0 && error_ == 0) error_ = rc;
  }
  std::vector<uint8_t> blob_;
  int error_ = 0;
};

constexpr uint32_t kPlicPhandle = 1;
uint32_t cpuIntcPhandle(unsigned hart) { return 2 + hart; }
uint32_t cpuPhandle(unsigned hart) { return 2 + virt::kMaxHarts + hart; }

void writeCpus(FdtWriter& w, unsigned hartCount) {
  w.begin("cpus");
  w.propU32("#address-cells", 1);
  w.propU32("#size-cells", 0);
  w.propU32("timebase-frequency", static_cast<uint32_t>(cpu::kTimebaseHz));
  for (unsigned h = 0; h < hartCount; ++h) {
    w.begin(fmt::format("cpu@{}", h));
    w.prop("device_type", "cpu");
    w.propU32("reg", h);
    w.prop("status", "okay");
    w.prop("compatible", "riscv");
    w.prop("riscv,isa", "rv64imafdc_zicsr_zifencei_sstc");
    w.prop("mmu-type", "riscv,sv57");
    w.propU32("phandle", cpuPhandle(h));
    w.begin("interrupt-controller");
    w.propU32("#interrupt-cells", 1);
    w.prop("interrupt-controller");
    w.prop("compatible", "riscv,cpu-intc");
    w.propU32("phandle", cpuIntcPhandle(h));
    w.end();
    w.end();
  }
  w.begin("cpu-map");
  w.begin("cluster0");
  for (unsigned h = 0; h < hartCount; ++h) {
    w.begin(fmt::format("core{}", h));
    w.propU32("cpu", cpuPhandle(h));
    w.end();
  }
  w.end();
  w.end();
  w.end();
}

// interrupts-extended pairs <intc cause> for every hart, for each listed cause.
std::vector<uint32_t> perHartInterrupts(unsigned hartCount, std::initializer_list<uint32_t> causes) {
  std::vector<uint32_t> cells;
  for (unsigned h = 0; h < hartCount; ++h)
    for (uint32_t cause : causes) {
      cells.push_back(cpuIntcPhandle(h));
      cells.push_back(cause);
    }
  return cells;
}

void writeSoc(FdtWriter& w, const DeviceTreeSpec& spec) {
  w.begin("soc");
  w.propU32("#address-cells", 2);
  w.propU32("#size-cells", 2);
  w.prop("compatible", "simple-bus");
  w.prop("ranges");

  w.begin(fmt::format("clint@{:x}", virt::kClintBase));
  w.prop("compatible", {"sifive,clint0", "riscv,clint0"});
  w.reg(virt::kClintBase, virt::kClintSize);
  w.propCells("interrupts-extended",
              perHartInterrupts(spec.hartCount, {cpu::kMachineSoftware, cpu::kMachineTimer}));
  w.end();

  w.begin(fmt::format("plic@{:x}", virt::kPlicBase));
  w.prop("compatible", {"sifive,plic-1.0.0", "riscv,plic0"});
  w.propU32("#interrupt-cells", 1);
  w.propU32("#address-cells", 0);
  w.prop("interrupt-controller");
  w.reg(virt::kPlicBase, virt::kPlicSize);
  w.propU32("riscv,ndev", virt::kPlicSources - 1);
  w.propCells("interrupts-extended",
              perHartInterrupts(spec.hartCount, {cpu::kMachineExternal, cpu::kSupervisorExternal}));
  w.propU32("phandle", kPlicPhandle);
  w.end();

  auto device = [&](const std::string& name, const char* compatible, uint64_t base, uint64_t size,
                    std::optional<unsigned> irq) {
    w.begin(fmt::format("{}@{:x}", name, base));
    w.prop("compatible", compatible);
    w.reg(base, size);
    if (irq) {
      w.propU32("interrupt-parent", kPlicPhandle);
      w.propU32("interrupts", *irq);
    }
  };
  w.begin(fmt::format("test@{:x}", virt::kTestBase));
  w.prop("compatible", {"sifive,test1", "sifive,test0", "syscon"});
  w.reg(virt::kTestBase, virt::kTestSize);
  w.end();
  device("serial", "ns16550a", virt::kUartBase, virt::kUartSize, virt::kUartIrq);
  w.propU32("clock-frequency", static_cast<uint32_t>(virt::kUartClockHz));
  w.end();
  device("rtc", "google,goldfish-rtc", virt::kRtcBase, virt::kRtcSize, virt::kRtcIrq);
  w.end();
  device("pvpanic", "qemu,pvpanic-mmio", virt::kPvPanicBase, virt::kPvPanicSize, std::nullopt);
  w.end();
  device("vmgenid", "microsoft,vmgenid", virt::kVmGenIdBase, virt::kVmGenIdSize, std::nullopt);
  w.end();
  for (unsigned slot : spec.virtioSlots) {
    device("virtio_mmio", "virtio,mmio", virt::virtioSlotBase(slot), virt::kVirtioStride,
           virt::kVirtioIrqFirst + slot);
    w.end();
  }
  w.end();
}

// A tree the guest would misread is refused rather than built: more harts than
// the phandle numbering has room for, RAM that wraps the address space, an
// initrd outside RAM, virtio slots the board does not have or names twice,
// boot arguments that a NUL would cut short.
Result<void> checkSpec(const DeviceTreeSpec& spec) {
  if (spec.hartCount < 1 || spec.hartCount > virt::kMaxHarts)
    return Error{fmt::format("device tree: {} harts (1 to {})", spec.hartCount, virt::kMaxHarts)};
  if (spec.ramSize == 0 || spec.ramSize > ~virt::kRamBase)
    return Error{fmt::format("device tree: RAM size {:#x} does not fit the address space", spec.ramSize)};
  if (spec.initrd) {
    auto [start, end] = *spec.initrd;
    if (start > end || start < virt::kRamBase || end - virt::kRamBase > spec.ramSize)
      return Error{fmt::format("device tree: initrd {:#x}-{:#x} is not inside RAM", start, end)};
  }
  std::vector<bool> used(virt::kVirtioSlots);
  for (unsigned slot : spec.virtioSlots) {
    if (slot >= virt::kVirtioSlots || used[slot])
      return Error{fmt::format("device tree: virtio slot {} is out of range or repeated", slot)};
    used[slot] = true;
  }
  if (spec.bootArgs.find('\0') != std::string::npos) return Error{"device tree: boot arguments contain a NUL byte"};
  return {};
}

}  // namespace

Result<std::vector<uint8_t>> buildDeviceTree(const DeviceTreeSpec& spec) {
  if (auto valid = checkSpec(spec); !valid) return valid.error();
  FdtWriter w(64 * 1024);
  w.begin("");
  w.propU32("#address-cells", 2);
  w.propU32("#size-cells", 2);
  w.prop("compatible", "riscv-virtio");
  w.prop("model", "strata,virt");

  w.begin("chosen");
  w.prop("bootargs", spec.bootArgs);
  w.prop("stdout-path", fmt::format("/soc/serial@{:x}", virt::kUartBase));
  if (spec.initrd) {
    w.propU64("linux,initrd-start", spec.initrd->first);
    w.propU64("linux,initrd-end", spec.initrd->second);
  }
  if (!spec.rngSeed.empty()) w.propBytes("rng-seed", spec.rngSeed);
  w.end();

  w.begin(fmt::format("memory@{:x}", virt::kRamBase));
  w.prop("device_type", "memory");
  w.reg(virt::kRamBase, spec.ramSize);
  w.end();

  writeCpus(w, spec.hartCount);
  writeSoc(w, spec);
  w.end();
  return w.finish();
}

}  // namespace strata::machine
