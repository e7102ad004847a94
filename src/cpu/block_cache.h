// Decoded-block cache: the seam between "what the guest code is" and "how an
// engine runs it". A Block is a straight-line run of pre-decoded instructions
// starting at a guest PHYSICAL address; it never crosses a 4 KiB page and ends
// at the first control transfer, CSR access or system instruction (see
// endsBlock()). Keying by physical address lets one block serve every
// virtual alias and survive satp switches. fence.i / remote instruction-cache
// fences (when the architecture says stale code must go) call dropStale():
// from then on each page is checked once, when it is next reached through find(),
// its blocks' guest bytes (copied at decode time) compared with memory, and
// dropped if they changed (written by any hart, or by DMA). Pages the guest
// did not touch keep their blocks and translations. flush() drops everything
// (PMP or trigger changes, a full arena).
//
// Engine seam: the interpreter walks Block::insns; the translator attaches
// native code for the same block through Block::translated, drops all of it
// when generation() moves (every flush) and forgets the pointers it got
// other than through find() (its jump cache) when fences() moves, so lookup
// and invalidation stay in one place for every engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "cpu/decoder.h"
#include "cpu/physical_memory.h"

namespace strata::cpu {

struct CodePage;

// The decoded instructions follow the Block header directly in memory
// (insns == firstInsn()), so engines reach them without a dependent load.
struct alignas(16) Block {
  uint64_t physicalPc = 0;
  uint32_t instructionCount = 0;  // excluding the trailing Op::BlockEnd sentinel
  uint32_t byteLength = 0;        // guest bytes covered (the sentinel's pcOffset)
  uint32_t serial = 0;            // its run counter's index (BlockCache::executions)
  uint32_t pageSerial = 0;        // its page's (CodePage::serial)
  void* translated = nullptr;     // engine-private native code, owned by that engine
  DecodedInsn* insns = nullptr;   // instructionCount + 1 entries
  // Successors on the same guest page, found by their page offset. Valid for
  // the block's whole life: a same-page target's physical address follows from
  // ours, and the cache checks and drops a page's blocks all at once.
  Block* chain[2] = {nullptr, nullptr};
  uint16_t chainOffset[2] = {0, 0};
  uint8_t chainVictim = 0;
  // Set in a clone server's blocks (Hart::prewarm): the interpreter finds
  // successors not in `chain` without caching them here, as a clone writing
  // a block would copy the page it shares.
  bool chainFrozen = false;
  CodePage* page = nullptr;             // the cache's record of this block's page
  Block* nextOnPage = nullptr;          // the other blocks decoded from it
  const uint8_t* guestBytes = nullptr;  // byteLength bytes of code as decoded (after insns)

  const DecodedInsn* firstInsn() const { return reinterpret_cast<const DecodedInsn*>(this + 1); }
};
static_assert(sizeof(Block) % 16 == 0);

// The blocks decoded from one physical page, and the index of the last fence
// they were checked after (kept beside the pages, as a block's run count: a
// clone checking the pages it shares would otherwise copy them).
struct CodePage {
  Block* blocks = nullptr;
  uint32_t serial = 0;
};

class BlockCache {
 public:
  explicit BlockCache(const PhysicalMemory& memory);

  // Null if the block is not cached (or its page's code changed since it was decoded).
  Block* find(uint64_t physicalPc) {
    Block* block = index_.slots[index_.home(physicalPc)];
    if (block != nullptr && block->physicalPc == physicalPc && checkedAtFence_[block->pageSerial] == fences_) [[likely]]
      return block;
    return findSlow(physicalPc);
  }

  // Copies `count` decoded instructions plus a sentinel, and the byteLength
  // guest bytes they were decoded from, into a new block.
  Block* insert(uint64_t physicalPc, const DecodedInsn* insns, uint32_t count, uint32_t byteLength,
                const uint8_t* guestBytes);

