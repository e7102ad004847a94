#include "vmm/snapshot_config.h"

#include <fmt/core.h>

#include "network/ethernet.h"

namespace strata::vmm {
namespace {

// 1: memory, cpus, engine, command line, devices, disks only; 2: the whole board; 3: the memory file's name
constexpr uint32_t kBoardVersion = 3;
constexpr uint32_t kWholeBoardVersion = 2;
constexpr size_t kMaxPath = 4096;
constexpr uint32_t kMaxEntries = 64;

void putStrings(StateWriter& out, const std::vector<std::string>& texts) {
  out.put(static_cast<uint32_t>(texts.size()));
  for (const auto& text : texts) out.putString(text);
}

std::vector<std::string> getStrings(StateReader& in, size_t maxLength) {
  std::vector<std::string> texts(std::min(in.get<uint32_t>(), kMaxEntries + 1));
  if (texts.size() > kMaxEntries) in.fail("too many entries in the vm section");
  for (auto& text : texts) text = in.getString(maxLength);
  return in.ok() ? texts : std::vector<std::string>{};
}

std::string describeDisks(const std::vector<DiskConfig>& disks) {
  std::string text;
  for (const auto& disk : disks) text += (text.empty() ? "" : " ") + disk.path + (disk.readOnly ? ",readonly" : "");
  return text.empty() ? "none" : text;
}

std::string describeNets(const VmConfig& config) {
  std::string text;
  for (const auto& tap : config.tapDevices) text += (text.empty() ? "" : " ") + ("tap=" + tap);
  for (const auto& net : config.switchNets) text += (text.empty() ? "" : " ") + ("switch=" + net.switchName);
  return text.empty() ? "none" : text;
}

bool sameNets(const VmConfig& a, const VmConfig& b) {
  if (a.tapDevices != b.tapDevices || a.switchNets.size() != b.switchNets.size()) return false;
  for (size_t index = 0; index < a.switchNets.size(); ++index) {
    const auto &left = a.switchNets[index], &right = b.switchNets[index];
    if (left.switchName != right.switchName || left.vlans.describe() != right.vlans.describe()) return false;
    if (left.mac && right.mac && *left.mac != *right.mac) return false;
  }
  return true;
}

}  // namespace

void saveBoard(StateWriter& out, const VmConfig& config, std::span<const DiskConfig> disks,
               std::span<const std::string> virtioNames, std::span<const uint64_t> diskBytes,
               const std::string& memoryFile) {
  out.beginSection("vm", kBoardVersion);
  out.put(config.memoryBytes);
  out.put(config.cpus);
  out.put(config.engine.kind);
  out.put(config.engine.translateThreshold);
  out.putString(config.commandLine);
  out.put(static_cast<uint32_t>(virtioNames.size()));
  for (const auto& name : virtioNames) out.putString(name);
  out.put(static_cast<uint32_t>(disks.size()));
  for (size_t index = 0; index < disks.size(); ++index) {
    out.putString(disks[index].path);
    out.put(diskBytes[index]);
    out.put(disks[index].readOnly);
    out.put(disks[index].format);
  }
  for (const std::string* path : {&config.firmware, &config.bareProgram, &config.kernel, &config.initrd})
    out.putString(*path);
  putStrings(out, config.tapDevices);
  out.put(static_cast<uint32_t>(config.switchNets.size()));
  for (const auto& net : config.switchNets) {
    out.putString(net.switchName);
    out.putString(net.vlans.describe());
    out.put(net.mac.has_value());
    out.putArray(std::span<const uint8_t>(net.mac.value_or(network::MacAddress{})));
  }
  out.put(config.balloonTargetBytes.has_value());
  out.put(config.balloonTargetBytes.value_or(0));
  out.put(config.memMerge);
  out.putString(memoryFile);
  out.endSection();
}

Result<RecordedBoard> loadBoard(StateReader& in) {
  auto version = in.enterSection("vm", kBoardVersion);
  if (!version) return version.error();
  if (*version < kWholeBoardVersion) return Error{fmt::format("the vm section is version {}, from before snapshots recorded the whole board; take it again", *version)};
  RecordedBoard board;
  VmConfig& config = board.config;
  config.memoryBytes = in.get<uint64_t>();
  config.cpus = in.get<unsigned>();
  config.engine.kind = in.get<cpu::EngineKind>();
  config.engine.translateThreshold = in.get<uint32_t>();
  config.commandLine = in.getString(1 << 16);
  uint32_t devices = in.get<uint32_t>();
  if (devices > kMaxEntries) in.fail("too many virtio devices");
  for (uint32_t index = 0; index < devices && in.ok(); ++index) board.virtioNames.push_back(in.getString(256));
  uint32_t disks = in.get<uint32_t>();
  if (disks > kMaxEntries) in.fail("too many disks");
  for (uint32_t index = 0; index < disks && in.ok(); ++index) {
    DiskConfig disk;
    disk.path = in.getString(kMaxPath);
    board.diskBytes.push_back(in.get<uint64_t>());
    disk.readOnly = in.get<bool>();
    disk.format = in.get<storage::ImageFormat>();
    config.disks.push_back(disk);
  }
  for (std::string* path : {&config.firmware, &config.bareProgram, &config.kernel, &config.initrd})
    *path = in.getString(kMaxPath);
  config.tapDevices = getStrings(in, 256);
  uint32_t nets = in.get<uint32_t>();
  if (nets > kMaxEntries) in.fail("too many switch NICs");
  for (uint32_t index = 0; index < nets && in.ok(); ++index) {
    SwitchNetConfig net;
    net.switchName = in.getString(256);
    auto vlans = network::PortVlans::parse(in.getString(1 << 14));
    if (!vlans) in.fail("a switch NIC's VLANs: " + vlans.error().message);
    else net.vlans = *vlans;
    bool hasMac = in.get<bool>();
    network::MacAddress mac{};
    in.getArrayInto(std::span<uint8_t>(mac));
    if (hasMac) net.mac = mac;
    config.switchNets.push_back(net);
  }
  bool balloon = in.get<bool>();
  uint64_t balloonTarget = in.get<uint64_t>();
  if (balloon) config.balloonTargetBytes = balloonTarget;
  config.memMerge = in.get<bool>();
  if (*version >= 3) board.memoryFile = in.getString(64);
  if (board.memoryFile != kMemoryFile && board.memoryFile != kCompressedMemoryFile)
    in.fail("the memory file is neither " + std::string(kMemoryFile) + " nor " + kCompressedMemoryFile);
  if (auto left = in.leaveSection(); !left) return left.error();
  return board;
}

Result<RecordedBoard> readSnapshotBoard(const std::string& dir) {
  auto state = StateReader::readFile(dir + "/state");
  if (!state) return Error{fmt::format("{}/state: {}", dir, state.error().message)};
  auto board = loadBoard(*state);
  if (!board) return Error{fmt::format("{}/state: {}", dir, board.error().message)};
  board->state = std::make_shared<StateReader>(std::move(*state));
  return board;
}

Result<VmConfig> restoreConfig(const RecordedBoard& recorded, const VmConfig& commandLine,
                               const std::vector<std::string>& given) {
  const VmConfig& snapshot = recorded.config;
  auto conflict = [](std::string_view option, const auto& asked, const auto& saved) {
    return Error{fmt::format("--restore: {} {} conflicts with the snapshot's {} (the board comes from the "
                             "snapshot; leave the option out)", option, asked, saved)};
  };
  for (const auto& option : given) {
    if (option == "--mem" && commandLine.memoryBytes != snapshot.memoryBytes)
      return conflict(option, fmt::format("{}M", commandLine.memoryBytes >> 20), fmt::format("{}M", snapshot.memoryBytes >> 20));
    if (option == "--cpus" && commandLine.cpus != snapshot.cpus) return conflict(option, commandLine.cpus, snapshot.cpus);
    if (option == "--engine" && (commandLine.engine.kind != snapshot.engine.kind ||
                                 commandLine.engine.translateThreshold != snapshot.engine.translateThreshold))
      return conflict(option, cpu::engineName(commandLine.engine.kind), cpu::engineName(snapshot.engine.kind));
    if (option == "--append" && commandLine.commandLine != snapshot.commandLine)
      return conflict(option, commandLine.commandLine, snapshot.commandLine);
    for (auto [name, asked, saved] : {std::tuple{"--kernel", &commandLine.kernel, &snapshot.kernel},
                                      {"--initrd", &commandLine.initrd, &snapshot.initrd},
                                      {"--firmware", &commandLine.firmware, &snapshot.firmware},
                                      {"--bare", &commandLine.bareProgram, &snapshot.bareProgram}})
      if (option == name && *asked != *saved) return conflict(option, *asked, saved->empty() ? "none" : *saved);
    if (option == "--disk") {
      bool same = commandLine.disks.size() == snapshot.disks.size();
      for (size_t index = 0; same && index < snapshot.disks.size(); ++index)
        same = commandLine.disks[index].path == snapshot.disks[index].path &&
               commandLine.disks[index].readOnly == snapshot.disks[index].readOnly;
      if (!same) return conflict(option, describeDisks(commandLine.disks), describeDisks(snapshot.disks));
    }
    // The jailer hands the TAPs over already open (--net tapfd=N), one per recorded TAP.
    bool handedOver = !commandLine.tapFds.empty() && commandLine.tapDevices.empty() &&
                      commandLine.tapFds.size() == snapshot.tapDevices.size();
    VmConfig named = commandLine;
    if (handedOver) named.tapDevices = snapshot.tapDevices;
    if (option == "--net" && ((!handedOver && !commandLine.tapFds.empty()) || !sameNets(named, snapshot)))
      return conflict(option, describeNets(commandLine), describeNets(snapshot));
    if (option == "--balloon" && commandLine.balloonTargetBytes != snapshot.balloonTargetBytes)
      return conflict(option, commandLine.balloonTargetBytes.value_or(0), snapshot.balloonTargetBytes ? fmt::format("{}", *snapshot.balloonTargetBytes) : "none");
    if (option == "--mem-merge" && commandLine.memMerge != snapshot.memMerge) return conflict(option, "on", "off");
  }
  VmConfig config = commandLine;  // host side: console, sandbox, API socket, stats, restore directory
  for (auto field : {&VmConfig::firmware, &VmConfig::bareProgram, &VmConfig::kernel, &VmConfig::initrd, &VmConfig::commandLine})
    config.*field = snapshot.*field;
  config.disks = snapshot.disks;
  if (config.tapFds.empty()) config.tapDevices = snapshot.tapDevices;
  config.switchNets = snapshot.switchNets;
  config.memoryBytes = snapshot.memoryBytes;
  config.balloonTargetBytes = snapshot.balloonTargetBytes;
  config.memMerge = snapshot.memMerge;
  config.cpus = snapshot.cpus;
  config.engine.kind = snapshot.engine.kind;
  config.engine.translateThreshold = snapshot.engine.translateThreshold;
  config.restoreState = recorded.state;
  return config;
}

}  // namespace strata::vmm
