#include "vmm/guest_machine.h"

#include <malloc.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>

#include <optional>

#include <random>

#include <fmt/core.h>

#include "base/log.h"
#include "machine/boot_loader.h"
#include "machine/clint.h"
#include "machine/device_tree.h"
#include "machine/goldfish_rtc.h"
#include "machine/plic.h"
#include "machine/pvpanic.h"
#include "machine/sifive_test.h"
#include "machine/uart16550.h"
#include "machine/vm_generation_id.h"
#include "machine/virt_layout.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/mmio_transport.h"
#include "network/self_announce.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "vmm/balloon_autopilot.h"
#include "vmm/compressed_memory.h"
#include "vmm/live_disk.h"
#include "vmm/sandbox.h"
#include "vmm/snapshot_config.h"

namespace strata::vmm {
namespace {

uint64_t monotonicNs() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

std::vector<uint8_t> randomSeed() {
  std::random_device source;
  std::vector<uint8_t> seed(64);
  for (auto& byte : seed) byte = static_cast<uint8_t>(source());
  return seed;
}

}  // namespace

Result<std::unique_ptr<GuestMachine>> GuestMachine::create(
    const VmConfig& config, VmControl& control, HostConsole& console, EventLoop& loop,
    const std::vector<std::unique_ptr<storage::BlockDevice>>& disks, const std::vector<NetInterface>& nics,
    const std::string& restoreDir, std::unique_ptr<WarmBoard> warm) {
  std::unique_ptr<GuestMachine> machine(new GuestMachine(config, control, console, loop, nics));
  if (warm && warm->restoreDir() != restoreDir)
    return Error{fmt::format("{}: the warm board is {}'s", restoreDir, warm->restoreDir())};
  if (!restoreDir.empty()) {
    // The state file is checked whole before anything is built from it (a warm board's was, by the clone server).
    std::optional<StateReader> read;
    const bool stateGiven = config.restoreState && config.restoreDir == restoreDir;
    if (!warm && !stateGiven) {
      auto file = StateReader::readFile(restoreDir + "/state");
      if (!file) return Error{fmt::format("{}/state: {}", restoreDir, file.error().message)};
      read.emplace(std::move(*file));
    }
    // The warm board and the config outlive this: the machine keeps both.
    StateReader* state = warm ? &warm->state() : stateGiven ? config.restoreState.get() : &*read;
    // RAM is mapped from the snapshot's memory file before loadState checks the rest.
    auto memoryFile = machine->checkMemorySize(*state);
    if (!memoryFile) return Error{fmt::format("{}/state: {}", restoreDir, memoryFile.error().message)};
    const bool hartsLoaded = warm != nullptr;
    if (auto built = machine->buildBoard(disks, restoreDir + "/" + *memoryFile, std::move(warm)); !built)
      return built.error();
    if (auto loaded = machine->loadState(*state, false, hartsLoaded); !loaded)
      return Error{fmt::format("{}/state: {}", restoreDir, loaded.error().message)};
    // The guest resumes as a copy of a moment that may run again: a new generation.
    machine->generationId_->regenerate();
    return machine;
  }
  if (auto built = machine->buildBoard(disks, {}); !built) return built.error();
  auto loaded = config.bareProgram.empty() ? machine->loadBootPayload() : machine->loadBareProgram();
  if (!loaded) return loaded.error();
  return machine;
}

Result<std::unique_ptr<GuestMachine>> GuestMachine::createForIncoming(
    const VmConfig& config, VmControl& control, HostConsole& console, EventLoop& loop,
    const std::vector<std::unique_ptr<storage::BlockDevice>>& disks, const std::vector<NetInterface>& nics) {
  std::unique_ptr<GuestMachine> machine(new GuestMachine(config, control, console, loop, nics));
  if (auto built = machine->buildBoard(disks, {}); !built) return built.error();
  return machine;
}

GuestMachine::GuestMachine(const VmConfig& config, VmControl& control, HostConsole& console, EventLoop& loop,
                           const std::vector<NetInterface>& nics)
    : config_(config),
      control_(control),
      console_(console),
      clockStartNs_(control.guestNs()),
      loop_(&loop),
      nics_(nics) {}

GuestMachine::~GuestMachine() {
  if (balloon_) control_.balloon().detach();  // before the device goes with this boot
  if (toHostTimer_.valid()) loop_->unwatch(toHostTimer_.get());  // the loop outlives this boot
}

Result<void> GuestMachine::buildBoard(const std::vector<std::unique_ptr<storage::BlockDevice>>& disks,
                                      const std::string& memoryFile, std::unique_ptr<WarmBoard> warm) {
  if (config_.cpus < 1 || config_.cpus > machine::virt::kMaxHarts)
    return Error{fmt::format("--cpus {}: must be between 1 and {}", config_.cpus, machine::virt::kMaxHarts)};
  if (warm) {
    warm->adoptedBy(*this);
    ram_ = std::move(warm->ram);
    bus_ = std::move(warm->bus);
    harts_ = std::move(warm->harts);
    warm_ = std::move(warm);
  } else {
    const auto backing = config_.memMerge ? machine::RamBacking::MergeableAnonymous : machine::RamBacking::SharedMemfd;
    auto ram = memoryFile.empty() ? machine::GuestRam::create(machine::virt::kRamBase, config_.memoryBytes, backing)
               : memoryFile.ends_with(kCompressedMemoryFile)
                   ? loadCompressedMemory(machine::virt::kRamBase, config_.memoryBytes, backing, memoryFile)
                   : machine::GuestRam::mapFile(machine::virt::kRamBase, config_.memoryBytes, memoryFile);
    if (!ram) return ram.error();
    ram_ = std::move(*ram);
    cpu::PhysicalMemory memory{ram_->base(), ram_->size(), ram_->hostBase(), bus_.get(), &ram_->dirtyLog()};
    for (unsigned id = 0; id < config_.cpus; ++id)
      harts_.push_back(std::make_unique<cpu::Hart>(id, memory, *this, config_.engine));
  }
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
  sifiveTest_ = std::make_unique<machine::SifiveTest>([this](machine::SifiveTest::Request request, uint16_t code) {
    using Request = machine::SifiveTest::Request;
    if (request == Request::PowerOff) finish(GuestExit::PowerOff);
    else if (request == Request::Reset) finish(GuestExit::Reboot);
    else finish(GuestExit::Failed, code == 0 ? 1 : code);
  });

  generationId_ = std::make_unique<machine::VmGenerationId>();

  using namespace machine::virt;
  for (auto [base, size, device] : {std::tuple<uint64_t, uint64_t, machine::MmioDevice*>{kPlicBase, kPlicSize, plic_.get()},
                                    {kUartBase, kUartSize, uart_.get()},
                                    {kRtcBase, kRtcSize, rtc_.get()},
                                    {kClintBase, kClintSize, clint_.get()},
                                    {kPvPanicBase, kPvPanicSize, pvpanic_.get()},
                                    {kTestBase, kTestSize, sifiveTest_.get()},
                                    {kVmGenIdBase, kVmGenIdSize, generationId_.get()}}) {
    if (auto mapped = bus_->map(base, size, device); !mapped) return mapped.error();
  }
  return addVirtioDevices(disks);
}

// Slots in order: disks (vda, vdb, ...), network interfaces, console, rng, balloon (with --balloon).
Result<void> GuestMachine::addVirtioDevices(const std::vector<std::unique_ptr<storage::BlockDevice>>& disks) {
  for (const auto& disk : disks) {
    disks_.push_back(disk.get());
    diskBytes_.push_back(disk->sizeBytes());
    auto device = std::make_unique<virtio::VirtioBlk>(*disk);
    blockDevices_.push_back(device.get());
    auto added = addVirtioDevice(fmt::format("virtio-blk{}", blockDevices_.size() - 1), std::move(device));
    if (!added) return added;
  }
  for (const auto& nic : nics_) {
    auto added = addVirtioDevice(fmt::format("virtio-net{}", &nic - nics_.data()),
                                 std::make_unique<virtio::VirtioNet>(*nic.port, nic.mac));
    if (!added) return added;
  }
  auto console = std::make_unique<virtio::VirtioConsole>(
      [this](std::span<const uint8_t> bytes) { console_.write(bytes.data(), bytes.size()); });
  virtioConsole_ = console.get();
  if (auto added = addVirtioDevice("virtio-console", std::move(console)); !added) return added;
  if (auto added = addVirtioDevice("virtio-rng", std::make_unique<virtio::VirtioRng>()); !added) return added;
  if (!control_.balloon().present()) return {};
  // The latest target (set through the API before a reboot) carries over.
  virtio::VirtioBalloon::Options options{.targetBytes = control_.balloon().targetBytes()};
  if (config_.balloonAuto) options.statsInterval = kBalloonAutoInterval;  // fresh figures for each decision
  auto balloon = std::make_unique<virtio::VirtioBalloon>(*ram_, options);
  auto* device = balloon.get();
  if (auto added = addVirtioDevice("virtio-balloon", std::move(balloon)); !added) return added;
  balloon_ = device;
  control_.balloon().attach(balloon_);
  return {};
}

Result<void> GuestMachine::addVirtioDevice(const std::string& name, std::unique_ptr<virtio::VirtioDevice> device) {
  unsigned slot = static_cast<unsigned>(virtio_.size());
  if (slot >= machine::virt::kVirtioSlots)
    return Error{fmt::format("too many virtio devices: the board has {} slots", machine::virt::kVirtioSlots)};
  auto transport = std::make_unique<virtio::VirtioMmioTransport>(
      name, *ram_, plic_->line(machine::virt::kVirtioIrqFirst + slot), *loop_, *device);
  if (auto mapped = bus_->map(machine::virt::virtioSlotBase(slot), machine::virt::kVirtioStride, transport.get()); !mapped)
    return mapped.error();
  virtioDevices_.push_back(std::move(device));
  virtio_.push_back(std::move(transport));
  virtioSlots_.push_back(slot);
  return {};
}

namespace {
constexpr uint32_t kMachineStateVersion = 1;

Error snapshotMismatch(std::string_view what, const auto& saved, const auto& now) {
  return Error{fmt::format("snapshot mismatch: {} is {} in the snapshot but {} here", what, saved, now)};
}

// What a snapshot's disk overlays are named after: DIR's last component.
std::string snapshotName(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string name = dir.substr(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/') + 1);
  return name.empty() || name == "." || name == ".." || name == "/" ? "snapshot" : name;
}

}  // namespace

Result<std::string> GuestMachine::checkMemorySize(StateReader& in) const {
  auto board = loadBoard(in);
  if (!board) return board.error();
  if (board->config.memoryBytes != config_.memoryBytes)
    return snapshotMismatch("memory size", board->config.memoryBytes, config_.memoryBytes);
  return board->memoryFile;
}

void GuestMachine::saveState(StateWriter& out, const std::string& memoryFile,
                             std::optional<std::vector<DiskConfig>> recordedDisks) const {
  std::vector<std::string> virtioNames;
  for (const auto& transport : virtio_) virtioNames.push_back(transport->name());
  std::vector<DiskConfig> disks;
  if (recordedDisks) {
    disks = std::move(*recordedDisks);
  } else {
    for (const LiveDisk* disk : control_.disks()) disks.push_back(disk->current());
  }
  saveBoard(out, config_, disks, virtioNames, diskBytes_, memoryFile);
  out.beginSection("machine", kMachineStateVersion);
  out.put(control_.guestNs() - clockStartNs_);
  for (const HartSlot& slot : slots_) {
    out.put(slot.state);
    out.put(slot.startAddress);
    out.put(slot.opaque);
    out.put(slot.machineMode);
  }
  out.endSection();
  for (const auto& hart : harts_) hart->save(out);
  plic_->save(out);
  uart_->save(out);
  rtc_->save(out);
  clint_->save(out);
  generationId_->save(out);
  for (const auto& transport : virtio_) transport->save(out);
}

// The board this machine was built from must be the snapshot's (a restore
// builds it from the snapshot; an incoming migration from its own options).
Result<void> GuestMachine::loadState(StateReader& in, bool disksMirrored, bool hartsLoaded) {
  auto board = loadBoard(in);
  if (!board) return board.error();
  const VmConfig& saved = board->config;
  if (saved.memoryBytes != config_.memoryBytes) return snapshotMismatch("memory size", saved.memoryBytes, config_.memoryBytes);
  if (saved.cpus != config_.cpus) return snapshotMismatch("--cpus", saved.cpus, config_.cpus);
  if (saved.engine.kind != config_.engine.kind)
    return snapshotMismatch("the CPU engine", cpu::engineName(saved.engine.kind), cpu::engineName(config_.engine.kind));
  if (board->virtioNames.size() != virtio_.size())
    return snapshotMismatch("the number of virtio devices", board->virtioNames.size(), virtio_.size());
  for (size_t slot = 0; slot < virtio_.size(); ++slot)
    if (board->virtioNames[slot] != virtio_[slot]->name())
      return snapshotMismatch("a virtio slot's device", board->virtioNames[slot], virtio_[slot]->name());
  if (saved.disks.size() != config_.disks.size())
    return snapshotMismatch("the number of disks", saved.disks.size(), config_.disks.size());
  for (size_t index = 0; index < config_.disks.size(); ++index) {
    const auto& path = saved.disks[index].path;
    if (!disksMirrored && path != config_.disks[index].path) return snapshotMismatch(fmt::format("disk {}", index), path, config_.disks[index].path);
    if (board->diskBytes[index] != diskBytes_[index])
      return snapshotMismatch(fmt::format("disk {}'s size", path), board->diskBytes[index], diskBytes_[index]);
    if (saved.disks[index].readOnly != config_.disks[index].readOnly)
      return snapshotMismatch(fmt::format("disk {} read-only", path), saved.disks[index].readOnly, config_.disks[index].readOnly);
  }

  if (auto entered = in.enterSection("machine", kMachineStateVersion); !entered) return entered.error();
  uint64_t guestTicksNs = in.get<uint64_t>();
  // Guest time goes on from the saved value (unsigned arithmetic wraps back in timeNow).
  clockStartNs_ = control_.guestNs() - guestTicksNs;
  for (HartSlot& slot : slots_) {
    slot.state = in.get<machine::HartRunState>();
    slot.startAddress = in.get<uint64_t>();
    slot.opaque = in.get<uint64_t>();
    slot.machineMode = in.get<bool>();
    if (slot.state != machine::HartRunState::Stopped && slot.state != machine::HartRunState::Started &&
        slot.state != machine::HartRunState::StartPending)
      in.fail("a hart slot has an unknown run state");
    // A hart that was running goes on from its saved registers.
    if (slot.state == machine::HartRunState::Started) {
      slot.state = machine::HartRunState::StartPending;
      slot.resumeInPlace = true;
    }
  }
  if (auto left = in.leaveSection(); !left) return left.error();
  if (!hartsLoaded)
    for (auto& hart : harts_)
      if (auto loaded = hart->load(in); !loaded) return loaded.error();
  for (auto loaded : {plic_->load(in), uart_->load(in), rtc_->load(in), clint_->load(in), generationId_->load(in)})
    if (!loaded) return loaded.error();
  for (auto& transport : virtio_)
    if (auto loaded = transport->load(in); !loaded) return loaded.error();
  return {};
}

Result<void> GuestMachine::saveSnapshot(const std::string& dir, bool compress) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return errnoError(dir);
  for (LiveDisk* disk : control_.disks())
    if (auto flushed = disk->flushNow(); !flushed) return flushed;
  std::vector<DiskConfig> kept;  // what the snapshot records: the images under the new overlays, the thin snapshots
  for (LiveDisk* disk : control_.disks()) {
    auto recorded = disk->keepForSnapshot(snapshotName(dir));
    if (!recorded) return recorded.error();
    kept.push_back(*recorded);
  }
  StateWriter out;
  const std::string memoryFile = compress ? kCompressedMemoryFile : kMemoryFile;
  saveState(out, memoryFile, kept);
  saveWarmSets(out, harts_);  // for a clone server's restores (warm_board.h)
  // Memory first: a state file only ever sits beside the memory it describes.
  const std::string memory = dir + "/" + memoryFile;
  if (auto saved = compress ? saveCompressedMemory(*ram_, memory + ".tmp") : ram_->saveTo(memory + ".tmp"); !saved)
    return saved;
  if (::rename((memory + ".tmp").c_str(), memory.c_str()) != 0) return errnoError(memory);
  return out.writeFile(dir + "/state");
}

Result<void> GuestMachine::announceSelf() {
  if (nics_.empty()) return {};
  auto timer = LoopTimer::create(*loop_, [this] {
    for (const NetInterface& nic : nics_) nic.port->send(network::selfAnnounceFrame(nic.mac), {});
    // QEMU's rhythm: 5 rounds, 50 ms apart and 100 ms more each time.
    if (++announceRounds_ < 5) (void)announceTimer_->arm(std::chrono::milliseconds(50 + 100 * (announceRounds_ - 1)));
  });
  if (!timer) return timer.error();
  announceTimer_ = std::move(*timer);
  return announceTimer_->arm(std::chrono::milliseconds(1));
}

void GuestMachine::flushHartTlbs() {
  for (auto& hart : harts_) hart->requestRemoteFence(cpu::RemoteFence::Tlb);
  for (auto& hart : harts_) hart->waitForRemoteFences();
}

Result<std::vector<uint8_t>> GuestMachine::saveStateBytes() {
  if (stopping_) return Error{"the guest's boot ended (reboot or poweroff) during the migration"};
  StateWriter out;
  saveState(out);
  return out.finish();
}

Result<void> GuestMachine::loadBootPayload() {
  std::optional<machine::LoadedImage> firmware;
  if (!config_.firmware.empty()) {
    auto loaded = machine::loadFirmware(config_.firmware, *ram_);
    if (!loaded) return loaded.error();
    firmware = *loaded;
  }
  auto kernel = machine::loadKernel(config_.kernel, *ram_);
  if (!kernel) return kernel.error();
  if (firmware && firmware->end > kernel->start)
    return Error{fmt::format("{}: firmware overlaps the kernel at {:#x}", config_.firmware, kernel->start)};

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

  if (!firmware) {
    slots_[0] = {machine::HartRunState::StartPending, kernel->entry, fdtAddress, false};
    return {};
  }
  // Firmware starts every hart in M-mode, a0 = hart id, a1 = device tree, and
  // brings the kernel up itself (fw_jump: at RAM base + 2 MiB, where it was loaded).
  for (auto& slot : slots_) slot = {machine::HartRunState::StartPending, firmware->entry, fdtAddress, true};
  return {};
}

Result<void> GuestMachine::loadBareProgram() {
  auto program = machine::loadElfAtLinkAddress(config_.bareProgram, *ram_);
  if (!program) return program.error();
  auto toHost = machine::findElfSymbol(config_.bareProgram, "tohost");
  if (!toHost) return toHost.error();
  if (!*toHost) return Error{config_.bareProgram + ": no `tohost` symbol (HTIF) to report the result through"};
  auto fromHost = machine::findElfSymbol(config_.bareProgram, "fromhost");
  if (!fromHost) return fromHost.error();
  for (auto& slot : slots_) slot = {machine::HartRunState::StartPending, program->entry, 0, true};
  return watchToHost(**toHost, *fromHost);
}

// A bare program ends by writing `tohost`: 1 passes, (n << 1) | 1 fails test n.
// Even values point at an HTIF command; only the console (device 1, putchar) is served.
Result<void> GuestMachine::watchToHost(uint64_t toHost, std::optional<uint64_t> fromHost) {
  toHost_ = reinterpret_cast<uint64_t*>(ram_->translate(toHost, 8));
  if (!toHost_ || toHost % 8 != 0) return Error{fmt::format("{}: tohost at {:#x} is not an aligned word in RAM", config_.bareProgram, toHost)};
  if (fromHost) fromHost_ = reinterpret_cast<uint64_t*>(ram_->translate(*fromHost, 8));
  toHostTimer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!toHostTimer_.valid()) return errnoError("timerfd_create");
  itimerspec period{{0, 200'000}, {0, 200'000}};
  ::timerfd_settime(toHostTimer_.get(), 0, &period, nullptr);
  return loop_->watch(toHostTimer_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations;
    [[maybe_unused]] auto got = ::read(toHostTimer_.get(), &expirations, sizeof expirations);
    pollToHost();
  });
}

