// A virtio-mmio transport saved mid-use and loaded into a freshly built one
// continues the guest's queues from the saved ring positions.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "base/state_stream.h"
#include "virtio/console.h"
#include "virtio/rng.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

StateReader saved(const VirtioMmioTransport& transport) {
  StateWriter writer;
  transport.save(writer);
  auto reader = StateReader::parse(writer.finish());
  EXPECT_TRUE(reader.ok());
  return std::move(reader).value();
}

TEST(TransportSnapshot, RestoredQueueContinuesFromTheSavedPositions) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {8});
  for (uint16_t n = 1; n <= 3; ++n) {
    d.addChain(0, {{kDataArea + 64u * n, 16, true}});
    d.kick(0);
    ASSERT_TRUE(d.waitUsed(0, n));
  }
  auto reader = saved(d.transport());
  // Chains already used must not be consumed again: a device starting over
  // at avail index 0 would overwrite this pattern with random bytes.
  const std::vector<uint8_t> pattern(256, 0x5c);
  d.fill(kDataArea, pattern.data(), pattern.size());

  VirtioRng freshRng;
  d.attach(freshRng);  // a new transport on the same guest RAM: what a restore builds
  auto loaded = d.transport().load(reader);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(d.reg(mmio::kStatus) & kStatusDriverOk, kStatusDriverOk);
  d.setReg(mmio::kQueueSel, 0);
  EXPECT_EQ(d.reg(mmio::kQueueReady), 1u);
  EXPECT_EQ(d.reg(mmio::kQueueNum), 8u);

  uint16_t head = d.addChain(0, {{kDataArea + 512, 24, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 4)) << "the restored device did not continue at used index 3";
  EXPECT_EQ(d.used(0, 3).id, head);
  EXPECT_EQ(d.used(0, 3).len, 24u);
  d.runLoopBriefly();
  EXPECT_EQ(d.usedIdx(0), 4);
  EXPECT_EQ(std::memcmp(d.host(kDataArea, 256), pattern.data(), 256), 0);
}

TEST(TransportSnapshot, RestoredQueueLeavesTheUsedRingUnwrittenUntilItMoves) {
  // A clone shares the snapshot's RAM copy-on-write: a restored device that
  // rewrote its rings with the values they hold would copy their pages in
  // every clone. avail_event is only written when it changes.
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(featureBit(kFeatureEventIdx), {8});
  d.addChain(0, {{kDataArea, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  d.runLoopBriefly();
  ASSERT_EQ(d.availEvent(0), 1);
  auto reader = saved(d.transport());

  DirtyBitmap& written = d.ram().dirtyLog();
  written.setLogging(true);
  VirtioRng freshRng;
  d.attach(freshRng);
  auto loaded = d.transport().load(reader);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  d.runLoopBriefly();  // the restored queue is activated and looked at
  std::vector<uint64_t> pages;
  written.takeMarked(pages);
  EXPECT_EQ(pages, std::vector<uint64_t>{}) << "the restore wrote guest RAM";

  d.addChain(0, {{kDataArea + 64, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 2));
  d.runLoopBriefly();
  EXPECT_EQ(d.availEvent(0), 2);
  written.takeMarked(pages);
  const uint64_t usedPage = (d.usedRing(0) - kRamBase) >> DirtyBitmap::kPageShift;
  EXPECT_NE(std::find(pages.begin(), pages.end(), usedPage), pages.end());
}

TEST(TransportSnapshot, ConsoleInputNotYetDeliveredSurvives) {
  TestDriver d;
  VirtioConsole console([](std::span<const uint8_t>) {});
  d.attach(console);
  d.start(0, {16, 16});
  const uint8_t typed[] = {'l', 's', '\n'};
  console.pushInput(typed);  // no receive buffer posted yet: the input waits
  d.runLoopBriefly();
  auto reader = saved(d.transport());

  VirtioConsole restored([](std::span<const uint8_t>) {});
  d.attach(restored);
  ASSERT_TRUE(d.transport().load(reader).ok());
  d.addChain(0, {{kDataArea, 64, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  ASSERT_EQ(d.used(0, 0).len, 3u);
  EXPECT_EQ(std::memcmp(d.host(kDataArea, 3), typed, 3), 0);
}

TEST(TransportSnapshot, RefusesFeaturesTheDeviceDoesNotOffer) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {8});
  StateWriter writer;
  d.transport().save(writer);
  std::vector<uint8_t> file = writer.finish();
  // driverFeatures_ follows the header (24 bytes), the section header
  // ("virtio-test": 2 + 11 + 4 + 8), the queue count and six registers.
  const size_t featuresAt = 24 + 25 + 4 + 6 * 4;
  StateWriter forged;
  forged.beginSection("virtio-test", 1);
  for (size_t at = 24 + 25; at < file.size(); ++at) forged.put<uint8_t>(at == featuresAt + 7 ? 0x80 : file[at]);
  forged.endSection();
  auto reader = StateReader::parse(forged.finish());
  ASSERT_TRUE(reader.ok());
  VirtioRng freshRng;
  d.attach(freshRng);
  auto loaded = d.transport().load(*reader);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("features"), std::string::npos) << loaded.error().message;
}

}  // namespace
}  // namespace strata::virtio::testing
