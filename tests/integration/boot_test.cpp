// Boots the real default guest in `strata run` and checks what it computes.
// Commands are written so that their output differs from their echoed text
// (e.g. `echo $((6*7))` prints 42), so a match proves the guest ran them.
#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

constexpr const char* kUserspaceUp = "strata-guest: userspace up";

TEST(GuestBoot, RunsCommandsFromPipedConsoleAndPowersOff) {
  auto run = runStrata({}, "uname -sm\necho answer=$((6*7))\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, kUserspaceUp));
  EXPECT_TRUE(contains(run.output, "Linux riscv64"));
  EXPECT_TRUE(contains(run.output, "answer=42"));
}

TEST(GuestBoot, BootsTheElfKernel) {
  auto run = runStrata({"--kernel", defaultGuestFile("vmlinux"), "--initrd", defaultGuestFile("initramfs.cpio.gz")},
                       "echo elf-$((5*5))\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "elf-25"));
}

TEST(GuestBoot, KernelPanicExitsNonZeroWithPanicText) {
  auto run = runStrata({}, "echo c > /proc/sysrq-trigger\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_TRUE(contains(run.output, "Kernel panic"));
}

class GuestSmp : public ::testing::TestWithParam<int> {};

TEST_P(GuestSmp, AllHartsComeOnline) {
  int cpus = GetParam();
  auto run = runStrata({"--cpus", std::to_string(cpus)},
                       "echo online=$(cat /sys/devices/system/cpu/online)\n"
                       "echo harts=$(grep -c ^processor /proc/cpuinfo)\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  std::string online = cpus == 1 ? "online=0" : "online=0-" + std::to_string(cpus - 1);
  EXPECT_TRUE(contains(run.output, online + "\r\n"));
  EXPECT_TRUE(contains(run.output, "harts=" + std::to_string(cpus) + "\r\n"));
}

INSTANTIATE_TEST_SUITE_P(Cpus, GuestSmp, ::testing::Values(1, 2, 4));

TEST(GuestSmpWork, ParallelJobsOnFourHartsComputeCorrectResults) {
  // Four processes hash different data at once; the scheduler spreads them over
  // the harts, so wrong atomics, IPIs or remote fences show up as wrong sums or hangs.
  auto run = runStrata({"--cpus", "4"}, parallelHashCommands(4, 60000) + "poweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(hasParallelHashes(run.output, 4, 60000));
}

TEST(GuestBoot, VirtioConsoleRngAndRtcWork) {
  auto run = runStrata({},
                       "echo hvc-$((40+2)) > /dev/hvc0\n"
                       "echo rng=$(cat /sys/class/misc/hw_random/rng_current)\n"
                       "echo random-bytes=$(head -c 8 /dev/hwrng | od -An -tx1 | tr -d ' ' | wc -c)\n"
                       "echo rtc=$(cat /sys/class/rtc/rtc0/name)\n"
                       "echo year-ok=$(( $(date +%Y) >= 2024 ))\n"
                       "poweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "hvc-42"));
  EXPECT_TRUE(contains(run.output, "rng=virtio_rng.0"));
  EXPECT_TRUE(contains(run.output, "random-bytes=17"));  // 16 hex digits + newline
  EXPECT_TRUE(contains(run.output, "rtc=goldfish_rtc"));
  EXPECT_TRUE(contains(run.output, "year-ok=1"));
}

TEST(GuestDisk, FilesWrittenOnExt4RootSurvivePoweroff) {
  std::string disk = copyOfRootDisk("persist");
  auto run = runStrata({"--disk", disk, "--append", "console=ttyS0 root=/dev/vda"},
                       "echo root=$(awk '$2==\"/\"{print $1}' /proc/mounts)\n"
                       "seq 1 5000 > /numbers.txt\n"
                       "echo written-by-guest-$((1+1)) > /hello.txt\nsync\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "root=/dev/vda"));

  auto fsck = runShell("e2fsck -fn " + disk + " 2>&1");
  EXPECT_EQ(fsck.exitCode, 0) << fsck.output;
  auto hello = runShell("debugfs -R 'cat /hello.txt' " + disk + " 2>/dev/null");
  EXPECT_EQ(hello.output, "written-by-guest-2\n");
  auto numbers = runShell("debugfs -R 'cat /numbers.txt' " + disk + " 2>/dev/null | md5sum");
  auto expected = runShell("seq 1 5000 | md5sum");
  EXPECT_EQ(numbers.output, expected.output);
}

TEST(GuestDisk, RebootBootsTheGuestAgain) {
  // The first boot leaves /autorun on the root disk and reboots; the guest's
  // init runs it on the second boot, which proves the reboot happened.
  std::string disk = copyOfRootDisk("reboot");
  auto run = runStrata({"--disk", disk, "--append", "console=ttyS0 root=/dev/vda"},
                       "printf '#!/bin/sh\\necho second-boot-$((6*7))\\nexec /sbin/strata-shutdown poweroff\\n' > /autorun\n"
                       "chmod +x /autorun\nsync\nreboot\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  size_t first = run.output.find("strata-guest: userspace up");
  ASSERT_NE(first, std::string::npos) << run.output;
  EXPECT_NE(run.output.find("strata-guest: userspace up", first + 1), std::string::npos) << run.output;
  EXPECT_TRUE(contains(run.output, "second-boot-42"));
}

TEST(GuestDisk, FstrimDiscardsFreedBlocksInTheImageFile) {
  // 16 MiB written then deleted: fstrim sends virtio-blk DISCARD, which punches
  // holes in the raw image, so the host file does not keep those 16 MiB.
  std::string disk = copyOfRootDisk("trim");
  auto usedKiB = [&] { return std::stol(runShell("du -k " + disk + " | cut -f1").output); };
  long before = usedKiB();
  auto run = runStrata({"--disk", disk, "--append", "console=ttyS0 root=/dev/vda"},
                       "dd if=/dev/zero of=/big bs=1M count=16 2>/dev/null; sync\n"
                       "echo used-after-write=$(du -k /big | cut -f1)\n"
                       "rm /big; sync; fstrim -v /\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "used-after-write=16384"));
  EXPECT_TRUE(contains(run.output, "bytes trimmed"));
  EXPECT_LT(usedKiB(), before + 8 * 1024) << run.output;
}

TEST(GuestDisk, ReadOnlyDiskRefusesWrites) {
  std::string disk = copyOfRootDisk("readonly");
  auto before = runShell("md5sum < " + disk);
  auto run = runStrata({"--disk", disk + ",readonly"},
                       "echo ro=$(cat /sys/block/vda/ro)\n"
                       "mount /dev/vda /mnt 2>&1; echo mounted=$?\n"
                       "echo scribble > /mnt/scribble.txt; echo file-write=$?\n"
                       "dd if=/dev/urandom of=/dev/vda bs=4k count=4 conv=fsync; echo disk-write=$?\n"
                       "poweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "ro=1"));
  EXPECT_TRUE(contains(run.output, "file-write=1"));
  EXPECT_TRUE(contains(run.output, "disk-write=1"));
  EXPECT_EQ(runShell("md5sum < " + disk).output, before.output);
}

}  // namespace
}  // namespace strata::test