void GuestMachine::pollToHost() {
  uint64_t value = __atomic_load_n(toHost_, __ATOMIC_ACQUIRE);
  if (value == 0) return;
  uint64_t device = value >> 56, command = (value >> 48) & 0xff, payload = value & ((uint64_t{1} << 48) - 1);
  if (device == 0 && command == 0 && (payload & 1)) {  // exit: 1 passes, (n << 1) | 1 fails test n
    uint64_t test = payload >> 1;
    if (test != 0) log::error("{}: test {} failed", config_.bareProgram, test);
    finish(test == 0 ? GuestExit::PowerOff : GuestExit::Failed, test == 0 ? 0 : static_cast<int>(std::min<uint64_t>(test, 255)));
    return;
  }
  if (device == 1 && command == 1) {  // console putchar
    uint8_t byte = static_cast<uint8_t>(payload);
    console_.write(&byte, 1);
  } else {
    log::warnRateLimited("{}: unsupported HTIF command {:#x} ignored", config_.bareProgram, value);
  }
  __atomic_store_n(toHost_, 0, __ATOMIC_RELEASE);
  if (fromHost_) __atomic_store_n(fromHost_, (device << 56) | (command << 48) | 1, __ATOMIC_RELEASE);
}

// The VM's clock, not the host's: it stands still while the VM is paused, so
// the guest sees no jump and no burst of timers when it resumes.
uint64_t GuestMachine::timeNow() { return (control_.guestNs() - clockStartNs_) / (1'000'000'000ull / cpu::kTimebaseHz); }

void GuestMachine::flushDeferredOutput() { uart_->flushOutput(); }

bool GuestMachine::supervisorEcall(cpu::Hart& hart) {
  // With firmware (or a bare program) in M-mode, ecalls trap to it as on hardware.
  if (!config_.firmware.empty() || !config_.bareProgram.empty()) return false;
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
  slots_[id] = {machine::HartRunState::StartPending, startAddress, opaque, false};
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

void GuestMachine::finish(GuestExit exit, int status) {
  if (uart_) uart_->flushOutput();  // the guest's last words before the VMM's
  std::lock_guard lock(mutex_);
  if (!outcome_) outcome_ = GuestOutcome{exit, status};
  stopping_ = true;
  for (auto& hart : harts_) hart->requestStop();
  loop_->stop();
  changed_.notify_all();
}

void GuestMachine::vcpuThread(unsigned id) {
  if (auto entered = enterThreadRole(ThreadRole::Vcpu, config_); !entered) {
    log::error("sandbox: {}", entered.error().message);
    finish(GuestExit::Failure);
    return;
  }
  cpu::Hart& hart = *harts_[id];
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_.load() || (slots_[id].state == machine::HartRunState::StartPending && !pauseRequested_);
      });
      if (stopping_) return;
      HartSlot& slot = slots_[id];
      if (slot.resumeInPlace) {
        slot.resumeInPlace = false;  // its registers came from the snapshot
        if (restoredRunningNs_ == 0) restoredRunningNs_ = monotonicNs();
      } else if (slot.machineMode) {
        hart.resetToMachineMode(slot.startAddress);
        hart.setXreg(10, id);
        hart.setXreg(11, slot.opaque);
      } else {
        hart.resetToSupervisorBoot(slot.startAddress, slot.opaque);
      }
      slots_[id].state = machine::HartRunState::Started;
    }
    for (;;) {
      cpu::ExitReason reason = hart.run();
      flushDeferredOutput();  // before a pause, snapshot or stop
      const bool debuggerHeard = reason == cpu::ExitReason::DebugStop && control_.debugStopped(id);
      std::unique_lock lock(mutex_);
      if (reason == cpu::ExitReason::StopRequested || debuggerHeard) {
        // At a debug point the debugger pauses the VM in answer: this hart parks in that pause.
        if (debuggerHeard) changed_.wait(lock, [&] { return stopping_.load() || pauseRequested_; });
        if (!serviceStopRequest(id, lock)) return;
        continue;  // on from the instruction it stopped before
      }
      if (reason == cpu::ExitReason::DebugStop) {  // no debugger any more: its points go, the hart runs on
        hart.setDebugPoints({});
        continue;
      }
      slots_[id].state = machine::HartRunState::Stopped;
      break;
    }
  }
}

