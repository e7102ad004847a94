#include "cpu/jit/jit_engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>

#include "cpu/block_cache.h"
#include "cpu/clear_used.h"
#include "cpu/hart_core.h"
#include "cpu/interp/interpreter.h"
#include "cpu/jit/engine_trace.h"
#include "cpu/jit/translator.h"

namespace strata::cpu::jit {

JitEngine::JitEngine(uint32_t translateThreshold, size_t codeCacheBytes, std::shared_ptr<EngineTrace> trace)
    : translateThreshold_(std::min(translateThreshold, BlockCache::kMaxCountedRuns)),
      code_(codeCacheBytes), jumpCache_(new JumpCacheEntry[kJumpCacheSlots]), trace_(std::move(trace)) {
  trampolines_ = emitTrampolines(code_);
}

void JitEngine::followBlockCache(HartCore& hart) {
  const BlockCache& blocks = hart.blocks;
  counters_.stalePagesDropped = blocks.pagesDropped();  // found by any find() since the last call
  if (blocks.generation() == blockGeneration_ && blocks.fences() == blockFences_) [[likely]]
    return;
  if (blocks.generation() == blockGeneration_) {
    // fence.i: the block cache checks pages when find() reaches them, and
    // only the jump cache reaches blocks without it (patched chains never
    // leave a page). Code of pages found changed stays in the cache, dead, until it fills.
    blockFences_ = blocks.fences();
    clearJumpCache();
    return;
  }
  // The blocks our code was translated from (and the chains patched between
  // them) are gone: the code goes with them.
  blockGeneration_ = blocks.generation();
  blockFences_ = blocks.fences();
  resetCode();
  ++counters_.blockCacheFlushes;
}

void JitEngine::clearJumpCache() {
  clearUsedEntries(std::span(jumpCache_.get(), kJumpCacheSlots), &JumpCacheEntry::physicalPc);
}

void JitEngine::resetCode() {
  code_.reset();
  clearJumpCache();
}

void JitEngine::dropEverything(HartCore& hart) {
  ++counters_.codeCacheFlushes;
  hart.blocks.flush();  // their Block::translated pointers go with them
  blockGeneration_ = hart.blocks.generation();
  blockFences_ = hart.blocks.fences();
  resetCode();
}

const void* JitEngine::translation(Block& block, BlockCache& blocks, std::vector<DirectExit>* directExits) {
  if (block.translated != nullptr) return block.translated;
  const auto start = std::chrono::steady_clock::now();
  const size_t usedBefore = code_.used();
  const void* code = translateBlock(block, blocks, code_, *this, trampolines_, directExits);
  counters_.translateNanos += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  if (code == nullptr) return nullptr;
  ++counters_.blocksTranslated;
  if (trace_) trace_->record(block, static_cast<const uint8_t*>(code), code_.used() - usedBefore);
  block.translated = const_cast<void*>(code);
  return code;
}

void JitEngine::pretranslate(HartCore& hart, Block& block) {
  const uint64_t generation = blockGeneration_;
  followBlockCache(hart);  // code made before the hart's last flush is gone
  if (blockGeneration_ != generation) pretranslatedExits_.clear();
  translation(block, hart.blocks, &pretranslatedExits_);
}

// The clones of a clone server share the code cache copy-on-write: each jump
// a clone patched, and each translation it appended to the last page, would
// copy a page into it. So the warm translations are linked to each other here,
// once, and a clone's own code starts on a page of its own.
void JitEngine::finishPrewarm(HartCore& hart) {
  const uint64_t generation = blockGeneration_;
  followBlockCache(hart);
  if (blockGeneration_ == generation)
    for (const DirectExit& exit : pretranslatedExits_) link(hart.blocks.find(exit.targetPa), exit.jumpSite);
  pretranslatedExits_.clear();
  pretranslatedExits_.shrink_to_fit();
  code_.startFreshPage();
}

const void* JitEngine::link(const Block* target, uint8_t* jumpSite) {
  if (target == nullptr || target->translated == nullptr) return nullptr;
  const void* code = target->translated;
  const int64_t displacement = reinterpret_cast<const uint8_t*>(code) - (jumpSite + 5);
  const auto rel32 = static_cast<int32_t>(displacement);
  std::memcpy(jumpSite + 1, &rel32, 4);  // the code cache is one mapping far below 2 GiB: always in range
  ++counters_.chainLinks;
  return code;
}

const void* JitEngine::linkDirect(JitEngine* engine, HartCore* hart, uint64_t targetPa, uint8_t* jumpSite) {
  // Only to code already translated: the run loop decodes (which may flush)
  // and decides when a block is hot enough to translate.
  return engine->link(hart->blocks.find(targetPa), jumpSite);
}

const void* JitEngine::lookup(JitEngine* engine, HartCore* hart) {
  const uint64_t pc = hart->pc;
  const FetchTlbEntry& e = hart->currentFetchTlb[(pc >> 12) & (HartHotState::kTlbSlots - 1)];
  if (e.tag != (pc >> 12)) {
    ++engine->counters_.lookupMisses;
    return nullptr;
  }
  const uint64_t pa = pc + e.physicalAddend;
  Block* next = hart->blocks.find(pa);
  if (next == nullptr || next->translated == nullptr) {
    ++engine->counters_.lookupMisses;
    return nullptr;
  }
  ++engine->counters_.lookupHits;
  engine->jumpCache_[jumpCacheSlot(pa)] = JumpCacheEntry{pa, next->translated};
  return next->translated;
}

bool JitEngine::runOneBlock(HartCore& hart, uint64_t limit) {
  Block* block = hart.lookupBlock();
  if (block == nullptr) [[unlikely]] {
    hart.takeException();
    return true;
  }
  followBlockCache(hart);  // decoding may have flushed a full block cache
  // Scratch blocks (code straddling pages or on a page PMP splits) are
  // re-decoded every time; a limit inside the block is single-stepping; code
  // run only a few times between fence.i flushes costs more to translate
  // than to interpret.
  const bool cold = block->translated == nullptr &&
                    (block == &hart.scratch.block || hart.blocks.countRun(*block) < translateThreshold_);
  const void* code = nullptr;
  if (!cold && block != &hart.scratch.block && block->instructionCount <= limit) {
    code = translation(*block, hart.blocks);
    // The code cache is full: start over. (A block too big for even an empty
    // cache stays with the interpreter.)
    if (code == nullptr && code_.holdsTranslations()) {
      dropEverything(hart);
      return false;
    }
  }
  if (code == nullptr) {
    ++counters_.interpretedBlocks;
    if (hart.singleBlock == 0) {  // run() (which ignores the answer): cold code chains in the interpreter
      interp::executeChained(hart, block);
      return false;
    }
    return interp::executeLimited(hart, block, static_cast<uint32_t>(std::min<uint64_t>(limit, block->instructionCount)))
        .trapped;
  }
  ++counters_.dispatches;
  return trampolines_.enter(&hart, hart.pc, code) != 0;
}

ExitReason JitEngine::run(HartCore& h) {
  RunScope scope(h);
  h.singleBlock = 0;
  // Cold code runs chained in the interpreter until it reaches a hot block.
  h.chainUntilExecutions = translateThreshold_;
  for (;;) {
    if (h.attention.load(std::memory_order_relaxed) != 0 || --h.timerCountdown <= 0) [[unlikely]] {
      ExitReason reason;
      if (h.serviceAttention(true, true, reason)) return reason;
      followBlockCache(h);
    }
    runOneBlock(h, HartCore::kMaxBlockInstructions);
  }
}

uint64_t JitEngine::step(HartCore& h, uint64_t count) {
  RunScope scope(h);
  h.singleBlock = 1;  // translated blocks return after themselves
  const uint64_t start = h.instret;
  uint64_t attempts = 0;
  while (attempts < count) {
    if (h.attention.load(std::memory_order_relaxed) != 0 || --h.timerCountdown <= 0) {
      ExitReason reason;
      if (h.serviceAttention(true, false, reason)) break;
      followBlockCache(h);
    }
    const uint64_t before = h.instret;
    const bool trapped = runOneBlock(h, count - attempts);
    attempts += (h.instret - before) + (trapped ? 1 : 0);
  }
  h.singleBlock = 0;
  return h.instret - start;
}

std::vector<EngineStat> JitEngine::stats() const {
  return {
      {"blocks_translated", counters_.blocksTranslated},
      {"translate_us", counters_.translateNanos / 1000},
      {"code_bytes", code_.used()},
      {"code_cache_flushes", counters_.codeCacheFlushes},
      {"block_cache_flushes", counters_.blockCacheFlushes},
      {"stale_pages_dropped", counters_.stalePagesDropped},
      {"chain_links", counters_.chainLinks},
      {"lookup_hits", counters_.lookupHits},
      {"lookup_misses", counters_.lookupMisses},
      {"dispatches", counters_.dispatches},
      {"interpreted_blocks", counters_.interpretedBlocks},
  };
}

}  // namespace strata::cpu::jit
