// Snapshots and restore with the real default guest: a shell variable and a
// file in /tmp survive PUT /vm/snapshot, the VM's end and `strata run
// --restore DIR`; a truncated, damaged or mismatched snapshot is refused with
// one line and a non-zero exit, nothing run. The sandbox stays on (the default).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

// Boots the default guest, sets X and writes /tmp/f, snapshots it into a new
// directory through the API and shuts the VM down. Returns the directory.
std::string takeSnapshot(const std::string& name) {
  const std::string socket = temporaryPath(name + ".sock");
  const std::string dir = temporaryPath(name);
  ::unlink(socket.c_str());
  runShell("rm -rf " + dir);
  bool snapshotted = false;
  std::string failures;
  auto run = runStrata({"--api-socket", socket}, "X=hello42; echo filedata7 > /tmp/f; echo set-$((40+2))\n",
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
  for (int round = 0; round < 2; ++round) {
    auto run = runStrata({"--restore", dir}, "echo got-$X; cat /tmp/f; echo sum-$((6*7))\npoweroff\n",
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

TEST(Snapshot, MismatchedMemorySizeIsRefused) {
  expectOneLineRefusal(runStrata({"--restore", sharedSnapshot(), "--mem", "512M"}, "", std::chrono::seconds(60)),
                       "snapshot mismatch: memory size");
}

}  // namespace
}  // namespace strata::test
