// Snapshots and restore with the real default guest: a shell variable and a
// file in /tmp survive PUT /vm/snapshot, the VM's end and `strata run
// --restore DIR`, which builds the board the snapshot recorded; a truncated,
// damaged or conflicting snapshot or option is refused with one line and a
// non-zero exit, nothing run. The sandbox stays on (the default).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

// Boots the default guest, sets X and writes /tmp/f, snapshots it into a new
// directory through the API and shuts the VM down. Returns the directory.
// `boardOptions` shape the machine the snapshot records.
std::string takeSnapshot(const std::string& name, std::vector<std::string> boardOptions = {}) {
  const std::string socket = temporaryPath(name + ".sock");
  const std::string dir = temporaryPath(name);
  ::unlink(socket.c_str());
  runShell("rm -rf " + dir);
  bool snapshotted = false;
  std::string failures;
  boardOptions.insert(boardOptions.end(), {"--api-socket", socket});
  auto run = runStrata(boardOptions, "X=hello42; echo filedata7 > /tmp/f; echo set-$((40+2))\n",
                       std::chrono::seconds(240), [&](pid_t, const std::string& output) {
                         if (snapshotted || output.find("set-42") == std::string::npos) return;
                         snapshotted = true;
                         auto taken = runShell(strataBinary() + " vm snapshot --api-socket " + socket + " " + dir + " 2>&1");
                         if (taken.exitCode != 0) failures += "snapshot: " + taken.output;
                         runShell(strataBinary() + " vm shutdown --api-socket " + socket + " 2>&1");
                       });
  EXPECT_TRUE(snapshotted) << run.output;
  EXPECT_EQ(failures, "");
  EXPECT_EQ(run.exitCode, 0) << run.output;
  return dir;
}

// The snapshot every refusal test damages a copy of.
const std::string& sharedSnapshot() {
  static const std::string dir = takeSnapshot("snapshot-shared");
  return dir;
}

std::string copyOfSnapshot(const std::string& name) {
  const std::string copy = temporaryPath(name);
  runShell("rm -rf " + copy + " && cp -a --sparse=always " + sharedSnapshot() + " " + copy);
  return copy;
}

void expectOneLineRefusal(const ProcessResult& run, const std::string& text) {
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_FALSE(run.timedOut);
  EXPECT_TRUE(contains(run.output, text));
  EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
}

TEST(Snapshot, RestoredGuestKeepsItsShellVariableAndTmpFile) {
  const std::string dir = takeSnapshot("snapshot-restore");
  struct stat memory {};
  ASSERT_EQ(::stat((dir + "/memory").c_str(), &memory), 0);
  EXPECT_EQ(memory.st_size, 256 << 20);
  EXPECT_LT(memory.st_blocks * 512, memory.st_size) << "the memory file is written sparse";
  // Twice from the same snapshot: restoring maps the file privately and never changes it.
  // The second time with a board option that agrees with the snapshot's.
  for (int round = 0; round < 2; ++round) {
    std::vector<std::string> args{"--restore", dir};
    if (round == 1) args.insert(args.end(), {"--mem", "256M"});
    auto run = runStrata(args, "echo got-$X; cat /tmp/f; echo sum-$((6*7))\npoweroff\n",
                         std::chrono::seconds(120));
    EXPECT_EQ(run.exitCode, 0) << run.output;
    EXPECT_TRUE(contains(run.output, "got-hello42"));
    EXPECT_TRUE(contains(run.output, "\nfiledata7"));
    EXPECT_TRUE(contains(run.output, "sum-42"));
    EXPECT_EQ(run.output.find("Linux version"), std::string::npos) << "the restored guest must not boot again";
  }
}

TEST(Snapshot, TruncatedStateFileIsRefused) {
  const std::string dir = copyOfSnapshot("snapshot-truncated");
  ASSERT_EQ(::truncate((dir + "/state").c_str(), 100), 0);
  expectOneLineRefusal(runStrata({"--restore", dir}, "", std::chrono::seconds(60)), "/state:");
}

TEST(Snapshot, FlippedByteInStateFileIsRefused) {
  const std::string dir = copyOfSnapshot("snapshot-flipped");
  std::fstream state(dir + "/state", std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 200u);
  state.seekp(static_cast<std::streamoff>(bytes.size() / 2));
  state.put(static_cast<char>(bytes[bytes.size() / 2] ^ 0x10));
  state.close();
  expectOneLineRefusal(runStrata({"--restore", dir}, "", std::chrono::seconds(60)), "/state:");
}

TEST(Snapshot, ConflictingBoardOptionsAreRefused) {
  expectOneLineRefusal(runStrata({"--restore", sharedSnapshot(), "--mem", "512M"}, "", std::chrono::seconds(60)),
                       "--mem 512M conflicts with the snapshot's 256M");
  expectOneLineRefusal(runStrata({"--restore", sharedSnapshot(), "--cpus", "2"}, "", std::chrono::seconds(60)),
                       "--cpus 2 conflicts with the snapshot's 1");
  expectOneLineRefusal(
      runStrata({"--restore", sharedSnapshot(), "--disk", "/nonexistent.img"}, "", std::chrono::seconds(60)),
      "--disk /nonexistent.img conflicts with the snapshot's none");
}

