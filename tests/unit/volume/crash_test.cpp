// Crash consistency: a child process writes and flushes through a volume and
// is SIGKILLed at a random moment; the pool must then open and every write
// acknowledged by a completed flush must read back intact. Writes not yet
// covered by a flush may show their old or new contents (per 4 KiB block,
// since an interrupted write may land in part), never anything else; and
// redundant volumes' copies and parity agree again once the pool is open.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "storage/volume/maintenance.h"
#include "storage/volume/pool_format.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

constexpr uint64_t kSlot = 64 << 10;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kVolumeBytes = 8 * kMiB;
constexpr int kRounds = 20;

struct Message {
  char kind;       // 'R' ready, 'I' write issued, 'F' flush completed
  uint32_t slot;
  uint32_t seed;
  uint64_t sequence;  // I: its issue number; F: the last issue number it covers
};

std::vector<uint8_t> slotData(uint32_t seed) {
  return seed == 0 ? std::vector<uint8_t>(kSlot, 0) : pattern(kSlot, seed);
}

// The child: open, then write random slots (three at a time) and flush now and then, forever.
[[noreturn]] void childWriter(const std::vector<std::string>& pvs, int fd, uint32_t round) {
  auto loop = EventLoop::create();
  if (!loop) ::_exit(10);
  auto pool = Pool::open(pvs, {}, **loop);
  if (!pool) ::_exit(11);
  auto device = (*pool)->openVolume("v");
  if (!device) ::_exit(12);
  auto send = [fd](const Message& m) {
    if (::write(fd, &m, sizeof m) != sizeof m) ::_exit(13);
  };
  send({'R', 0, 0, 0});
  std::mt19937 rng(round * 7919 + 1);
  uint64_t issued = 0;
  uint32_t nextSeed = round * 100000 + 1;
  std::vector<std::vector<uint8_t>> buffers(3);
  for (;;) {
    int pending = 0, failed = 0;
    uint32_t used[3] = {~0u, ~0u, ~0u};
    for (int i = 0; i < 3; ++i) {
      uint32_t slot;
      do slot = rng() % (kVolumeBytes / kSlot);
      while (slot == used[0] || slot == used[1]);
      used[i] = slot;
      uint32_t seed = nextSeed++;
      buffers[i] = slotData(seed);
      send({'I', slot, seed, ++issued});
      ++pending;
      (*device)->writev(slot * kSlot, {iovec{buffers[i].data(), kSlot}}, [&](int r) {
        --pending;
        if (r < 0) ++failed;
      });
    }
    while (pending > 0) (*loop)->runOnce(-1);
    if (failed) ::_exit(14);
    if (rng() % 2 == 0) {
      uint64_t covers = issued;
      if (runUntilComplete(**loop, [&](IoCompletion done) { (*device)->flush(std::move(done)); }) < 0) ::_exit(15);
      send({'F', 0, 0, covers});
    }
  }
}

struct SlotState {
  uint32_t durable = 0;  // seed made durable by a flush (0: zeroes)
  std::vector<std::pair<uint64_t, uint32_t>> pending;  // (issue number, seed) after it
};

class CrashTest : public VolumeTest, public ::testing::WithParamInterface<VolumeType> {};