bool GuestMachine::serviceStopRequest(unsigned id, std::unique_lock<std::mutex>& lock) {
  if (stopping_) return false;
  HartSlot& slot = slots_[id];
  if (slot.sampleRound != sampleRound_) {
    slot.sample = sampleHart(id);
    slot.sampleRound = sampleRound_;
    changed_.notify_all();
  }
  if (!pauseRequested_) return true;
  slot.parked = true;
  changed_.notify_all();
  loop_->post([] {});  // wakes the loop to see whether the pause is complete
  for (;;) {
    changed_.wait(lock, [&] { return stopping_.load() || !pauseRequested_ || slot.stepRequested; });
    if (stopping_ || !slot.stepRequested) break;
    lock.unlock();
    harts_[id]->debugStep();
    lock.lock();
    slot.stepRequested = false;
    changed_.notify_all();
  }
  slot.parked = false;
  return !stopping_;
}

bool GuestMachine::runsGuestCode(unsigned id) const {
  return slots_[id].state == machine::HartRunState::Started && !slots_[id].parked;
}

HartStats GuestMachine::sampleHart(unsigned id) const {
  return HartStats{id, harts_[id]->instructionsRetired(), harts_[id]->engineStats()};
}

void GuestMachine::beginPause() {
  std::lock_guard lock(mutex_);
  if (stopping_ || pauseRequested_) return;
  pauseRequested_ = true;
  paused_ = false;
  changed_.notify_all();  // a hart at a debug point waits for this pause
  for (auto& hart : harts_) hart->requestStop();
  loop_->post([] {});  // vCPUs that never started are parked already
}

