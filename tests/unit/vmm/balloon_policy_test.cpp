// The automatic balloon's decisions fed host and guest figures by hand: a host
// short of memory inflates an idle guest's balloon up to what the guest can
// spare and never past max; a guest under pressure (little available memory or
// major faults rising) gets memory back at once; a host with room deflates; a
// guest that lies in its statistics never moves the target outside [min, max].
// Also --balloon-auto's parsing and HostMemory reading a meminfo file.
#include "vmm/balloon_autopilot.h"
#include "vmm/balloon_policy.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace strata::vmm {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGuestMemory = 512 * kMiB;

BalloonPolicyConfig config() {
  return {.hostFreeBytes = 1024 * kMiB, .minBytes = 0, .maxBytes = 384 * kMiB, .guestFreeBytes = 64 * kMiB,
          .stepBytes = 32 * kMiB};
}

// Feeds one fresh statistics update per call.
struct Feeder {
  BalloonPolicy policy{config()};
  uint64_t updates = 0;
  BalloonDecision step(uint64_t target, uint64_t hostAvailable, uint64_t guestAvailable, uint64_t inflated,
                       std::optional<uint64_t> majorFaults = 0) {
    return policy.decide(target, {.hostAvailableBytes = hostAvailable,
                                  .statisticsUpdates = ++updates,
                                  .inflatedBytes = inflated,
                                  .guestAvailableBytes = guestAvailable,
                                  .guestMajorFaults = majorFaults});
  }
};

TEST(BalloonPolicy, HostShortOfMemoryInflatesAnIdleGuestAStepAtATime) {
  Feeder f;
  auto d = f.step(0, 512 * kMiB, 450 * kMiB, 0);
  EXPECT_EQ(d.move, BalloonMove::Inflate);
  EXPECT_EQ(d.targetBytes, 32 * kMiB);
  // The guest gave the 32 MiB: its available memory fell by as much.
  d = f.step(d.targetBytes, 512 * kMiB, 418 * kMiB, 32 * kMiB);
  EXPECT_EQ(d.targetBytes, 64 * kMiB);
}

TEST(BalloonPolicy, InflationTakesNoMoreThanTheHostLacks) {
  Feeder f;
  auto d = f.step(0, 1020 * kMiB, 450 * kMiB, 0);
  EXPECT_EQ(d.move, BalloonMove::Inflate);
  EXPECT_EQ(d.targetBytes, 4 * kMiB);
}

TEST(BalloonPolicy, InflationLeavesTheGuestItsFloorCountingWhatItStillOwes) {
  Feeder f;
  // 80 MiB available, floor 64: 16 MiB to spare.
  EXPECT_EQ(f.step(100 * kMiB, 0, 80 * kMiB, 100 * kMiB).targetBytes, 116 * kMiB);
  // The guest has not yet handed over the last 16 MiB: nothing more to take.
  auto d = f.step(116 * kMiB, 0, 80 * kMiB, 100 * kMiB);
  EXPECT_EQ(d.move, BalloonMove::Hold);
  EXPECT_EQ(d.targetBytes, 116 * kMiB);
}

TEST(BalloonPolicy, NeverInflatesPastMax) {
  Feeder f;
  uint64_t target = 0;
  for (int i = 0; i < 40; ++i) target = f.step(target, 0, 4096 * kMiB, target).targetBytes;  // a guest claiming plenty
  EXPECT_EQ(target, 384 * kMiB);
}

TEST(BalloonPolicy, StaleOrMissingStatisticsHold) {
  BalloonPolicy policy(config());
  BalloonSample sample{.hostAvailableBytes = 0, .statisticsUpdates = 0, .inflatedBytes = 0,
                       .guestAvailableBytes = 400 * kMiB, .guestMajorFaults = {}};
  EXPECT_EQ(policy.decide(0, sample).move, BalloonMove::Hold);  // no update yet
  sample.statisticsUpdates = 1;
  EXPECT_EQ(policy.decide(0, sample).move, BalloonMove::Inflate);
  EXPECT_EQ(policy.decide(32 * kMiB, sample).move, BalloonMove::Hold);  // the same update again
  sample.statisticsUpdates = 2;
  sample.guestAvailableBytes.reset();
  EXPECT_EQ(policy.decide(32 * kMiB, sample).move, BalloonMove::Hold);
}

TEST(BalloonPolicy, GuestPressureDeflatesEvenWhileTheHostIsShort) {
  Feeder f;
  // 10 MiB available against a 64 MiB floor: 54 MiB back at once (more than a step).
  auto d = f.step(300 * kMiB, 0, 10 * kMiB, 300 * kMiB);
  EXPECT_EQ(d.move, BalloonMove::DeflateForGuest);
  EXPECT_EQ(d.targetBytes, 246 * kMiB);
  // Just under half the floor: what it lacks (33 MiB, more than a step).
  d = f.step(246 * kMiB, 0, 31 * kMiB, 246 * kMiB);
  EXPECT_EQ(d.targetBytes, 213 * kMiB);
  // Between half the floor and the floor: neither way.
  d = f.step(213 * kMiB, 0, 40 * kMiB, 213 * kMiB);
  EXPECT_EQ(d.move, BalloonMove::Hold);
}