TEST_P(CrashTest, FlushedWritesSurviveSigkill) {
  VolumeType type = GetParam();
  auto pvs = makePvs(4, 40);
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool);
    VolumeCreateOptions o;
    o.sizeBytes = kVolumeBytes;
    o.stripes = type == VolumeType::Raid5 ? 3 : 2;
    if (type == VolumeType::Thin) {
      VolumeCreateOptions tp;
      tp.type = VolumeType::ThinPool;
      tp.sizeBytes = 24 * kMiB;
      ASSERT_TRUE(pool->createVolume("tp", tp).ok());
      o.thinPool = "tp";
    }
    o.type = type;
    auto created = pool->createVolume("v", o);
    ASSERT_TRUE(created.ok()) << created.error().message;
  }
  std::map<uint32_t, SlotState> slots;
  std::mt19937 rng(static_cast<uint32_t>(type) * 31 + 5);
  int verifiedDurable = 0;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      childWriter(pvs, fds[1], static_cast<uint32_t>(round + 1));
    }
    ::close(fds[1]);
    Message ready{};
    ASSERT_EQ(::read(fds[0], &ready, sizeof ready), static_cast<ssize_t>(sizeof ready)) << "child did not start";
    ASSERT_EQ(ready.kind, 'R');
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 40000));
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);

    Message m;
    while (::read(fds[0], &m, sizeof m) == static_cast<ssize_t>(sizeof m)) {
      if (m.kind == 'I') {
        slots[m.slot].pending.push_back({m.sequence, m.seed});
      } else if (m.kind == 'F') {
        for (auto& [slot, state] : slots) {
          while (!state.pending.empty() && state.pending.front().first <= m.sequence) {
            state.durable = state.pending.front().second;
            state.pending.erase(state.pending.begin());
          }
        }
      }
    }
    ::close(fds[0]);

    auto pool = openPool(pvs);
    ASSERT_TRUE(pool) << "round " << round;
    if (isRedundant(type)) {
      // Opening resynced what the write-intent bitmaps marked: copies and parity agree.
      auto scrub = scrubPool(*pool, false, nullptr);
      ASSERT_TRUE(scrub.ok()) << scrub.error().message;
      EXPECT_EQ(scrub->mirrorMismatches + scrub->parityMismatches, 0u) << volumeTypeName(type) << " round " << round;
      EXPECT_GT(scrub->bytesChecked, 0u);
    }
    auto device = openVolume(*pool, "v");
    ASSERT_TRUE(device);
    auto content = readAt(*device, 0, kVolumeBytes);
    for (auto& [slot, state] : slots) {
      std::vector<std::vector<uint8_t>> candidates{slotData(state.durable)};
      for (auto& p : state.pending) candidates.push_back(slotData(p.second));
      uint32_t settled = 0;
      for (uint64_t b = 0; b < kSlot; b += kBlock) {
        const uint8_t* got = content.data() + slot * kSlot + b;
        int match = -1;
        for (size_t c = 0; c < candidates.size() && match < 0; ++c)
          if (std::memcmp(got, candidates[c].data() + b, kBlock) == 0) match = static_cast<int>(c);
        ASSERT_GE(match, 0) << volumeTypeName(type) << " round " << round << " slot " << slot << " block " << b / kBlock
                            << ": matches neither the flushed data nor a later write";
        if (match == 0) ++settled;
      }
      // Settle what is on disk now so the next round starts from it.
      if (!state.pending.empty()) {
        bool allDurable = settled == kSlot / kBlock;
        bool allLast = std::memcmp(content.data() + slot * kSlot, candidates.back().data(), kSlot) == 0;
        if (allDurable || allLast) {
          state.durable = allDurable ? state.durable : state.pending.back().second;
          state.pending.clear();
        } else {
          // A torn, unflushed write: rewrite the slot with known contents.
          state.durable = 0;
          state.pending.clear();
          std::vector<uint8_t> zero(kSlot, 0);
          writeAt(*device, slot * kSlot, zero);
        }
      } else if (state.durable != 0) {
        ++verifiedDurable;
      }
    }
    flush(*device);
  }
  EXPECT_GT(verifiedDurable, 0) << "no flushed write was ever checked";
}

INSTANTIATE_TEST_SUITE_P(EveryType, CrashTest,
                         ::testing::Values(VolumeType::Linear, VolumeType::Striped, VolumeType::Mirror,
                                           VolumeType::Raid5, VolumeType::Raid10, VolumeType::Thin),
                         [](const auto& info) { return std::string(volumeTypeName(info.param)); });

}  // namespace
}  // namespace strata::storage::volume
