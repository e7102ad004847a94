// A guest must not read host files through its disks' formats. The trick: write
// a qcow2 header naming a host file as backing file into sector 0 of a raw
// disk, reboot, and read the disk, now opened as a qcow2 image over that file.
// A probed raw disk refuses the write, and formats stay as resolved at VM start.
#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

constexpr const char* kSecret = "host-secret-of-another-vm";

// The host side of the trick: a secret file, an empty raw disk for the guest
// and, for the guest to copy from, a qcow2 image whose backing file is the secret.
struct Trick {
  explicit Trick(const std::string& name)
      : root(copyOfRootDisk(name)),
        target(temporaryPath(name + "-target.raw")),
        secret(temporaryPath(name + "-secret.raw")),
        planted(temporaryPath(name + "-planted.qcow2")) {
    auto made = runShell("truncate -s 1M " + target + " && yes " + kSecret + " | head -c 1M > " + secret + " && " +
                         strataBinary() + " image create -f qcow2 -b " + secret + " -F raw " + planted + " 1M 2>&1");
    EXPECT_EQ(made.exitCode, 0) << made.output;
  }
  // What the guest sees in the first 16 bytes of vdb, by their md5sum: the
  // second boot's /autorun prints it and powers off.
  static std::string autorunPrintingVdbHead() {
    return "printf '#!/bin/sh\\necho vdb-head=$(head -c 16 /dev/vdb | md5sum)\\n"
           "exec /sbin/strata-shutdown poweroff\\n' > /autorun\nchmod +x /autorun\n";
  }
  static std::string md5OfFirst16Bytes(const std::string& path) {
    return runShell("head -c 16 " + path + " | md5sum").output.substr(0, 32);
  }

  std::string root, target, secret, planted;
};

TEST(DiskFormat, GuestCannotTurnAProbedRawDiskIntoAQcow2ImageOverAHostFile) {
  Trick trick("format-trick");
  auto run = runStrata({"--disk", trick.root, "--disk", trick.target, "--disk", trick.planted + ",format=raw",
                        "--append", "console=ttyS0 root=/dev/vda"},
                       Trick::autorunPrintingVdbHead() +
                           "dd if=/dev/vdc of=/dev/vdb bs=64k conv=fsync; echo dd-status=$?\nsync\nreboot\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, trick.target + ": no format given, probed as raw"));
  EXPECT_TRUE(contains(run.output, "I/O error, dev vdb, sector 0"));
  EXPECT_TRUE(contains(run.output, "dd-status=1"));
  // After the reboot the disk still reads as the zeroes it held, not as the secret.
  EXPECT_TRUE(contains(run.output, "vdb-head=" + Trick::md5OfFirst16Bytes("/dev/zero")));
  EXPECT_FALSE(contains(run.output, "vdb-head=" + Trick::md5OfFirst16Bytes(trick.secret)));
  EXPECT_EQ(runShell("cmp -n 512 " + trick.target + " /dev/zero").exitCode, 0);
}

TEST(DiskFormat, FormatsStayAsProbedAtStartWhateverTheImageBecomesBeforeAReboot) {
  // The same file is vdb (probed raw) and vdc (named raw, so sector 0 writes are
  // allowed): through vdc the guest makes the file a qcow2 image over the secret.
  // vdb must stay the raw disk it was when the VM started.
  Trick trick("format-fixed");
  auto run = runStrata({"--disk", trick.root, "--disk", trick.target, "--disk", trick.target + ",format=raw",
                        "--disk", trick.planted + ",format=raw", "--append", "console=ttyS0 root=/dev/vda"},
                       Trick::autorunPrintingVdbHead() +
                           "dd if=/dev/vdd of=/dev/vdc bs=64k conv=fsync; echo dd-status=$?\nsync\nreboot\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "dd-status=0"));
  EXPECT_EQ(runShell("cmp -n 512 " + trick.target + " " + trick.planted).exitCode, 0);  // the header is there
  EXPECT_TRUE(contains(run.output, "vdb-head=" + Trick::md5OfFirst16Bytes(trick.planted)));
  EXPECT_FALSE(contains(run.output, "vdb-head=" + Trick::md5OfFirst16Bytes(trick.secret)));
}

TEST(DiskFormat, UnknownFormatAndFormatOfAPoolVolumeAreRefused) {
  auto unknown = runStrata({"--disk", "/tmp/x,format=vmdk"}, "");
  EXPECT_EQ(unknown.exitCode, 2) << unknown.output;
  EXPECT_TRUE(contains(unknown.output, "unknown image format 'vmdk'"));
  auto volume = runStrata({"--disk", "pool:tank/data,format=raw"}, "");
  EXPECT_EQ(volume.exitCode, 2) << volume.output;
  EXPECT_TRUE(contains(volume.output, "a pool volume has no format"));
}

}  // namespace
}  // namespace strata::test