TEST(BalloonPolicy, RisingMajorFaultsArePressure) {
  Feeder f;
  EXPECT_EQ(f.step(200 * kMiB, 0, 300 * kMiB, 200 * kMiB, 1000).move, BalloonMove::Inflate);  // baseline
  EXPECT_EQ(f.step(232 * kMiB, 0, 268 * kMiB, 232 * kMiB, 1050).move, BalloonMove::Inflate);  // within the burst
  auto d = f.step(264 * kMiB, 0, 236 * kMiB, 264 * kMiB, 5000);
  EXPECT_EQ(d.move, BalloonMove::DeflateForGuest);
  EXPECT_EQ(d.targetBytes, 232 * kMiB);
  // A counter that falls (a reboot, or a lie) is a new baseline, not pressure.
  EXPECT_EQ(f.step(232 * kMiB, 0, 268 * kMiB, 232 * kMiB, 3).move, BalloonMove::Inflate);
}

TEST(BalloonPolicy, HostWithRoomGivesMemoryBackDownToMin) {
  BalloonPolicyConfig withMin = config();
  withMin.minBytes = 40 * kMiB;
  BalloonPolicy policy(withMin);
  uint64_t target = 100 * kMiB;
  for (uint64_t update = 1; update <= 10; ++update) {
    auto d = policy.decide(target, {.hostAvailableBytes = 8192 * kMiB, .statisticsUpdates = update,
                                    .inflatedBytes = target, .guestAvailableBytes = 300 * kMiB, .guestMajorFaults = 0});
    if (update == 1) {
      EXPECT_EQ(d.move, BalloonMove::DeflateForHost);
    }
    target = d.targetBytes;
  }
  EXPECT_EQ(target, 40 * kMiB);
  // Within a step of the host's target: no change either way.
  BalloonPolicy near(config());
  auto d = near.decide(100 * kMiB, {.hostAvailableBytes = 1040 * kMiB, .statisticsUpdates = 1, .inflatedBytes = 100 * kMiB,
                                    .guestAvailableBytes = 300 * kMiB, .guestMajorFaults = 0});
  EXPECT_EQ(d.move, BalloonMove::Hold);
  EXPECT_EQ(d.targetBytes, 100 * kMiB);
}

TEST(BalloonPolicy, LyingGuestStaysWithinMinAndMax) {
  BalloonPolicyConfig withMin = config();
  withMin.minBytes = 16 * kMiB;
  BalloonPolicy policy(withMin);
  uint64_t target = 16 * kMiB;
  const uint64_t lies[] = {0, UINT64_MAX, 1, UINT64_MAX / 2, 0, 123456789};
  uint64_t update = 0;
  for (uint64_t host : {uint64_t{0}, UINT64_MAX})
    for (uint64_t available : lies)
      for (uint64_t faults : lies) {
        target = policy
                     .decide(target, {.hostAvailableBytes = host, .statisticsUpdates = ++update, .inflatedBytes = available,
                                      .guestAvailableBytes = available, .guestMajorFaults = faults})
                     .targetBytes;
        EXPECT_GE(target, 16 * kMiB);
        EXPECT_LE(target, 384 * kMiB);
      }
  // A target set outside the bounds (PUT /vm/balloon) is brought back inside.
  EXPECT_EQ(policy.decide(500 * kMiB, {.statisticsUpdates = ++update, .guestAvailableBytes = 40 * kMiB}).targetBytes,
            384 * kMiB);
}

TEST(BalloonAutoOption, ParsesWithDefaultsScaledToTheGuest) {
  auto parsed = parseBalloonAuto("host-free=2G", kGuestMemory, 0);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->hostFreeBytes, 2048 * kMiB);
  EXPECT_EQ(parsed->maxBytes, 384 * kMiB);
  EXPECT_EQ(parsed->guestFreeBytes, 64 * kMiB);
  EXPECT_EQ(parsed->stepBytes, 32 * kMiB);
  EXPECT_EQ(parsed->minBytes, 0u);
  parsed = parseBalloonAuto("guest-free=100M,host-free=1G,max=256M,step=8M", kGuestMemory, 16 * kMiB);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->maxBytes, 256 * kMiB);
  EXPECT_EQ(parsed->guestFreeBytes, 100 * kMiB);
  EXPECT_EQ(parsed->stepBytes, 8 * kMiB);
  EXPECT_EQ(parsed->minBytes, 16 * kMiB);
}

TEST(BalloonAutoOption, RefusesBadSpecs) {
  for (const char* bad : {"", "max=100M", "host-free", "host-free=lots", "host-free=1G,color=red", "host-free=1G,max=1G",
                          "host-free=1G,step=0", "host-free=1G,,max=1M"})
    EXPECT_FALSE(parseBalloonAuto(bad, kGuestMemory, 0)) << bad;
  EXPECT_FALSE(parseBalloonAuto("host-free=1G,max=8M", kGuestMemory, 16 * kMiB));  // below --balloon
}

TEST(HostMemory, ReadsMemAvailableAfreshEachTime) {
  char path[] = "/tmp/strata-meminfo-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n";
  auto memory = HostMemory::open(path);
  ASSERT_TRUE(memory) << memory.error().message;
  EXPECT_EQ(*memory->availableBytes(), 2048u * 1024);
  std::ofstream(path) << "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    4096 kB\n";
  EXPECT_EQ(*memory->availableBytes(), 4096u * 1024);
  std::ofstream(path) << "MemTotal: 1 kB\n";
  EXPECT_FALSE(memory->availableBytes());
  std::remove(path);
  EXPECT_FALSE(HostMemory::open("/nonexistent/meminfo"));
  auto real = HostMemory::open();
  ASSERT_TRUE(real) << real.error().message;
  EXPECT_GT(*real->availableBytes(), 0u);
}

}  // namespace
}  // namespace strata::vmm
