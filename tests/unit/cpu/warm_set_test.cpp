// Warm sets (Hart::warmSet / Hart::prewarm): the blocks a hart cached, and
// which of them it translated on code it ran lately, re-created on another hart from memory before
// it runs, as a clone server does before it forks its clones.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 1ull << 20;

// a0 = 1 + 2 + ... + 100 (a loop: several blocks), then * 3 after a call, then ecall.
std::vector<uint32_t> sumProgram(int32_t multiplier) {
  return {addi(a0, zero, 0), addi(t0, zero, 1), addi(t1, zero, 101),
          add(a0, a0, t0),   addi(t0, t0, 1),   blt(t0, t1, -8),
          jal(ra, 12),       ecall,             ecall,
          addi(t2, zero, multiplier), mul(a0, a0, t2), jalr(zero, ra, 0)};
}

std::map<std::string, uint64_t> runToEcall(ProgramHart& program) {
  EXPECT_EQ(program.hart->run(), ExitReason::HartStopped);
  return program.stats();
}

size_t translatedKeys(const std::vector<uint64_t>& keys) {
  return static_cast<size_t>(std::count_if(keys.begin(), keys.end(), [](uint64_t key) { return key & 1; }));
}

std::vector<uint64_t> addresses(std::vector<uint64_t> keys) {
  for (uint64_t& key : keys) key &= ~1ull;
  return keys;
}

TEST(WarmSetTest, PrewarmedHartRunsOnTheTranslationsItWasGiven) {
  ProgramHart first(sumProgram(3), kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  auto firstStats = runToEcall(first);
  ASSERT_EQ(first.hart->xreg(a0), 5050u * 3);
  const std::vector<uint64_t> keys = first.hart->warmSet();
  ASSERT_GE(keys.size(), 3u);
  EXPECT_EQ(translatedKeys(keys), firstStats["blocks_translated"]);
  for (uint64_t key : keys) EXPECT_EQ(key & ~1ull & 0xffffffff00000000ull, 0u) << "a physical address in RAM";

  ProgramHart second(sumProgram(3), kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  EXPECT_EQ(second.hart->prewarm(keys), keys.size());
  EXPECT_EQ(addresses(second.hart->warmSet()), addresses(keys));
  EXPECT_EQ(translatedKeys(second.hart->warmSet()), 0u) << "it has fetched nothing yet: no code run lately";
  const uint64_t prewarmedTranslations = second.stats()["blocks_translated"];
  EXPECT_EQ(prewarmedTranslations, translatedKeys(keys));
  const uint64_t prewarmedLinks = second.stats()["chain_links"];
  EXPECT_GT(prewarmedLinks, 0u) << "prewarm links the translations' direct exits to each other";
  auto secondStats = runToEcall(second);
  EXPECT_EQ(second.hart->xreg(a0), 5050u * 3);
  EXPECT_EQ(secondStats["blocks_translated"], prewarmedTranslations) << "it ran on what prewarm made, translating nothing";
  EXPECT_EQ(secondStats["chain_links"], prewarmedLinks) << "and patched no jump of it";
}

// Translations of code not run since the last TLB flush (boot's, in a guest) are not marked: a clone
// server decodes their blocks but leaves translating them to the engine, if they turn hot again.
TEST(WarmSetTest, OnlyTranslationsOnPagesFetchedSinceTheLastTlbFlushAreMarked) {
  // The loop on the first page, then a jump to the second page, whose sfence.vma empties the TLBs before the ecall.
  std::vector<uint32_t> program = {addi(a0, zero, 0), addi(t0, zero, 1), addi(t1, zero, 101),
                                   add(a0, a0, t0),   addi(t0, t0, 1),   blt(t0, t1, -8),
                                   jal(zero, 0x1000 - 24)};
  program.resize(0x1000 / 4, addi(zero, zero, 0));
  program.insert(program.end(), {sfence_vma(zero, zero), addi(a0, a0, 1), ecall});
  ProgramHart first(program, kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  auto firstStats = runToEcall(first);
  ASSERT_EQ(first.hart->xreg(a0), 5051u);
  const std::vector<uint64_t> keys = first.hart->warmSet();
  ASSERT_GT(firstStats["blocks_translated"], translatedKeys(keys));
  EXPECT_GT(translatedKeys(keys), 0u) << "the block after the sfence.vma";
  for (uint64_t key : keys) {
    if (key & 1) {
      EXPECT_EQ(key & ~0xfffull, kRamBase + 0x1000) << "marked on the page fetched after the flush only";
    }
  }
  EXPECT_TRUE(std::count(keys.begin(), keys.end(), kRamBase + 12)) << "the loop's block, decoded but not marked";

  ProgramHart second(program, kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  EXPECT_EQ(second.hart->prewarm(keys), keys.size());
  EXPECT_EQ(second.stats()["blocks_translated"], translatedKeys(keys));
  runToEcall(second);
  EXPECT_EQ(second.hart->xreg(a0), 5051u);
}

TEST(WarmSetTest, PrewarmDecodesTheCodeInMemoryNow) {
  ProgramHart first(sumProgram(3), kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  runToEcall(first);
  // Another hart's memory holds other code at the same addresses: prewarm reads it, not the keys' past.
  ProgramHart second(sumProgram(7), kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  second.hart->prewarm(first.hart->warmSet());
  runToEcall(second);
  EXPECT_EQ(second.hart->xreg(a0), 5050u * 7);
}

TEST(WarmSetTest, KeysOutsideRamOrStraddlingPagesAreSkipped) {
  ProgramHart program(sumProgram(3), kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  // A 4-byte instruction in the last two bytes of a page is never cached.
  const uint64_t straddling = kRamBase + 0x1ffe;
  const uint32_t word = addi(a0, a0, 1);
  std::memcpy(program.ram.get() + 0x1ffe, &word, 4);
  const std::vector<uint64_t> keys = {0x1000 | 1, kRamBase + kRamSize + 16, straddling | 1, ~0ull};
  EXPECT_EQ(program.hart->prewarm(keys), 0u);
  EXPECT_TRUE(program.hart->warmSet().empty());
  runToEcall(program);
  EXPECT_EQ(program.hart->xreg(a0), 5050u * 3);
}

TEST(WarmSetTest, InterpreterCachesTheBlocksWithoutTranslations) {
  ProgramHart first(sumProgram(3), kRamBase, kRamSize, EngineConfig{EngineKind::Interpreter});
  runToEcall(first);
  const std::vector<uint64_t> keys = first.hart->warmSet();
  ASSERT_FALSE(keys.empty());
  EXPECT_EQ(translatedKeys(keys), 0u);
  ProgramHart second(sumProgram(3), kRamBase, kRamSize, EngineConfig{EngineKind::Interpreter});
  EXPECT_EQ(second.hart->prewarm(keys), keys.size());
  EXPECT_EQ(second.hart->warmSet(), keys);
}

}  // namespace
}  // namespace strata::cpu::test
