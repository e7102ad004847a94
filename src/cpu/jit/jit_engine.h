// JitEngine: the binary translator. It runs the same decoded blocks as the
// interpreter (HartCore's block cache): cold ones in the interpreter (whose
// chaining stops at a translated or hot block), and a
// block entered translateThreshold times is translated to x86-64 into a
// per-hart CodeCache; translated blocks chain to each other
// directly (patched jumps) and through a lookup of the fetch TLB and block
// cache for indirect jumps. Instructions it does not translate are calls to
// the interpreter's executors, so both engines share one definition of them.
#pragma once

#include <cstdint>
#include <memory>

#include "cpu/engine.h"
#include "cpu/jit/code_cache.h"

namespace strata::cpu {

struct Block;
class BlockCache;
struct HartHotState;

namespace jit {

// Entry into translated code: runs from `code` (the block at `pc`) until an
// exit; returns 1 when the exit was a trap (already taken), else 0.
using EnterFunction = uint32_t (*)(HartCore* core, uint64_t pc, const void* code);

// Shared code at the start of the code cache (translator.cpp emits it).
struct Trampolines {
  EnterFunction enter = nullptr;
  const void* exitToRunLoop = nullptr;  // jump here with eax = the enter function's result
  const void* callHelper = nullptr;     // call here with rax = a helper: runs it with x complete in HartHotState
};

struct JitCounters {
  uint64_t blocksTranslated = 0;
  uint64_t translateNanos = 0;
  uint64_t codeCacheFlushes = 0;  // code cache full: everything dropped
  uint64_t blockCacheFlushes = 0;  // PMP/trigger changes, full arena: translations dropped with their blocks
  uint64_t stalePagesDropped = 0;  // pages whose code changed, dropped after fence.i with their translations
  uint64_t chainLinks = 0;         // direct exits patched to jump straight to their successor
  uint64_t lookupHits = 0;    // indirect/cross-page exits the jump cache missed but the block cache had
  uint64_t lookupMisses = 0;  // ... and those that went back to the run loop
  uint64_t dispatches = 0;         // entries from the run loop
  uint64_t interpretedBlocks = 0;  // entries into the interpreter (cold blocks, straddling pages, step limits)
};

// Indirect-jump cache: guest physical pc -> native code, probed inline by
// generated code after it has translated the target through the fetch TLB
// (so it is exact under any mapping change), refilled by lookup(), cleared
// with the code cache and at every fence.i.
struct JumpCacheEntry {
  uint64_t physicalPc = ~0ull;
  const void* code = nullptr;
};

// A translation's jump to the block at targetPa (same guest page), patched
// (linkDirect) once that block is translated.
struct DirectExit {
  uint8_t* jumpSite;
  uint64_t targetPa;
};

class JitEngine final : public Engine {
 public:
  static constexpr unsigned kJumpCacheSlots = 4096;

  // translateThreshold: runs of a block in the interpreter before it is translated
  // (BlockCache::kMaxCountedRuns at most; a larger one, from a snapshot, counts as that).
  JitEngine(uint32_t translateThreshold, size_t codeCacheBytes, std::shared_ptr<EngineTrace> trace = nullptr);
  ExitReason run(HartCore& hart) override;
  uint64_t step(HartCore& hart, uint64_t count) override;
  std::vector<EngineStat> stats() const override;
  void pretranslate(HartCore& hart, Block& block) override;
  void finishPrewarm(HartCore& hart) override;

  // Called from generated code. Both return the successor's native code or
  // null (the generated code then returns to the run loop).
  // A direct exit to the block at `targetPa` (same guest page): when that
  // block is translated, patches the 5-byte jmp at `jumpSite` to it.
  static const void* linkDirect(JitEngine* engine, HartCore* hart, uint64_t targetPa, uint8_t* jumpSite);
  // An exit to hart.pc through a register or across a page.
  static const void* lookup(JitEngine* engine, HartCore* hart);
  const JumpCacheEntry* jumpCache() const { return jumpCache_.get(); }
  static unsigned jumpCacheSlot(uint64_t physicalPc) { return (physicalPc >> 1) & (kJumpCacheSlots - 1); }

 private:
  // Drops translations when the block cache was flushed, and the jump
  // cache when a fence.i made it check pages, since we last looked.
  void followBlockCache(HartCore& hart);
  void clearJumpCache();
  // Native code for `block`, translating it if needed; null if the code cache is full.
  const void* translation(Block& block, BlockCache& blocks, std::vector<DirectExit>* directExits = nullptr);
  // Points the jump at `jumpSite` to `target`'s code if it is translated; returns that code or null.
  const void* link(const Block* target, uint8_t* jumpSite);
  void dropEverything(HartCore& hart);
  void resetCode();
  // Runs the block at hart.pc (at most `limit` instructions); returns true if
  // it trapped. Under run() (singleBlock == 0) it may run on into more blocks
  // and its answer means nothing.
  bool runOneBlock(HartCore& hart, uint64_t limit);

  const uint32_t translateThreshold_;
  CodeCache code_;
  std::unique_ptr<JumpCacheEntry[]> jumpCache_;
  Trampolines trampolines_;
  uint64_t blockGeneration_ = 0;
  uint64_t blockFences_ = 0;
  JitCounters counters_;
  std::shared_ptr<EngineTrace> trace_;  // --engine-trace, or null
  std::vector<DirectExit> pretranslatedExits_;  // linked by finishPrewarm
};

}  // namespace jit
}  // namespace strata::cpu