// Restore needs no board options: memory, vCPUs, the kernel command line and
// the disk all come from what the snapshot recorded.
TEST(Snapshot, RestoreBuildsTheBoardTheSnapshotRecorded) {
  const std::string disk = copyOfRootDisk("snapshot-board");
  const std::string dir = takeSnapshot(
      "snapshot-board", {"--mem", "320M", "--cpus", "2", "--disk", disk, "--append", "console=ttyS0 quiet board=7"});
  auto run = runStrata({"--restore", dir},
                       "echo cpus-$(nproc); grep -o 'board=[0-9]*' /proc/cmdline; "
                       "echo mem-$(($(awk '/MemTotal/{print $2}' /proc/meminfo) > 280000)); "
                       "echo vda-$(cat /sys/block/vda/size); echo got-$X\npoweroff\n",
                       std::chrono::seconds(120));
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "cpus-2"));
  EXPECT_TRUE(contains(run.output, "\nboard=7"));
  EXPECT_TRUE(contains(run.output, "mem-1"));
  EXPECT_TRUE(contains(run.output, "vda-" + std::to_string(std::stoll(runShell("stat -c %s " + disk).output) / 512)));
  EXPECT_TRUE(contains(run.output, "got-hello42"));
}

// Runs `clones` clones of the snapshot in dir at once, clone i given commandsFor(i).
std::vector<ProcessResult> runClones(const std::string& dir, int clones,
                                     const std::function<std::string(int)>& commandsFor) {
  std::vector<std::future<ProcessResult>> running;
  for (int clone = 0; clone < clones; ++clone)
    running.push_back(std::async(std::launch::async, [&dir, input = commandsFor(clone)] {
      return runStrata({"--restore", dir, "--clone"}, input, std::chrono::seconds(180));
    }));
  std::vector<ProcessResult> results;
  for (auto& run : running) results.push_back(run.get());
  return results;
}

// Clones of one snapshot run at once: each answers with the snapshot's shell
// state and writes its own mark to its disk (a qcow2 overlay next to the
// snapshot), reading back its own; the shared base image never changes.
TEST(Snapshot, ClonesRunAtOnceEachOnItsOwnLinkedCloneDisk) {
  const std::string disk = copyOfRootDisk("snapshot-clones");
  const std::string dir = takeSnapshot("snapshot-clones", {"--disk", disk});
  const std::string baseSum = runShell("md5sum < " + disk).output;
  constexpr int kClones = 3;
  auto results = runClones(dir, kClones, [](int clone) {
    return fmt::format(
        "echo got-$X; echo mark-{0}-$((6*7)) | dd of=/dev/vda bs=512 seek=100 conv=fsync 2>/dev/null\n"
        "echo 3 > /proc/sys/vm/drop_caches; echo read-$(dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | head -1)\n"
        "poweroff\n",
        clone);
  });
  for (int clone = 0; clone < kClones; ++clone) {
    const auto& run = results[clone];
    EXPECT_EQ(run.exitCode, 0) << run.output;
    EXPECT_TRUE(contains(run.output, "got-hello42"));
    EXPECT_TRUE(contains(run.output, fmt::format("read-mark-{}-42", clone)));
  }
  EXPECT_EQ(runShell("md5sum < " + disk).output, baseSum) << "clones write to their overlays, never the base";
  auto overlays = runShell("ls " + dir + "/clone-*-disk0.qcow2 | wc -l");
  EXPECT_EQ(std::stoi(overlays.output), kClones) << overlays.output;
  auto checked = runShell("for f in " + dir + "/clone-*-disk0.qcow2; do " + strataBinary() + " image check $f || exit 1; done");
  EXPECT_EQ(checked.exitCode, 0) << checked.output;
}

// The 16-byte VM generation id at its device-tree address (virt::kVmGenIdBase),
// read as two 64-bit words: different in every clone.
TEST(Snapshot, EveryCloneReadsItsOwnGenerationId) {
  constexpr int kClones = 3;
  auto results = runClones(sharedSnapshot(), kClones, [](int) {
    return "[ -e /dev/mem ] || mknod /dev/mem c 1 1; echo gen-$(devmem 0x105000 64)$(devmem 0x105008 64)\npoweroff\n";
  });
  if (results[0].output.find("can't open '/dev/mem'") != std::string::npos)
    GTEST_SKIP() << "the default guest's kernel has no /dev/mem: rebuild it (guest/build.sh) with "
                    "guest/kernel.config's CONFIG_DEVMEM";
  std::set<std::string> generations;
  for (const auto& run : results) {
    EXPECT_EQ(run.exitCode, 0) << run.output;
    size_t at = run.output.find("gen-0x");
    ASSERT_NE(at, std::string::npos) << run.output;
    generations.insert(run.output.substr(at, 40));
  }
  EXPECT_EQ(generations.size(), static_cast<size_t>(kClones)) << "every clone has its own generation id";
}

TEST(Snapshot, CloneWithoutRestoreIsRefused) {
  auto run = runStrata({"--clone"}, "", std::chrono::seconds(60));
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "--clone requires --restore"));
  EXPECT_EQ(run.output.find("Linux version"), std::string::npos);
}

}  // namespace
}  // namespace strata::test