void GuestMachine::waitPaused() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return stopping_.load() || paused_; });
}

void GuestMachine::resume() {
  std::lock_guard lock(mutex_);
  pauseRequested_ = false;
  paused_ = false;
  changed_.notify_all();
  loop_->post([] {});  // releases the device queues
}

std::vector<cpu::Hart*> GuestMachine::harts() {
  std::vector<cpu::Hart*> harts;
  for (auto& hart : harts_) harts.push_back(hart.get());
  return harts;
}

bool GuestMachine::stepHart(unsigned id) {
  std::unique_lock lock(mutex_);
  if (id >= slots_.size() || !slots_[id].parked) return false;
  slots_[id].stepRequested = true;
  changed_.notify_all();
  changed_.wait(lock, [&] { return stopping_.load() || !slots_[id].stepRequested; });
  return !stopping_;
}

// Each hart running guest code answers at its next instruction boundary; the
// others are sampled here, their threads parked or waiting to be started.
VmStats GuestMachine::sampleStats() {
  std::unique_lock lock(mutex_);
  uint64_t round = ++sampleRound_;
  for (unsigned id = 0; id < harts_.size(); ++id)
    if (runsGuestCode(id)) harts_[id]->requestStop();
  auto answered = [&](unsigned id) { return slots_[id].sampleRound == round || !runsGuestCode(id); };
  changed_.wait(lock, [&] {
    if (stopping_) return true;
    for (unsigned id = 0; id < harts_.size(); ++id)
      if (!answered(id)) return false;
    return true;
  });
  VmStats stats;
  if (stopping_) return stats;
  for (unsigned id = 0; id < harts_.size(); ++id)
    stats.harts.push_back(slots_[id].sampleRound == round ? slots_[id].sample : sampleHart(id));
  return stats;
}

