// A guest discarding its whole thin volume, again and again, must leave the
// host's memory flat: strata's peak RSS (VmHWM, sampled while the VM runs)
// after the discards is compared with the peak just before them.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

// VmHWM of a running process in KiB, or 0 when it cannot be read.
long peakRssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

TEST(GuestDisk, DiscardingAWholeThinVolumeKeepsHostMemoryFlat) {
  std::string dir = temporaryPath("thin-pool");
  ::setenv("STRATA_POOL_DIR", (dir + "/registry").c_str(), 1);
  // 64 GiB of virtual disk on two 256 MiB sparse PVs.
  auto made = runShell("mkdir -p " + dir + " && cd " + dir + " && truncate -s 256M pv1 pv2 && " + strataBinary() +
                       " pool create thinit " + dir + "/pv1 " + dir + "/pv2 && " + strataBinary() +
                       " volume create thinit/tp -s 128M -t thin-pool && " + strataBinary() +
                       " volume create thinit/big -s 64G -t thin --thin-pool tp 2>&1");
  ASSERT_EQ(made.exitCode, 0) << made.output;

  // Some mapped chunks spread over the disk, then whole-disk discards; the
  // guest prints each one's status and waits so the host samples after them.
  // (The markers are printf'd so the console's echo of the typed line does
  // not already contain them.)
  std::string script;
  for (int gib : {0, 1, 20, 63}) script += "dd if=/dev/zero of=/dev/vda bs=64k count=8 seek=" + std::to_string(gib * 16384) + " 2>/dev/null; ";
  script += "sync; printf 'DISCARDS-%s\\n' START; sleep 2; ";
  for (int i = 0; i < 4; ++i) script += "blkdiscard /dev/vda; echo discard-status=$?; ";
  script += "printf 'DISCARDS-%s\\n' END; sleep 2\npoweroff\n";

  long before = 0, after = 0;
  auto run = runStrata({"--disk", "pool:thinit/big"}, script, std::chrono::seconds(240),
                       [&](pid_t pid, const std::string& output) {
                         bool started = output.find("DISCARDS-START") != std::string::npos;
                         bool ended = output.find("DISCARDS-END") != std::string::npos;
                         if (started && !before) before = peakRssKiB(pid);
                         if (ended && !after) after = peakRssKiB(pid);
                       });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  size_t statuses = 0;
  for (size_t at = run.output.find("discard-status=0"); at != std::string::npos;
       at = run.output.find("discard-status=0", at + 1))
    ++statuses;
  EXPECT_EQ(statuses, 4u) << run.output;
  ASSERT_GT(before, 0) << "no VmHWM sample before the discards\n" << run.output;
  ASSERT_GT(after, 0) << "no VmHWM sample after the discards\n" << run.output;
  std::cout << "strata peak RSS: " << before << " KiB before the discards, " << after << " KiB after\n";
  EXPECT_LT(after - before, 16 * 1024) << "the discards grew strata's peak RSS by " << (after - before) << " KiB";
}

}  // namespace
}  // namespace strata::test
