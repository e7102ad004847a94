#include "cpu/block_cache.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace strata::cpu {

void BlockCache::FreeDeleter::operator()(Block** slots) const { std::free(slots); }

BlockCache::BlockCache(const PhysicalMemory& memory)
    : direct_(static_cast<Block**>(std::calloc(kDirectSlots, sizeof(Block*)))), memory_(memory) {
  if (!direct_) throw std::bad_alloc();
}

Block* BlockCache::findSlow(uint64_t physicalPc) {
  Block* block = direct_[slot(physicalPc)];
  if (block == nullptr || block->physicalPc != physicalPc) {
    auto it = index_.find(physicalPc);
    if (it == index_.end()) return nullptr;
    block = it->second;
  }
  CodePage& page = *block->page;
  check(page);
  if (page.blocks == nullptr) return nullptr;  // its code changed: dropped
  direct_[slot(physicalPc)] = block;
  return block;
}

void BlockCache::check(CodePage& page) {
  if (page.checkedAtFence == fences_) return;
  page.checkedAtFence = fences_;
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
  for (Block* b = page.blocks; b != nullptr; b = b->nextOnPage) {
    index_.erase(b->physicalPc);
    if (direct_[slot(b->physicalPc)] == b) direct_[slot(b->physicalPc)] = nullptr;
  }
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
  CodePage& page = pages_[physicalPc >> 12];
  check(page);
  block->page = &page;
  block->nextOnPage = page.blocks;
  page.blocks = block;
  index_[physicalPc] = block;
  direct_[slot(physicalPc)] = block;
  return block;
}

void BlockCache::dropStale() {
  ++fences_;  // find() sends every block of a page not checked since to findSlow()
}

void BlockCache::flush() {
  // A slot only ever holds an indexed block: with none, the slots are clean and stay untouched.
  if (!index_.empty()) std::memset(static_cast<void*>(direct_.get()), 0, sizeof(Block*) * kDirectSlots);
  index_.clear();
  pages_.clear();
  chunkIndex_ = 0;
  chunkUsed_ = 0;
  ++generation_;
}

}  // namespace strata::cpu
