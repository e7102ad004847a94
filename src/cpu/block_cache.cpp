#include "cpu/block_cache.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace strata::cpu {

BlockCache::BlockCache(const PhysicalMemory& memory) : memory_(memory) {}

size_t BlockCache::BlockIndex::locate(uint64_t physicalPc) const {
  size_t at = home(physicalPc);
  while (slots[at] != nullptr && slots[at]->physicalPc != physicalPc) at = next(at);
  return at;
}

void BlockCache::BlockIndex::place(Block* block) {
  if ((count + 1) * 2 > slots.size()) {
    std::vector<Block*> old(slots.size() * 2, nullptr);
    old.swap(slots);
    count = 0;
    for (Block* b : old)
      if (b != nullptr) place(b);
  }
  const size_t at = locate(block->physicalPc);
  if (slots[at] == nullptr) ++count;
  slots[at] = block;
}

// Backward-shift deletion (Knuth's algorithm R): the blocks after the hole
// move into it unless that would put them before their home slot.
bool BlockCache::BlockIndex::erase(const Block* block) {
  size_t hole = home(block->physicalPc);
  while (slots[hole] != block) {
    if (slots[hole] == nullptr) return false;  // not here, or replaced by a newer block of its address
    hole = next(hole);
  }
  for (size_t at = next(hole); slots[at] != nullptr; at = next(at)) {
    size_t wanted = home(slots[at]->physicalPc);
    bool homeInGap = hole <= at ? (hole < wanted && wanted <= at) : (hole < wanted || wanted <= at);
    if (homeInGap) continue;
    slots[hole] = slots[at];
    hole = at;
  }
  slots[hole] = nullptr;
  --count;
  return true;
}

void BlockCache::BlockIndex::clear() {
  // With no blocks the slots are clean: a restore's flush of the empty cache leaves them untouched.
  if (count != 0) std::fill(slots.begin(), slots.end(), nullptr);
  count = 0;
}

Block* BlockCache::findSlow(uint64_t physicalPc) {
  BlockIndex* index = &index_;
  size_t at = index_.locate(physicalPc);
  if (index_.slots[at] == nullptr && shared_) {
    index = &ownIndex_;
    at = ownIndex_.locate(physicalPc);
  }
  Block* block = index->slots[at];
  if (block == nullptr) return nullptr;
  CodePage& page = *block->page;
  check(page);
  if (page.blocks == nullptr) return nullptr;  // its code changed: dropped
  // Every slot from the home slot to `at` is taken, so the block it holds stays
  // reachable from its own home slot at `at`.
  if (!(shared_ && index == &index_)) std::swap(index->slots[index->home(physicalPc)], index->slots[at]);
  return block;
}

void BlockCache::check(CodePage& page) {
  uint64_t& checked = checkedAtFence_[page.serial];
  if (checked == fences_) return;
  checked = fences_;
  if (!unchanged(page)) dropBlocks(page);
}

bool BlockCache::unchanged(const CodePage& page) const {
  for (const Block* b = page.blocks; b != nullptr; b = b->nextOnPage) {
    const uint8_t* now = memory_.ram(b->physicalPc, b->byteLength);
    if (now == nullptr || std::memcmp(now, b->guestBytes, b->byteLength) != 0) return false;
  }
  return true;
}

// The whole page goes: its blocks chain to each other by pointer.
void BlockCache::dropBlocks(CodePage& page) {
  for (Block* b = page.blocks; b != nullptr; b = b->nextOnPage)
    if (!index_.erase(b)) ownIndex_.erase(b);
  page.blocks = nullptr;
  ++pagesDropped_;
}

void* BlockCache::allocate(size_t bytes) {
  bytes = (bytes + 15) & ~size_t{15};
  if (chunkIndex_ < chunks_.size() && chunkUsed_ + bytes <= kChunkBytes) {
    void* p = chunks_[chunkIndex_].get() + chunkUsed_;
    chunkUsed_ += bytes;
    return p;
  }
  if (chunkIndex_ < chunks_.size()) ++chunkIndex_;
  if (chunkIndex_ == chunks_.size()) {
    if (chunks_.size() * kChunkBytes >= kMaxArenaBytes) return nullptr;
    chunks_.emplace_back(new std::byte[kChunkBytes]);  // operator new aligns to 16
  }
  chunkUsed_ = bytes;
  return chunks_[chunkIndex_].get();
}

Block* BlockCache::insert(uint64_t physicalPc, const DecodedInsn* insns, uint32_t count, uint32_t byteLength,
                          const uint8_t* guestBytes) {
  const size_t insnBytes = sizeof(DecodedInsn) * (count + 1);
  const size_t bytes = sizeof(Block) + insnBytes + byteLength;
  void* memory = allocate(bytes);
  if (memory == nullptr) {  // arena full: start over rather than grow without bound
    flush();
    memory = allocate(bytes);
  }
  auto* block = new (memory) Block;
  block->physicalPc = physicalPc;
  block->serial = static_cast<uint32_t>(executions_.size());
  executions_.push_back(0);
  block->instructionCount = count;
  block->byteLength = byteLength;
  block->insns = reinterpret_cast<DecodedInsn*>(static_cast<std::byte*>(memory) + sizeof(Block));
  std::memcpy(static_cast<void*>(block->insns), insns, sizeof(DecodedInsn) * count);
  DecodedInsn sentinel;
  sentinel.op = Op::BlockEnd;
  sentinel.pcOffset = static_cast<uint16_t>(byteLength);
  block->insns[count] = sentinel;
  auto* copy = reinterpret_cast<uint8_t*>(block->insns) + insnBytes;
  std::memcpy(copy, guestBytes, byteLength);
  block->guestBytes = copy;
  // Checked first: a page's blocks are only ever all current, since they chain to each other.
  auto [entry, added] = pages_.try_emplace(physicalPc >> 12);
  CodePage& page = entry->second;
  if (added) {
    page.serial = static_cast<uint32_t>(checkedAtFence_.size());
    checkedAtFence_.push_back(0);
  }
  check(page);
  block->page = &page;
  block->pageSerial = page.serial;
  block->nextOnPage = page.blocks;
  page.blocks = block;
  if (shared_) {
    if (Block* same = index_.slots[index_.locate(physicalPc)]) index_.erase(same);  // replaced
    ownIndex_.place(block);
  } else {
    index_.place(block);
  }
  return block;
}

void BlockCache::shareWithClones() {
  if (chunkUsed_ != 0) chunkUsed_ = kChunkBytes;  // the next allocate() moves on
  shared_ = true;
  pages_.reserve(2 * pages_.size());  // a clone adding pages does not rehash (relink) the shared ones
}

void BlockCache::dropStale() {
  ++fences_;  // find() sends every block of a page not checked since to findSlow()
}

void BlockCache::flush() {
  index_.clear();
  ownIndex_.clear();
  shared_ = false;
  pages_.clear();
  checkedAtFence_.clear();
  chunkIndex_ = 0;
  chunkUsed_ = 0;
  executions_.clear();
  ++generation_;
}

}  // namespace strata::cpu
