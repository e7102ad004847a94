#include "cpu/block_cache.h"

#include <cstring>
#include <new>

namespace strata::cpu {

BlockCache::BlockCache() : direct_(new Block*[kDirectSlots]()) {}

Block* BlockCache::findSlow(uint64_t physicalPc) {
  auto it = index_.find(physicalPc);
  if (it == index_.end()) return nullptr;
  direct_[slot(physicalPc)] = it->second;
  return it->second;
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

Block* BlockCache::insert(uint64_t physicalPc, const DecodedInsn* insns, uint32_t count, uint32_t byteLength) {
  const size_t bytes = sizeof(Block) + sizeof(DecodedInsn) * (count + 1);
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
  index_[physicalPc] = block;
  direct_[slot(physicalPc)] = block;
  return block;
}

void BlockCache::flush() {
  std::memset(static_cast<void*>(direct_.get()), 0, sizeof(Block*) * kDirectSlots);
  index_.clear();
  chunkIndex_ = 0;
  chunkUsed_ = 0;
  ++generation_;
}

}  // namespace strata::cpu
