// A hostile guest (tests/conformance/hostile/virtio_flood.c, bare metal) floods
// virtio-blk with a request head it never gets back and virtio-rng with a
// buffer it reposts as fast as it can. The host must refuse the first (the
// device goes to DEVICE_NEEDS_RESET, warned about a bounded number of times),
// keep its memory flat through both, and still serve an honest read after.
// A guest that generates new code without end (tests/conformance/hostile/
// code_churn.c) must get right results from the translator while its
// translation caches start over instead of growing.
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

// Resident set of a running process in KiB, or 0 once it has exited.
uint64_t residentKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

// The value of `name N` in `strata run --stats` output, or -1 when it is missing.
int64_t statValue(const std::string& output, const std::string& name) {
  size_t at = output.find(" " + name + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(output.substr(at + name.size() + 2));
}

size_t occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

TEST(HostileGuest, VirtioFloodLeavesHostMemoryFlat) {
  std::string disk = temporaryPath("hostile-disk.raw");
  {
    std::ofstream out(disk, std::ios::binary);
    std::string content = "HOSTILE-GUEST-DISK";
    content.resize(1 << 20, '\0');
    out << content;
  }
  // Warm-up (board built, first rounds of the flood) ends after a second.
  auto started = std::chrono::steady_clock::now();
  uint64_t warmKib = 0, peakKib = 0;
  auto run = runStrata({"--bare", std::string(STRATA_CONFORMANCE_DIR) + "/hostile/virtio_flood.elf", "--disk",
                        disk, "--mem", "64M"},
                       "", std::chrono::seconds(120), [&](pid_t pid, const std::string&) {
                                uint64_t kib = residentKib(pid);
                                if (kib == 0) return;
                                if (std::chrono::steady_clock::now() - started < std::chrono::seconds(1)) warmKib = kib;
                                else peakKib = std::max(peakKib, kib);
                              });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "honest read after the flood: ok"));

  // The refusal is reported, but a guest repeating it cannot flood the log.
  size_t warnings = occurrences(run.output, "virtqueue size exceeded");
  EXPECT_GE(warnings, 1u) << run.output;
  EXPECT_LE(warnings, 5u) << run.output;

  ASSERT_GT(warmKib, 0u);
  ASSERT_GT(peakKib, 0u) << "the guest ended within its warm-up second:\n" << run.output;
  EXPECT_LT(peakKib, warmKib + 8 * 1024) << "RSS grew from " << warmKib << " KiB to " << peakKib
                                         << " KiB during the flood:\n" << run.output;
  std::cout << "[ figures  ] RSS after warm-up " << warmKib << " KiB, peak during the flood " << peakKib << " KiB\n"
            << run.output;
}

TEST(HostileGuest, CodeGeneratingGuestRunsInBoundedHostMemory) {
  // 2^19 rounds, each a new function translated once: the 32 MiB code cache
  // and the 64 MiB block arena fill within about 100,000 rounds and start
  // over. RSS is read when the guest reports round 262144 (caches filled and
  // flushed) and at its last round; caches that kept every version would grow
  // by over 200 MiB between the two.
  uint64_t halfwayKib = 0, endKib = 0;
  auto run = runStrata({"--bare", std::string(STRATA_CONFORMANCE_DIR) + "/hostile/code_churn.elf", "--engine",
                        "jit,threshold=1", "--stats"},
                       "", std::chrono::seconds(300), [&](pid_t pid, const std::string& output) {
                         uint64_t kib = residentKib(pid);
                         if (kib == 0) return;
                         if (halfwayKib == 0 && output.find("round 262144") != std::string::npos) halfwayKib = kib;
                         if (endKib == 0 && output.find("round 524288") != std::string::npos) endKib = kib;
                       });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "code churn: ok")) << run.output;
  EXPECT_GE(statValue(run.output, "code_cache_flushes"), 1) << run.output;
  EXPECT_GE(statValue(run.output, "stale_pages_dropped"), 1) << run.output;
  EXPECT_GE(statValue(run.output, "blocks_translated"), 1 << 18) << run.output;
  ASSERT_GT(halfwayKib, 0u) << "RSS not sampled at round 262144:\n" << run.output;
  ASSERT_GT(endKib, 0u) << "RSS not sampled at round 524288:\n" << run.output;
  EXPECT_LT(endKib, halfwayKib + 8 * 1024) << "RSS grew from " << halfwayKib << " KiB to " << endKib << " KiB";
  std::cout << "[ figures  ] RSS at round 262144 " << halfwayKib << " KiB, at round 524288 " << endKib << " KiB\n"
            << run.output;
}

}  // namespace
}  // namespace strata::test
