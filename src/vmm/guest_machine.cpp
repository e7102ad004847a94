#include "vmm/guest_machine.h"

#include <time.h>

#include <random>

#include <fmt/core.h>

#include "base/log.h"
#include "machine/boot_loader.h"
#include "machine/clint.h"
#include "machine/device_tree.h"
#include "machine/goldfish_rtc.h"
#include "machine/plic.h"
#include "machine/pvpanic.h"
#include "machine/uart16550.h"
#include "machine/virt_layout.h"
#include "storage/disk_image.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/mmio_transport.h"
#include "virtio/packet_port.h"
#include "virtio/rng.h"

namespace strata::vmm {
namespace {

uint64_t monotonicNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::vector<uint8_t> randomSeed() {
  std::random_device source;
  std::vector<uint8_t> seed(64);
  for (auto& byte : seed) byte = static_cast<uint8_t>(source());
  return seed;
}

}  // namespace

Result<std::unique_ptr<GuestMachine>> GuestMachine::create(const VmConfig& config, HostConsole& console) {
  std::unique_ptr<GuestMachine> machine(new GuestMachine(config, console));
  if (auto built = machine->buildBoard(); !built) return built.error();
  if (auto loaded = machine->loadBootPayload(); !loaded) return loaded.error();
  return machine;
}

GuestMachine::GuestMachine(const VmConfig& config, HostConsole& console)
    : config_(config), console_(console), clockStartNs_(monotonicNs()) {}

GuestMachine::~GuestMachine() = default;

Result<void> GuestMachine::buildBoard() {
  if (config_.cpus < 1 || config_.cpus > machine::virt::kMaxHarts)
    return Error{fmt::format("--cpus {}: must be between 1 and {}", config_.cpus, machine::virt::kMaxHarts)};
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  loop_ = std::move(*loop);
  auto ram = machine::GuestRam::create(machine::virt::kRamBase, config_.memoryBytes);
  if (!ram) return ram.error();
  ram_ = std::move(*ram);

  cpu::PhysicalMemory memory{ram_->base(), ram_->size(), ram_->hostBase(), &bus_};
  for (unsigned id = 0; id < config_.cpus; ++id) harts_.push_back(std::make_unique<cpu::Hart>(id, memory, *this));
  slots_.resize(config_.cpus);

  plic_ = std::make_unique<machine::Plic>(config_.cpus, machine::virt::kPlicSources,
                                          [this](unsigned hart, cpu::InterruptBit bit, bool level) {
                                            harts_[hart]->setInterruptLine(bit, level);
                                          });
  uart_ = std::make_unique<machine::Uart16550>(plic_->line(machine::virt::kUartIrq),
                                               [this](const uint8_t* data, size_t length) { console_.write(data, length); });
  rtc_ = std::make_unique<machine::GoldfishRtc>(plic_->line(machine::virt::kRtcIrq));
  std::vector<cpu::Hart*> hartPointers;
  for (auto& hart : harts_) hartPointers.push_back(hart.get());
  clint_ = std::make_unique<machine::Clint>(hartPointers, [this] { return timeNow(); });
  pvpanic_ = std::make_unique<machine::PvPanic>([this] { finish(GuestExit::Panic); });

  using namespace machine::virt;
  for (auto [base, size, device] : {std::tuple<uint64_t, uint64_t, machine::MmioDevice*>{kPlicBase, kPlicSize, plic_.get()},
                                    {kUartBase, kUartSize, uart_.get()},
                                    {kRtcBase, kRtcSize, rtc_.get()},
                                    {kClintBase, kClintSize, clint_.get()},
                                    {kPvPanicBase, kPvPanicSize, pvpanic_.get()}}) {
    if (auto mapped = bus_.map(base, size, device); !mapped) return mapped.error();
  }
  return addVirtioDevices();
}

// Slots in order: disks (vda, vdb, ...), network interfaces, console, rng.
Result<void> GuestMachine::addVirtioDevices() {
  for (const auto& disk : config_.disks) {
    storage::DiskOptions options;
    options.readOnly = disk.readOnly;
    auto image = storage::openDiskImage(disk.path, options, *loop_);
    if (!image) return image.error();
    disks_.push_back(std::move(*image));
    auto added = addVirtioDevice(fmt::format("virtio-blk{}", disks_.size() - 1),
                                 std::make_unique<virtio::VirtioBlk>(*disks_.back()));
    if (!added) return added;
  }
  auto console = std::make_unique<virtio::VirtioConsole>(
      [this](std::span<const uint8_t> bytes) { console_.write(bytes.data(), bytes.size()); });
  virtioConsole_ = console.get();
  if (auto added = addVirtioDevice("virtio-console", std::move(console)); !added) return added;
  return addVirtioDevice("virtio-rng", std::make_unique<virtio::VirtioRng>());
}

Result<void> GuestMachine::addVirtioDevice(const std::string& name, std::unique_ptr<virtio::VirtioDevice> device) {
  unsigned slot = static_cast<unsigned>(virtio_.size());
  if (slot >= machine::virt::kVirtioSlots)
    return Error{fmt::format("too many virtio devices: the board has {} slots", machine::virt::kVirtioSlots)};
  auto transport = std::make_unique<virtio::VirtioMmioTransport>(
      name, *ram_, plic_->line(machine::virt::kVirtioIrqFirst + slot), *loop_, *device);
  if (auto mapped = bus_.map(machine::virt::virtioSlotBase(slot), machine::virt::kVirtioStride, transport.get()); !mapped)
    return mapped.error();
  virtioDevices_.push_back(std::move(device));
  virtio_.push_back(std::move(transport));
  virtioSlots_.push_back(slot);
  return {};
}

Result<void> GuestMachine::loadBootPayload() {
  auto kernel = machine::loadKernel(config_.kernel, *ram_);
  if (!kernel) return kernel.error();

  machine::DeviceTreeSpec spec;
  spec.hartCount = config_.cpus;
  spec.ramSize = ram_->size();
  spec.bootArgs = config_.commandLine;
  spec.virtioSlots = virtioSlots_;
  spec.rngSeed = randomSeed();
  // Size the tree first (without the initrd) to know where the initrd may end.
  auto probe = machine::buildDeviceTree(spec);
  if (!probe) return probe.error();
  uint64_t fdtAddress = machine::deviceTreeAddress(*ram_, probe->size() + 64);
  if (fdtAddress < kernel->end)
    return Error{fmt::format("{}: the kernel needs more than the {} MiB of guest memory", config_.kernel,
                             ram_->size() >> 20)};
  if (!config_.initrd.empty()) {
    auto initrd = machine::loadInitrd(config_.initrd, *ram_, kernel->end, fdtAddress);
    if (!initrd) return initrd.error();
    spec.initrd = *initrd;
  }
  auto tree = machine::buildDeviceTree(spec);
  if (!tree) return tree.error();
  uint8_t* host = ram_->translate(fdtAddress, tree->size());
  if (!host) return Error{"guest memory too small for the device tree"};
  std::copy(tree->begin(), tree->end(), host);

  slots_[0] = {machine::HartRunState::StartPending, kernel->entry, fdtAddress};
  return {};
}

uint64_t GuestMachine::timeNow() { return (monotonicNs() - clockStartNs_) / (1'000'000'000ull / cpu::kTimebaseHz); }

bool GuestMachine::supervisorEcall(cpu::Hart& hart) {
  sbi_.handleEcall(hart);
  return true;
}

machine::HartRunState GuestMachine::hartState(unsigned id) {
  std::lock_guard lock(mutex_);
  return slots_[id].state;
}

machine::SbiError GuestMachine::startHart(unsigned id, uint64_t startAddress, uint64_t opaque) {
  std::lock_guard lock(mutex_);
  if (slots_[id].state != machine::HartRunState::Stopped) return machine::SbiError::AlreadyAvailable;
  if (!ram_->translate(startAddress, 4)) return machine::SbiError::InvalidAddress;
  slots_[id] = {machine::HartRunState::StartPending, startAddress, opaque};
  changed_.notify_all();
  return machine::SbiError::Success;
}

void GuestMachine::resetSystem(machine::SystemResetKind kind, uint32_t reason) {
  if (reason != 0) log::info("guest requested reset with reason {:#x}", reason);
  finish(kind == machine::SystemResetKind::Shutdown ? GuestExit::PowerOff : GuestExit::Reboot);
}

void GuestMachine::consoleWrite(const uint8_t* data, size_t length) { console_.write(data, length); }

size_t GuestMachine::consoleRead(uint8_t*, size_t) {
  return 0;  // console input is routed to the UART, the guest's console device
}

void GuestMachine::finish(GuestExit exit) {
  std::lock_guard lock(mutex_);
  if (!exit_) exit_ = exit;
  stopping_ = true;
  for (auto& hart : harts_) hart->requestStop();
  loop_->stop();
  changed_.notify_all();
}

void GuestMachine::vcpuThread(unsigned id) {
  cpu::Hart& hart = *harts_[id];
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_.load() || slots_[id].state == machine::HartRunState::StartPending; });
      if (stopping_) return;
      hart.resetToSupervisorBoot(slots_[id].startAddress, slots_[id].opaque);
      slots_[id].state = machine::HartRunState::Started;
    }
    cpu::ExitReason reason = hart.run();
    std::lock_guard lock(mutex_);
    if (reason == cpu::ExitReason::StopRequested && stopping_) return;
    slots_[id].state = machine::HartRunState::Stopped;
  }
}

GuestExit GuestMachine::run() {
  auto attached = console_.attach(
      *loop_, [this](const uint8_t* data, size_t length) { uart_->pushInput(data, length); },
      [this] { finish(GuestExit::Quit); });
  if (!attached) {
    log::error("{}", attached.error().message);
    return GuestExit::Failure;
  }
  std::vector<std::thread> vcpus;
  for (unsigned id = 0; id < harts_.size(); ++id) vcpus.emplace_back([this, id] { vcpuThread(id); });
  loop_->run();
  for (auto& thread : vcpus) thread.join();
  console_.detach(*loop_);
  std::lock_guard lock(mutex_);
  return exit_.value_or(GuestExit::Failure);
}

}  // namespace strata::vmm