  // A block's runs in the interpreter, for a translator's hotness heuristics,
  // counted up to kMaxCountedRuns. Kept beside the blocks, not in them: a
  // clone server's clones share the decoded blocks copy-on-write, and a count
  // in each block would copy the page of every block a clone runs into that
  // clone; one byte each, as a clone copies the pages of this table it counts in.
  static constexpr uint32_t kMaxCountedRuns = 255;
  // Counts one more run (unless at the maximum); returns the count.
  uint32_t countRun(const Block& block) {
    uint8_t& runs = executions_[block.serial];
    if (runs < kMaxCountedRuns) ++runs;
    return runs;
  }
  uint32_t executions(const Block& block) const { return executions_[block.serial]; }
  // Hart::prewarm, before a clone server forks: from now on (until a flush)
  // the cache writes nothing into what it holds, so each clone shares it with
  // the server without copying it: blocks decoded later go to a fresh arena
  // chunk and a second index, and find() leaves the first index's order as
  // it is.
  void shareWithClones();

  // Drops every block. Callers must not hold Block pointers across this.
  void flush();
  // fence.i: every page is checked against memory when next found; callers
  // must not use Block pointers they got before this without find().
  void dropStale();

  // Every cached block, in no particular order.
  template <typename Visit>
  void forEachBlock(Visit&& visit) const {
    for (const BlockIndex* index : {&index_, &ownIndex_})
      for (const Block* block : index->slots)
        if (block != nullptr) visit(*block);
  }

  // Counts flushes: an engine's state derived from blocks is stale once it moves.
  uint64_t generation() const { return generation_; }
  // Counts dropStale() calls, and the pages found changed after them.
  uint64_t fences() const { return fences_; }
  uint64_t pagesDropped() const { return pagesDropped_; }

 private:
  static constexpr size_t kInitialSlots = 1u << 10;
  static constexpr size_t kChunkBytes = 1u << 20;
  static constexpr size_t kMaxArenaBytes = 64u << 20;  // beyond this the cache starts over

  // An index of blocks: open addressing with linear probing from a block's
  // home slot, at most half full, so a hit is mostly the first probe
  // (find() moves a block found further on to its home slot). Sized by the
  // block count; a node-based map beside a fixed slot array cost each VM
  // (each clone) ~0.2 MiB more for the blocks an idle Linux guest runs.
  struct BlockIndex {
    std::vector<Block*> slots = std::vector<Block*>(kInitialSlots, nullptr);  // a power of two in size
    size_t count = 0;

    size_t home(uint64_t physicalPc) const { return (physicalPc >> 1) & (slots.size() - 1); }
    size_t next(size_t slot) const { return (slot + 1) & (slots.size() - 1); }
    // The slot holding physicalPc's block, or the empty slot ending its probe.
    size_t locate(uint64_t physicalPc) const;
    // Adds (or replaces a block of the same address), growing first if it would be over half full.
    void place(Block* block);
    // False if the block is not here.
    bool erase(const Block* block);
    void clear();
  };
  Block* findSlow(uint64_t physicalPc);
  // Once per fence: drops the page's blocks if its code changed.
  void check(CodePage& page);
  bool unchanged(const CodePage& page) const;
  void dropBlocks(CodePage& page);
  void* allocate(size_t bytes);

  BlockIndex index_;
  BlockIndex ownIndex_;  // blocks decoded since shareWithClones(), else empty
  bool shared_ = false;
  std::unordered_map<uint64_t, CodePage> pages_;  // by physical page number (node-based: stable addresses)
  std::vector<uint64_t> checkedAtFence_;          // by CodePage::serial
  const PhysicalMemory memory_;
  std::vector<uint8_t> executions_;  // by Block::serial; a block dropped keeps its slot until a flush
  std::vector<std::unique_ptr<std::byte[]>> chunks_;
  size_t chunkIndex_ = 0;
  size_t chunkUsed_ = 0;
  uint64_t generation_ = 0;
  uint64_t fences_ = 0;
  uint64_t pagesDropped_ = 0;
};

}  // namespace strata::cpu
