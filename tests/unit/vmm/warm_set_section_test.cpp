// A snapshot's warm-set section: each hart's translated blocks written by one
// board and read back for another; a section that does not fit the board, or
// is not a list of 64-bit keys, is refused (the clone server then starts its
// clones cold), and a snapshot without one is told apart.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "base/state_stream.h"
#include "cpu/hart.h"
#include "vmm/warm_board.h"

namespace strata::vmm {
namespace {

constexpr uint64_t kBase = 0x80000000;
constexpr uint64_t kSize = 1 << 20;

class NoHost : public cpu::HartHost {
 public:
  uint64_t timeNow() override { return 0; }
  bool supervisorEcall(cpu::Hart&) override { return false; }
};

StateReader readBack(const StateWriter& out) {
  auto reader = StateReader::parse(out.finish());
  EXPECT_TRUE(reader.ok());
  return std::move(*reader);
}

TEST(WarmSetSection, KeysOfEveryHartComeBackForTheirHart) {
  std::vector<uint8_t> ram(kSize);
  const uint32_t loop[] = {0x00150513, 0xffdff06f};  // addi a0, a0, 1; j -4
  std::memcpy(ram.data(), loop, sizeof loop);
  NoHost host;
  std::vector<std::unique_ptr<cpu::Hart>> harts;
  for (unsigned id = 0; id < 2; ++id) {
    harts.push_back(std::make_unique<cpu::Hart>(id, cpu::PhysicalMemory{kBase, kSize, ram.data(), nullptr}, host,
                                                cpu::EngineConfig{cpu::EngineKind::Jit, 1}));
    harts.back()->resetToSupervisorBoot(kBase, 0);
  }
  harts[1]->step(40);  // only the second hart ran: its blocks cached and translated
  std::vector<uint64_t> translated;
  for (uint64_t key : harts[1]->warmSet())
    if (key & 1) translated.push_back(key);
  ASSERT_FALSE(translated.empty());
  StateWriter out;
  saveWarmSets(out, harts);
  StateReader in = readBack(out);
  auto sets = loadWarmSets(in, 2);
  ASSERT_TRUE(sets.ok()) << sets.error().message;
  ASSERT_EQ(sets->size(), 2u);
  EXPECT_TRUE((*sets)[0].empty());
  EXPECT_EQ((*sets)[1], translated) << "the translated blocks only";
}

TEST(WarmSetSection, SectionThatDoesNotFitTheBoardIsRefused) {
  {
    StateWriter out;
    out.beginSection("warm-set", 1);
    out.put(uint32_t{3});
    out.endSection();
    StateReader in = readBack(out);
    auto sets = loadWarmSets(in, 1);
    ASSERT_FALSE(sets.ok());
    EXPECT_NE(sets.error().message.find("hart count"), std::string::npos) << sets.error().message;
  }
  {
    StateWriter out;
    out.beginSection("warm-set", 1);
    out.put(uint32_t{1});
    const uint8_t odd[7] = {};
    out.putBytes(odd);
    out.endSection();
    StateReader in = readBack(out);
    auto sets = loadWarmSets(in, 1);
    ASSERT_FALSE(sets.ok());
    EXPECT_NE(sets.error().message.find("64-bit keys"), std::string::npos) << sets.error().message;
  }
  StateWriter without;
  without.beginSection("other", 1);
  without.endSection();
  StateReader in = readBack(without);
  EXPECT_FALSE(loadWarmSets(in, 1).ok()) << "a snapshot without a warm set";
}

}  // namespace
}  // namespace strata::vmm
