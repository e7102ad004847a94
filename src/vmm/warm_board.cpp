#include "vmm/warm_board.h"

#include <cstring>
#include <span>

#include <fmt/core.h>

#include "base/log.h"
#include "machine/virt_layout.h"
#include "vmm/snapshot_config.h"

namespace strata::vmm {
namespace {

constexpr const char* kWarmSetSection = "warm-set";
constexpr uint32_t kWarmSetVersion = 1;
// Cold blocks run once (most of them boot code) would only grow the server's
// arena: the warm set keeps those that ran at least twice.
constexpr uint32_t kMinColdRuns = 2;
constexpr size_t kMaxWarmKeys = 1u << 20;  // per hart: more blocks than a full block cache holds

}  // namespace

void saveWarmSets(StateWriter& out, const std::vector<std::unique_ptr<cpu::Hart>>& harts) {
  out.beginSection(kWarmSetSection, kWarmSetVersion);
  out.put(static_cast<uint32_t>(harts.size()));
  for (const auto& hart : harts) {
    // The translated blocks and the cold ones that ran more than once: a clone runs them without writing
    // to them (their run counts are kept beside them, their interpreter chains linked before the fork).
    out.putArray(std::span<const uint64_t>(hart->warmSet(kMinColdRuns)));
  }
  out.endSection();
}

Result<std::vector<std::vector<uint64_t>>> loadWarmSets(StateReader& in, size_t hartCount) {
  if (auto entered = in.enterSection(kWarmSetSection, kWarmSetVersion); !entered) return entered.error();
  if (in.get<uint32_t>() != hartCount) in.fail("the warm set's hart count is not the board's");
  std::vector<std::vector<uint64_t>> sets;
  for (size_t hart = 0; hart < hartCount && in.ok(); ++hart) {
    const std::vector<uint8_t> bytes = in.getBytes(kMaxWarmKeys * sizeof(uint64_t));
    if (bytes.size() % sizeof(uint64_t) != 0) in.fail("a warm set is not a list of 64-bit keys");
    auto& keys = sets.emplace_back(bytes.size() / sizeof(uint64_t));
    std::memcpy(keys.data(), bytes.data(), keys.size() * sizeof(uint64_t));
  }
  if (auto left = in.leaveSection(); !left) return left.error();
  return sets;
}

Result<std::unique_ptr<WarmBoard>> WarmBoard::create(const VmConfig& config) {
  const std::string& dir = config.restoreDir;
  std::unique_ptr<WarmBoard> warm(new WarmBoard);
  warm->state_ = config.restoreState;  // as the command line read and checked it
  if (!warm->state_) {
    auto read = StateReader::readFile(dir + "/state");
    if (!read) return Error{fmt::format("{}/state: {}", dir, read.error().message)};
    warm->state_ = std::make_shared<StateReader>(std::move(*read));
  }
  StateReader* state = warm->state_.get();
  auto board = loadBoard(*state);
  if (!board) return Error{fmt::format("{}/state: {}", dir, board.error().message)};
  // A compressed snapshot inflates into a memfd shared by every process that maps it: no copy-on-write.
  if (board->memoryFile != kMemoryFile)
    return Error{fmt::format("{}: clones are forked from an uncompressed snapshot (its memory file mapped "
                             "copy-on-write); this one is {}", dir, board->memoryFile)};
  if (board->config.memoryBytes != config.memoryBytes || board->config.cpus != config.cpus ||
      config.cpus < 1 || config.cpus > machine::virt::kMaxHarts)
    return Error{fmt::format("{}/state: the board is not the snapshot's", dir)};
  warm->restoreDir_ = dir;
  auto ram = machine::GuestRam::mapFile(machine::virt::kRamBase, config.memoryBytes, dir + "/" + board->memoryFile);
  if (!ram) return ram.error();
  warm->ram = std::move(*ram);
  warm->bus = std::make_unique<machine::Bus>();
  const cpu::PhysicalMemory memory{warm->ram->base(), warm->ram->size(), warm->ram->hostBase(), warm->bus.get(),
                                   &warm->ram->dirtyLog()};
  for (unsigned id = 0; id < config.cpus; ++id) {
    warm->harts.push_back(std::make_unique<cpu::Hart>(id, memory, *warm, config.engine));
    if (auto loaded = warm->harts.back()->load(*state); !loaded)
      return Error{fmt::format("{}/state: {}", dir, loaded.error().message)};
  }
  auto sets = loadWarmSets(*state, config.cpus);
  if (!sets) {
    log::warn("{}/state: no warm set ({}): each clone decodes and translates the guest's code itself", dir,
              sets.error().message);
    return warm;
  }
  for (unsigned id = 0; id < config.cpus; ++id) warm->warmedBlocks_ += warm->harts[id]->prewarm((*sets)[id]);
  return warm;
}

}  // namespace strata::vmm
