// BlockCache's index: every inserted block is found again as the table grows,
// and dropping a page's blocks (code changed before a fence.i) removes exactly
// those, also when they share probe runs with other pages' blocks; runs are
// counted per block up to a maximum no translation threshold may pass.
#include <gtest/gtest.h>

#include <vector>

#include "cpu/block_cache.h"
#include "cpu/hart.h"

namespace strata::cpu {
namespace {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamBytes = 4u << 20;

class BlockCacheTest : public ::testing::Test {
 protected:
  Block* insert(uint64_t pc) {
    DecodedInsn insn;
    insn.op = Op::Addi;
    return cache.insert(pc, &insn, 1, 4, &ram[pc - kRamBase]);
  }

  std::vector<uint8_t> ram = std::vector<uint8_t>(kRamBytes, 0x13);
  PhysicalMemory memory{kRamBase, kRamBytes, ram.data(), nullptr, nullptr};
  BlockCache cache{memory};
};

TEST_F(BlockCacheTest, EveryBlockIsFoundAfterTheIndexGrew) {
  std::vector<Block*> blocks;
  for (uint64_t pc = kRamBase; pc < kRamBase + 5000 * 6; pc += 6) blocks.push_back(insert(pc));
  for (Block* block : blocks) ASSERT_EQ(cache.find(block->physicalPc), block);
  EXPECT_EQ(cache.find(kRamBase + 4), nullptr);            // between two blocks
  EXPECT_EQ(cache.find(kRamBase + (3u << 20)), nullptr);  // never decoded
}

TEST_F(BlockCacheTest, DroppingAPageKeepsTheBlocksSharingItsSlots) {
  // Pages 1 MiB apart have the same home slots at any table size below 2^19
  // slots, so their blocks interleave in one probe run.
  const uint64_t changed = kRamBase, kept = kRamBase + (1u << 20), alsoKept = kRamBase + (2u << 20);
  std::vector<Block*> keptBlocks;
  for (uint64_t offset = 0; offset < 4096; offset += 64) {
    insert(changed + offset);
    keptBlocks.push_back(insert(kept + offset));
    keptBlocks.push_back(insert(alsoKept + offset));
  }
  ram[changed + 128 - kRamBase] = 0x93;  // one instruction rewritten
  cache.dropStale();
  EXPECT_EQ(cache.find(changed + 64), nullptr);  // the first look drops the whole page
  for (uint64_t offset = 0; offset < 4096; offset += 64) EXPECT_EQ(cache.find(changed + offset), nullptr);
  for (Block* block : keptBlocks) EXPECT_EQ(cache.find(block->physicalPc), block);
  EXPECT_EQ(cache.pagesDropped(), 1u);

  Block* again = insert(changed + 128);  // decoded anew from the new bytes
  EXPECT_EQ(cache.find(changed + 128), again);
  EXPECT_EQ(again->guestBytes[0], 0x93);
}

TEST_F(BlockCacheTest, FlushForgetsEveryBlock) {
  for (uint64_t pc = kRamBase; pc < kRamBase + 8192; pc += 16) insert(pc);
  uint64_t generation = cache.generation();
  cache.flush();
  EXPECT_EQ(cache.generation(), generation + 1);
  for (uint64_t pc = kRamBase; pc < kRamBase + 8192; pc += 16) ASSERT_EQ(cache.find(pc), nullptr);
  Block* block = insert(kRamBase + 16);
  EXPECT_EQ(cache.find(kRamBase + 16), block);
}

TEST_F(BlockCacheTest, BlocksDecodedAfterSharingAreFoundBesideTheSharedOnes) {
  std::vector<Block*> shared, own;
  for (uint64_t pc = kRamBase; pc < kRamBase + 3000 * 6; pc += 6) shared.push_back(insert(pc));
  cache.shareWithClones();
  for (uint64_t pc = kRamBase + (1u << 20); pc < kRamBase + (1u << 20) + 3000 * 6; pc += 6) own.push_back(insert(pc));
  for (Block* block : shared) ASSERT_EQ(cache.find(block->physicalPc), block);
  for (Block* block : own) ASSERT_EQ(cache.find(block->physicalPc), block);
  size_t visited = 0;
  cache.forEachBlock([&](const Block&) { ++visited; });
  EXPECT_EQ(visited, shared.size() + own.size());

  // A changed page goes from either index.
  ram[0] = 0x93;
  ram[(1u << 20)] = 0x93;
  cache.dropStale();
  EXPECT_EQ(cache.find(kRamBase + 6), nullptr);
  EXPECT_EQ(cache.find(kRamBase + (1u << 20) + 6), nullptr);
  EXPECT_EQ(cache.find(kRamBase + 4096 + 2), shared[683]);  // 4098 = 683 * 6: the next page's first block
  EXPECT_EQ(cache.pagesDropped(), 2u);
  Block* again = insert(kRamBase);
  EXPECT_EQ(cache.find(kRamBase), again);
}

TEST_F(BlockCacheTest, RunsAreCountedPerBlockUpToTheMaximum) {
  Block* first = insert(kRamBase);
  Block* second = insert(kRamBase + 64);
  for (uint32_t run = 1; run <= BlockCache::kMaxCountedRuns; ++run) ASSERT_EQ(cache.countRun(*first), run);
  EXPECT_EQ(cache.countRun(*first), BlockCache::kMaxCountedRuns);  // stays there, never wraps to 0
  EXPECT_EQ(cache.executions(*first), BlockCache::kMaxCountedRuns);
  EXPECT_EQ(cache.executions(*second), 0u);
  EXPECT_EQ(cache.countRun(*second), 1u);
  cache.flush();
  EXPECT_EQ(cache.executions(*insert(kRamBase)), 0u);  // a block decoded again starts over
}

TEST(EngineConfigTest, AThresholdIsOneToTheMostRunsCounted) {
  EXPECT_EQ(parseEngineConfig("jit,threshold=1")->translateThreshold, 1u);
  EXPECT_EQ(parseEngineConfig("jit,threshold=255")->translateThreshold, BlockCache::kMaxCountedRuns);
  EXPECT_FALSE(parseEngineConfig("jit,threshold=256"));  // would never be reached
  EXPECT_FALSE(parseEngineConfig("jit,threshold=0"));
}

}  // namespace
}  // namespace strata::cpu