uint64_t GuestMachine::diskRequestsInFlight() const {
  uint64_t requests = 0;
  for (auto* device : blockDevices_) requests += device->requestsInFlight();
  return requests;
}

void GuestMachine::updatePause() {
  std::lock_guard lock(mutex_);
  if (!pauseRequested_) {
    if (queuesHeld_)
      for (auto& transport : virtio_) transport->holdQueues(false);
    queuesHeld_ = false;
    return;
  }
  if (paused_) return;
  for (unsigned id = 0; id < harts_.size(); ++id)
    if (runsGuestCode(id)) return;
  if (!queuesHeld_)
    for (auto& transport : virtio_) transport->holdQueues(true);
  queuesHeld_ = true;
  if (diskRequestsInFlight() != 0) return;  // each completion wakes the loop again
  paused_ = true;
  changed_.notify_all();
}

// Requests the guest left in flight complete into this board's devices and
// RAM, but the disks outlive the board: wait for them before it goes.
void GuestMachine::waitForDiskRequests() {
  loop_->runOnce(0);  // work the vCPUs posted after the loop stopped
  while (diskRequestsInFlight() > 0) loop_->runOnce(-1);
}

GuestOutcome GuestMachine::run() {
  auto attached = console_.attach(
      *loop_, [this](const uint8_t* data, size_t length) { uart_->pushInput(data, length); },
      [this] { finish(GuestExit::Quit); });
  if (!attached) {
    log::error("{}", attached.error().message);
    return {};
  }
  // Everything the VM opens is open now; a reboot's new board finds the sandbox already up.
  if (auto entered = enterThreadRole(ThreadRole::IoLoop, config_); !entered) {
    log::error("sandbox: {}", entered.error().message);
    console_.detach(*loop_);
    return {};
  }
  const uint64_t sandboxedNs = monotonicNs();
  std::vector<std::thread> vcpus;
  for (unsigned id = 0; id < harts_.size(); ++id) vcpus.emplace_back([this, id] { vcpuThread(id); });
  const uint64_t threadsStartedNs = monotonicNs();
  // What building the board and the sandbox freed (the seccomp filters' compilation, the state file) goes
  // back to the host rather than staying resident in the heap: in a clone, each such page is a private copy.
  ::malloc_trim(0);
  // Not loop_->run(): the loop outlives this boot, and its stop() would end the next one too.
  while (!stopping_) {
    loop_->runOnce(-1);
    updatePause();
  }
  for (auto& thread : vcpus) thread.join();
  console_.detach(*loop_);
  waitForDiskRequests();
  if (config_.printEngineStats) {  // `strata run --stats`
    // Against the launch time a caller took on the same clock (bench/restore_bench.py).
    if (restoredRunningNs_ != 0)
      for (auto [what, ns] : {std::pair{"I/O loop sandboxed", sandboxedNs}, std::pair{"vCPU threads started", threadsStartedNs},
                              std::pair{"vCPUs running", restoredRunningNs_}})
        std::fprintf(stderr, "restore: %s at CLOCK_MONOTONIC %llu ns\n", what, static_cast<unsigned long long>(ns));
    for (const auto& hart : harts_) {
      std::string line = fmt::format("hart {}: engine {} instret {}", hart->id(), cpu::engineName(config_.engine.kind),
                                     hart->instructionsRetired());
      for (const auto& stat : hart->engineStats()) line += fmt::format(" {} {}", stat.name, stat.value);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
  std::lock_guard lock(mutex_);
  return outcome_.value_or(GuestOutcome{});
}

}  // namespace strata::vmm
