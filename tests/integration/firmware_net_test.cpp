// Boots the default kernel behind real M-mode firmware (Debian's OpenSBI
// fw_jump), and exchanges packets between the guest and the host over a real
// TAP device inside a network namespace the test creates.
#include <unistd.h>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

constexpr const char* kOpenSbiFwJump = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf";

TEST(Firmware, OpenSbiFwJumpBootsTheDefaultKernel) {
  ASSERT_EQ(::access(kOpenSbiFwJump, R_OK), 0) << kOpenSbiFwJump << " missing: scripts/setup.sh installs opensbi";
  auto run = runStrata({"--firmware", kOpenSbiFwJump, "--kernel", defaultGuestFile("Image"), "--initrd",
                        defaultGuestFile("initramfs.cpio.gz"), "--cpus", "2"},
                       "echo harts=$(grep -c ^processor /proc/cpuinfo)\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "OpenSBI"));
  EXPECT_TRUE(contains(run.output, "strata-guest: userspace up"));
  EXPECT_TRUE(contains(run.output, "harts=2\r\n"));
}

TEST(Network, GuestPingsHostOverTap) {
  TapNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace with a TAP device here: " << ns.why();
  auto run = runShell("printf 'ip link set eth0 up\\nip addr add 10.77.0.2/24 dev eth0\\n"
                      "ping -c 3 -W 5 10.77.0.1\\necho mac=$(cat /sys/class/net/eth0/address)\\npoweroff\\n' | "
                      "timeout 240 ip netns exec " + ns.name() + " " + strataBinary() + " run --net tap=stap0 2>&1");
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "3 packets transmitted, 3 packets received"));
  EXPECT_TRUE(contains(run.output, "mac=52:54:00:12:34:56"));
}

TEST(Network, MissingTapPermissionOrBadNameIsAClearError) {
  auto run = runStrata({"--net", "tap=" + std::string(40, 'x')}, "");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "--net tap="));
}

}  // namespace
}  // namespace strata::test
