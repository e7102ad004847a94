// A VM boots from a qcow2 linked clone of the default root disk: the guest's
// writes land in the overlay, which qemu-img accepts, and the template stays
// byte-for-byte unchanged.
#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

TEST(GuestDisk, BootsFromQcow2LinkedCloneLeavingTemplateUnchanged) {
  std::string base = copyOfRootDisk("template");
  std::string overlay = temporaryPath("clone.qcow2");
  auto created = runShell(strataBinary() + " image create -f qcow2 -b " + base + " -F raw " + overlay + " 2>&1");
  ASSERT_EQ(created.exitCode, 0) << created.output;
  auto templateBefore = runShell("md5sum < " + base);

  auto run = runStrata({"--disk", overlay, "--append", "console=ttyS0 root=/dev/vda"},
                       "echo clone-$((3*7)) > /in-clone.txt\nsync\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  ASSERT_EQ(run.exitCode, 0) << run.output;

  EXPECT_EQ(runShell("md5sum < " + base).output, templateBefore.output);
  auto check = runShell("qemu-img check " + overlay + " 2>&1");
  EXPECT_EQ(check.exitCode, 0) << check.output;
  std::string flat = temporaryPath("clone-flat.raw");
  auto converted = runShell("qemu-img convert -O raw " + overlay + " " + flat + " 2>&1");
  ASSERT_EQ(converted.exitCode, 0) << converted.output;
  EXPECT_EQ(runShell("e2fsck -fn " + flat + " >/dev/null 2>&1").exitCode, 0);
  EXPECT_EQ(runShell("debugfs -R 'cat /in-clone.txt' " + flat + " 2>/dev/null").output, "clone-21\n");
}

}  // namespace
}  // namespace strata::test
