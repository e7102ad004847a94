#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "virtio/console.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

class VirtioConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d.attach(console);
    d.start(0, {16, 16});
  }
  std::string text(uint64_t gpa, size_t len) { return std::string(reinterpret_cast<char*>(d.host(gpa, len)), len); }

  std::string output;
  TestDriver d;
  VirtioConsole console{[this](std::span<const uint8_t> bytes) { output.append(bytes.begin(), bytes.end()); }};
};

TEST_F(VirtioConsoleTest, IdentifiesAsConsole) {
  EXPECT_EQ(d.reg(mmio::kDeviceId), 3u);
  EXPECT_EQ(d.deviceFeatures(), featureBit(kFeatureVersion1) | featureBit(kFeatureEventIdx) |
                                    featureBit(kFeatureIndirectDesc));  // no MULTIPORT, no SIZE
}

TEST_F(VirtioConsoleTest, GuestOutputReachesHandler) {
  d.fill(kDataArea, "hello, ", 7);
  d.fill(kDataArea + 0x100, "world\n", 6);
  d.addChain(1, {{kDataArea, 7, false}, {kDataArea + 0x100, 6, false}});
  d.kick(1);
  ASSERT_TRUE(d.waitUsed(1, 1));
  EXPECT_EQ(output, "hello, world\n");
  EXPECT_EQ(d.used(1, 0).len, 0u);
}

TEST_F(VirtioConsoleTest, InputWaitsForBuffersThenSplitsAcrossThem) {
  const std::string typed = "ls -l /tmp\n";
  console.pushInput(std::span(reinterpret_cast<const uint8_t*>(typed.data()), typed.size()));
  d.runLoopBriefly();
  EXPECT_EQ(d.usedIdx(0), 0);  // nowhere to put it yet
  uint16_t first = d.addChain(0, {{kDataArea, 4, true}});
  uint16_t second = d.addChain(0, {{kDataArea + 0x100, 64, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 2));
  EXPECT_EQ(d.used(0, 0).id, first);
  EXPECT_EQ(d.used(0, 0).len, 4u);
  EXPECT_EQ(text(kDataArea, 4), "ls -");
  EXPECT_EQ(d.used(0, 1).id, second);
  EXPECT_EQ(d.used(0, 1).len, typed.size() - 4);
  EXPECT_EQ(text(kDataArea + 0x100, typed.size() - 4), "l /tmp\n");
  EXPECT_TRUE(d.irq().level);
}

TEST_F(VirtioConsoleTest, InputArrivingLaterFillsPostedBuffer) {
  d.addChain(0, {{kDataArea, 64, true}});
  d.kick(0);
  d.runLoopBriefly();
  EXPECT_EQ(d.usedIdx(0), 0);
  std::thread typist([&] {
    const uint8_t keys[] = {'y', '\r'};
    console.pushInput(keys);
  });
  typist.join();
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(d.used(0, 0).len, 2u);
  EXPECT_EQ(text(kDataArea, 2), "y\r");
}

TEST_F(VirtioConsoleTest, InputSurvivesDriverReset) {
  const uint8_t keys[] = {'a', 'b', 'c'};
  console.pushInput(keys);
  d.runLoopBriefly();
  d.setReg(mmio::kStatus, 0);
  d.start(0, {16, 16});
  d.addChain(0, {{kDataArea, 8, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(text(kDataArea, 3), "abc");
}

}  // namespace
}  // namespace strata::virtio::testing

namespace strata::virtio::testing {
namespace {

TEST(VirtioConsoleDetached, InputBeforeTransportIsKept) {
  VirtioConsole console(nullptr);
  const uint8_t early[] = {'h', 'i'};
  console.pushInput(early);
  TestDriver d;
  d.attach(console);
  d.start(0, {8, 8});
  d.addChain(0, {{kDataArea, 8, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(d.used(0, 0).len, 2u);
  EXPECT_EQ(std::memcmp(d.host(kDataArea, 2), "hi", 2), 0);
}

}  // namespace
}  // namespace strata::virtio::testing
