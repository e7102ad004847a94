// Fairness between devices on one I/O thread: a queue the guest keeps full may
// not hold the loop; after its per-run chain budget the rest of its work waits
// behind the other devices' notifications and completions.
#include <gtest/gtest.h>

#include <vector>

#include "virtio/console.h"
#include "virtio/rng.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

constexpr unsigned kConsoleTransmitQueue = 1;
constexpr uint16_t kConsoleQueueSize = 4;
// Stops the flooding guest eventually, so the test ends even without a budget.
constexpr unsigned kFloodLimit = 20000;

TEST(QueueBudget, FloodedQueueLetsAnotherDeviceRun) {
  TestDriver consoleDriver;
  TestDriver rngDriver(consoleDriver, 0x100000 - 0x40000);  // rings in the last 256 KiB before the data area

  unsigned chainsTransmitted = 0;
  uint16_t usedSeen = 0;
  // The hostile guest: every chunk the console transmits makes it repost each
  // chain the device has returned meanwhile, so the transmit queue never runs dry.
  VirtioConsole console([&](std::span<const uint8_t>) {
    ++chainsTransmitted;
    if (rngDriver.usedIdx(0) > 0 || chainsTransmitted >= kFloodLimit) return;
    for (uint16_t end = consoleDriver.usedIdx(kConsoleTransmitQueue); usedSeen != end; ++usedSeen)
      consoleDriver.makeAvailable(kConsoleTransmitQueue,
                                  static_cast<uint16_t>(consoleDriver.used(kConsoleTransmitQueue, usedSeen).id));
  });
  VirtioRng rng;
  consoleDriver.attach(console);
  rngDriver.attach(rng);
  consoleDriver.start(0, {kConsoleQueueSize, kConsoleQueueSize});
  rngDriver.start(0, {8});

  for (uint16_t i = 0; i < kConsoleQueueSize; ++i)
    consoleDriver.addChain(kConsoleTransmitQueue, {{kDataArea + 0x100ull * i, 1, false}});
  rngDriver.addChain(0, {{kDataArea + 0x10000, 32, true}});
  consoleDriver.kick(kConsoleTransmitQueue);
  rngDriver.kick(0);

  ASSERT_TRUE(rngDriver.waitUsed(0, 1));
  EXPECT_EQ(rngDriver.used(0, 0).len, 32u);
  // Served after at most one console run (the loop runs both drains in order).
  EXPECT_LE(chainsTransmitted, kChainBudgetPerRun) << "the rng request waited for the console's flood";
  EXPECT_FALSE(consoleDriver.needsReset());
  EXPECT_FALSE(rngDriver.needsReset());
}

TEST(QueueBudget, LongQueueIsServedAcrossRuns) {
  // More chains than one run's budget: all are served, through re-posted runs.
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  constexpr uint16_t kSize = 256;
  d.start(0, {kSize});
  for (uint16_t i = 0; i < kSize; ++i) d.addChain(0, {{kDataArea + 0x40ull * i, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, kSize));
  for (uint16_t i = 0; i < kSize; ++i) EXPECT_EQ(d.used(0, i).len, 16u);
  EXPECT_FALSE(d.needsReset());
}

}  // namespace
}  // namespace strata::virtio::testing
