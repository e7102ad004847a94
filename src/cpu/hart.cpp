// Hart: the public face of one hart. Thin forwarding to HartCore (the pimpl
// State) and its Engine; the thread-safety contract of hart.h is
// implemented here with HartCore's attention flags.
#include "cpu/hart.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "cpu/hart_core.h"
#include "cpu/engine.h"

namespace strata::cpu {

struct Hart::State : HartCore {
  State(Hart& owner, unsigned hartId, PhysicalMemory memory, HartHost& host, const EngineConfig& config)
      : HartCore(owner, hartId, memory, host), engine(makeEngine(config)) {}
  std::unique_ptr<Engine> engine;
};

Hart::Hart(unsigned hartId, PhysicalMemory memory, HartHost& host, EngineConfig engine)
    : state_(std::make_unique<State>(*this, hartId, memory, host, engine)) {}

Hart::~Hart() = default;

unsigned Hart::id() const { return state_->hartId; }

uint64_t Hart::xreg(unsigned index) const { return index < 32 ? state_->x[index] : 0; }
void Hart::setXreg(unsigned index, uint64_t value) {
  if (index != 0 && index < 32) state_->x[index] = value;
}
uint64_t Hart::freg(unsigned index) const { return index < 32 ? state_->f[index] : 0; }
void Hart::setFreg(unsigned index, uint64_t bits) {
  if (index < 32) state_->f[index] = bits;
}
uint64_t Hart::pc() const { return state_->pc; }
void Hart::setPc(uint64_t pc) { state_->pc = pc; }
Privilege Hart::privilege() const { return state_->priv; }
void Hart::setPrivilege(Privilege privilege) {
  if (privilege != Privilege::User && privilege != Privilege::Supervisor && privilege != Privilege::Machine) return;
  state_->setPrivilege(privilege);
  state_->attention.fetch_or(kAttnInterrupts);
}

std::optional<uint64_t> Hart::readCsr(uint16_t csr) const {
  uint64_t value;
  if (!state_->csrRead(csr, value, false)) return std::nullopt;
  return value;
}

bool Hart::writeCsr(uint16_t csr, uint64_t value) {
  // Read-only registers (mhartid, the user counter views, ...) reject host writes too.
  if ((csr >> 10) == 3) return false;
  return state_->csrWrite(csr, value, false);
}

void Hart::resetToMachineMode(uint64_t pc) { state_->resetToMachineMode(pc); }
void Hart::resetToSupervisorBoot(uint64_t entry, uint64_t a1) { state_->resetToSupervisorBoot(entry, a1); }

void Hart::save(StateWriter& out) const { state_->saveState(out); }
Result<void> Hart::load(StateReader& in) { return state_->loadState(in); }

ExitReason Hart::run() { return state_->engine->run(*state_); }
uint64_t Hart::step(uint64_t count) { return state_->engine->step(*state_, count); }
void Hart::stopSelf() { state_->attention.fetch_or(kAttnSelfStop); }

void Hart::setInterruptLine(InterruptBit bit, bool level) {
  uint64_t mask;
  switch (bit) {
    case kSupervisorExternal: mask = HartCore::kSeipLineBit; break;
    case kMachineExternal:
    case kMachineSoftware:
    case kSupervisorSoftware:
    case kSupervisorTimer:
    case kMachineTimer: mask = 1ull << bit; break;
    default: return;
  }
  if (level) state_->mip.fetch_or(mask);
  else state_->mip.fetch_and(~mask);
  state_->requestAttention(kAttnInterrupts);
}

void Hart::postSupervisorSoftwareInterrupt() {
  state_->mip.fetch_or(csr::kSsip);
  state_->requestAttention(kAttnInterrupts);
}

void Hart::setMachineTimerCompare(uint64_t value) {
  state_->mtimecmp.store(value);
  state_->requestAttention(kAttnTimers);
}
uint64_t Hart::machineTimerCompare() const { return state_->mtimecmp.load(); }

void Hart::requestRemoteFence(RemoteFence fence) {
  state_->pendingFences.fetch_or(fence == RemoteFence::Tlb ? kFenceTlb : kFenceICache);
  state_->requestAttention(kAttnFence);
}

void Hart::waitForRemoteFences() {
  HartCore& core = *state_;
  // The hart itself (e.g. an SBI call fencing all harts) applies them before its next instruction.
  if (core.ownerThread.load() == std::this_thread::get_id()) return;
  // A hart waiting here from inside its own SBI call executes no guest code
  // meanwhile: count it as asleep so harts fencing each other cannot deadlock
  // (it applies its own pending fences before running on).
  HartCore* caller = HartCore::current;
  if (caller != nullptr) {
    caller->runState.store(HartCore::RunState::Sleeping);
    caller->notifyFenceWaiters();
  }
  {
    std::unique_lock lock(core.fenceMutex);
    core.fenceCv.wait(lock, [&] {
      return core.pendingFences.load() == 0 || core.runState.load() != HartCore::RunState::Running;
    });
  }
  if (caller != nullptr) caller->runState.store(HartCore::RunState::Running);
}

void Hart::requestStop() { state_->requestAttention(kAttnStop); }
void Hart::kick() { state_->requestAttention(kAttnKick); }

void Hart::setDebugPoints(const DebugPoints& points) { state_->setDebugPoints(points); }
DebugStop Hart::lastDebugStop() const { return state_->debugStop; }

uint64_t Hart::debugStep() {
  State& core = *state_;
  // A stop asked for before the step (the pause this hart waits in) must not cut it short.
  core.attention.fetch_and(~kAttnStop);
  core.debugStepping = true;
  const uint64_t retired = core.engine->step(core, 1);
  core.debugStepping = false;
  core.attention.fetch_or(kAttnInterrupts);  // interrupts held off by the step are taken when it runs on
  return retired;
}

// Page by page: each page translates on its own.
template <typename Copy>
static bool forEachDebugPage(HartCore& core, uint64_t address, size_t length, Copy copy) {
  size_t done = 0;
  while (done < length) {
    const uint64_t va = address + done;
    const size_t chunk = std::min<size_t>(length - done, 4096 - (va & 0xfff));
    uint8_t* host = core.memory.ram(core.debugPhysicalAddress(va), chunk);
    if (host == nullptr) return false;
    copy(host, done, chunk);
    done += chunk;
  }
  return true;
}

bool Hart::debugReadMemory(uint64_t address, uint8_t* out, size_t length) {
  return forEachDebugPage(*state_, address, length,
                          [&](const uint8_t* host, size_t done, size_t chunk) { std::memcpy(out + done, host, chunk); });
}

bool Hart::debugWriteMemory(uint64_t address, const uint8_t* data, size_t length) {
  return forEachDebugPage(*state_, address, length,
                          [&](uint8_t* host, size_t done, size_t chunk) { std::memcpy(host, data + done, chunk); });
}

uint64_t Hart::instructionsRetired() const { return state_->instret; }
std::vector<EngineStat> Hart::engineStats() const { return state_->engine->stats(); }

namespace {

// Sets a block's interpreter chain slots to its cached successors on the same
// page (the one after it unless it ends with a jump, and a branch's or jal's
// target) and freezes them.
void fillChains(BlockCache& blocks, Block& block) {
  if (block.instructionCount == 0) return;
  const DecodedInsn& last = block.insns[block.instructionCount - 1];
  const bool branch = last.op >= Op::Beq && last.op <= Op::Bgeu;
  const bool jump = last.op == Op::Jal || last.op == Op::Jalr;
  uint64_t successors[2];
  unsigned count = 0;
  if (branch || last.op == Op::Jal)
    successors[count++] = block.physicalPc + last.pcOffset + static_cast<int64_t>(last.imm);
  if (!jump) successors[count++] = block.physicalPc + block.byteLength;
  unsigned filled = 0;
  for (unsigned i = 0; i < count; ++i) {
    if ((successors[i] >> 12) != (block.physicalPc >> 12)) continue;
    Block* next = blocks.find(successors[i]);
    if (next == nullptr) continue;
    block.chain[filled] = next;
    block.chainOffset[filled] = static_cast<uint16_t>(successors[i] & 0xfff);
    ++filled;
  }
  block.chainVictim = 0;
  block.chainFrozen = true;
}

// The physical pages the fetch TLB holds: the code the hart ran since its last TLB flush.
std::unordered_set<uint64_t> recentlyFetchedPages(const HartHotState& hot) {
  std::unordered_set<uint64_t> pages;
  for (const auto& set : hot.fetchTlb)
    for (const FetchTlbEntry& entry : set)
      if (entry.tag != FetchTlbEntry{}.tag) pages.insert(((entry.tag << 12) + entry.physicalAddend) >> 12);
  return pages;
}

}  // namespace

std::vector<uint64_t> Hart::warmSet(uint32_t minColdRuns) const {
  std::vector<uint64_t> keys;
  const std::unordered_set<uint64_t> recent = recentlyFetchedPages(*state_);
  state_->blocks.forEachBlock([&](const Block& block) {
    if (block.translated != nullptr)  // marked for translation only if on a page the hart ran lately
      keys.push_back(block.physicalPc | (recent.contains(block.physicalPc >> 12) ? 1 : 0));
    else if (state_->blocks.executions(block) >= minColdRuns)
      keys.push_back(block.physicalPc);
  });
  std::sort(keys.begin(), keys.end());
  return keys;
}

size_t Hart::prewarm(std::span<const uint64_t> keys) {
  State& core = *state_;
  core.applyFences();
  // Decoded first, all of them: a translation may run on into the block after a branch.
  std::vector<Block*> toTranslate;
  size_t cached = 0;
  for (uint64_t key : keys) {
    const uint64_t pa = key & ~uint64_t{1};
    const uint8_t* host = core.memory.ram(pa, 2);
    if (host == nullptr || !core.cacheablePage(pa & ~0xfffull)) continue;
    uint16_t low;
    std::memcpy(&low, host, 2);
    // An instruction straddling two pages is never cached (and would need the MMU to find its other half).
    if ((pa & 0xfff) + instructionLength(low) > 4096) continue;
    Block* block = core.blocks.find(pa);
    if (block == nullptr) block = core.buildBlock(pa, pa);
    if (block == nullptr || core.blocks.find(pa) != block) continue;
    ++cached;
    if (key & 1) toTranslate.push_back(block);
  }
  for (Block* block : toTranslate)
    if (core.blocks.find(block->physicalPc) == block) core.engine->pretranslate(core, *block);  // not flushed since
  core.engine->finishPrewarm(core);
  // What the interpreter would link on its own, linked once here: a clone then reads these blocks without writing.
  std::vector<uint64_t> cachedPcs;
  core.blocks.forEachBlock([&](const Block& block) { cachedPcs.push_back(block.physicalPc); });
  for (uint64_t pc : cachedPcs)
    if (Block* block = core.blocks.find(pc)) fillChains(core.blocks, *block);
  core.blocks.shareWithClones();
  return cached;
}

}  // namespace strata::cpu
