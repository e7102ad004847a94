// A logical volume of a strata pool as a VM disk (`--disk pool:NAME/VOLUME`):
// what one boot writes through RAID 5 reads back byte-exact in the next.
#include <cstdlib>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

TEST(GuestDisk, Raid5VolumeKeepsWhatTheGuestWrote) {
  std::string dir = temporaryPath("pool");
  ::setenv("STRATA_POOL_DIR", (dir + "/registry").c_str(), 1);
  auto made = runShell("mkdir -p " + dir + " && cd " + dir + " && truncate -s 64M pv1 pv2 pv3 && " + strataBinary() +
                       " pool create itpool " + dir + "/pv1 " + dir + "/pv2 " + dir + "/pv3 && " + strataBinary() +
                       " volume create itpool/data -s 32M -t raid5 2>&1");
  ASSERT_EQ(made.exitCode, 0) << made.output;

  auto write = runStrata({"--disk", "pool:itpool/data"}, "seq 1 30000 > /dev/vda; sync\npoweroff\n");
  ASSERT_FALSE(write.timedOut) << write.output;
  ASSERT_EQ(write.exitCode, 0) << write.output;

  auto expected = runShell("seq 1 30000 | md5sum | cut -c1-32");
  auto bytes = runShell("seq 1 30000 | wc -c");
  auto read = runStrata({"--disk", "pool:itpool/data,readonly"},
                        "echo sum=$(head -c " + std::to_string(std::stol(bytes.output)) + " /dev/vda | md5sum)\npoweroff\n");
  ASSERT_FALSE(read.timedOut) << read.output;
  EXPECT_EQ(read.exitCode, 0) << read.output;
  EXPECT_TRUE(contains(read.output, "sum=" + expected.output.substr(0, 32)));
}

TEST(BadInput, UnknownPoolVolume) {
  ::setenv("STRATA_POOL_DIR", temporaryPath("no-pools").c_str(), 1);
  auto run = runStrata({"--disk", "pool:nosuchpool/vol"}, "");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "nosuchpool"));
}

}  // namespace
}  // namespace strata::test
