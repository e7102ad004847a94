// Snapshots and restore with the real default guest: a shell variable and a
// file in /tmp survive PUT /vm/snapshot, the VM's end and `strata run
// --restore DIR`, which builds the board the snapshot recorded; a truncated,
// damaged or conflicting snapshot or option is refused with one line and a
// non-zero exit, nothing run. The sandbox stays on (the default).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "base/event_loop.h"
#include "base/unix_socket.h"
#include "child_process.h"
#include "guest_runner.h"
#include "storage/sync_io.h"
#include "storage/volume/volume_disk.h"

namespace strata::test {
namespace {

// Boots the default guest, sets X and writes /tmp/f, snapshots it into a new
// directory through the API and shuts the VM down. Returns the directory.
// `boardOptions` shape the machine the snapshot records; `snapshotFlags` go to `strata vm snapshot`.
std::string takeSnapshot(const std::string& name, std::vector<std::string> boardOptions = {},
                         const std::string& snapshotFlags = "") {
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
                         auto taken = runShell(strataBinary() + " vm snapshot --api-socket " + socket + snapshotFlags + " " +
                                              dir + " 2>&1");
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

// A snapshot names its boot files from the root: a VM started with paths relative to its
// directory restores from any other (the restored VM's sandbox allows its kernel, which a reset
// loads again).
TEST(Snapshot, VmStartedWithRelativeBootFilesRestoresFromAnotherDirectory) {
  const std::filesystem::path bootDir = temporaryPath("snapshot-relative-boot");
  std::filesystem::remove_all(bootDir);
  std::filesystem::create_directories(bootDir);
  std::filesystem::create_symlink(defaultGuestFile("Image"), bootDir / "Image");
  std::filesystem::create_symlink(defaultGuestFile("initramfs.cpio.gz"), bootDir / "initrd");
  const auto testDir = std::filesystem::current_path();
  std::filesystem::current_path(bootDir);  // the snapshotted VM starts here
  const std::string dir = takeSnapshot("snapshot-relative", {"--kernel", "Image", "--initrd", "initrd"});
  std::filesystem::current_path(testDir);
  auto run = runShell("cd / && printf 'echo got-$X-$((6*7))\\npoweroff\\n' | timeout 120 " + strataBinary() +
                      " run --restore " + dir + " 2>&1");
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "got-hello42-42"));
}

// The HTTP module (base/http_module.h) is loaded only by a VM serving --api-socket (the
// snapshot's own boot used it: `strata vm snapshot` answered). A restored VM without one maps
// neither the module nor the libraries cpp-httplib needs, which cost every start ~150 page faults.
// Nor the TLS module (storage/tls_module.h), GnuTLS, and p11-kit and libffi, which GnuTLS needs.
TEST(Snapshot, RestoreWithoutApiSocketLoadsNoHttpLibrary) {
  std::string maps;
  auto run = runStrata({"--restore", sharedSnapshot()}, "echo up-$((6*7)); sleep 2\npoweroff\n", std::chrono::seconds(120),
                       [&](pid_t pid, const std::string& output) {
                         if (maps.empty() && output.find("up-42") != std::string::npos)
                           maps = runShell(fmt::format("cat /proc/{}/maps", pid)).output;
                       });
  EXPECT_EQ(run.exitCode, 0) << run.output;
  ASSERT_TRUE(contains(maps, "/strata")) << "no maps read while the guest ran";
  for (const char* library : {"strata-http.so", "libcpp-httplib", "libssl", "libcrypto", "libbrotli", "strata-tls.so",
                              "libgnutls", "libp11-kit", "libffi"})
    EXPECT_FALSE(contains(maps, library)) << maps;
}

// --compress: DIR/memory.zst instead of DIR/memory, smaller than the sparse
// file's data; the restored guest is the same; a damaged byte in it is refused.
TEST(Snapshot, CompressedSnapshotRestoresTheSameGuest) {
  const std::string dir = takeSnapshot("snapshot-zst", {}, " --compress");
  struct stat compressed {}, sparse {};
  ASSERT_EQ(::stat((dir + "/memory.zst").c_str(), &compressed), 0);
  EXPECT_NE(::access((dir + "/memory").c_str(), F_OK), 0);
  ASSERT_EQ(::stat((sharedSnapshot() + "/memory").c_str(), &sparse), 0);
  EXPECT_LT(compressed.st_size, sparse.st_blocks * 512) << "the same guest's sparse memory file holds more";
  auto run = runStrata({"--restore", dir}, "echo got-$X; cat /tmp/f; echo sum-$((6*7))\npoweroff\n",
                       std::chrono::seconds(120));
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "got-hello42"));
  EXPECT_TRUE(contains(run.output, "\nfiledata7"));
  EXPECT_TRUE(contains(run.output, "sum-42"));

  std::fstream memory(dir + "/memory.zst", std::ios::in | std::ios::out | std::ios::binary);
  memory.seekg(compressed.st_size / 2);
  char byte = 0;
  memory.get(byte);
  memory.seekp(compressed.st_size / 2);
  memory.put(static_cast<char>(byte ^ 0x44));
  memory.close();
  expectOneLineRefusal(runStrata({"--restore", dir}, "", std::chrono::seconds(60)),
                       "memory.zst: damaged compressed memory file");
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

// Types `text` into the guest through the VM's --console-socket.
bool typeIntoConsole(const std::string& socketPath, const std::string& text) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  socketPath.copy(address.sun_path, sizeof address.sun_path - 1);
  bool sent = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (fd >= 0) ::close(fd);
  return sent;
}

// The first 8 hex digits of the md5 of a host shell command's output, as the guest prints them.
std::string md5Prefix(const std::string& command) { return runShell(command + " | md5sum | cut -c1-8").output.substr(0, 8); }

// The file system in a qcow2 chain, flattened: e2fsck -fn's verdict and /data's md5 prefix.
std::pair<ProcessResult, std::string> checkChain(const std::string& top, const std::string& name) {
  const std::string flat = temporaryPath(name + "-flat.raw");
  auto converted = runShell("rm -f " + flat + " && qemu-img convert -O raw " + top + " " + flat + " 2>&1");
  EXPECT_EQ(converted.exitCode, 0) << converted.output;
  return {runShell("e2fsck -fn " + flat + " 2>&1"), md5Prefix("debugfs -R 'cat /data' " + flat + " 2>/dev/null")};
}

// The contents of /data before and after the guest's rewrite, as md5 prefixes.
const std::string& dataBefore() {
  static const std::string sum = md5Prefix("seq 1 40000");
  return sum;
}
const std::string& dataAfter() {
  static const std::string sum = md5Prefix("seq 7 90000");
  return sum;
}

// One line: `read go` waits for the line typed after the snapshot (or, restored, the first line of input).
constexpr const char* kRewriteDataScript =
    "seq 1 40000 > /data; sync; echo one-$(md5sum < /data | cut -c1-8); read go; echo 3 > /proc/sys/vm/drop_caches; "
    "echo seen-$(md5sum < /data | cut -c1-8); seq 7 90000 > /data; sync; echo two-$(md5sum < /data | cut -c1-8); "
    "poweroff\n";

// Boots `disk` as the root disk: the guest writes /data, is snapshotted into
// `dir` with resume (then `atSnapshot` runs), reads /data back from its disk
// (page cache dropped) and writes different data. Returns the failures.
std::string writeSnapshotRewrite(const std::string& name, const std::string& disk, const std::string& dir,
                                 const std::function<void()>& atSnapshot = {}) {
  const std::string socket = temporaryPath(name + ".sock"), consoleSocket = temporaryPath(name + "-console.sock");
  runShell("rm -rf " + dir + " " + socket + " " + consoleSocket);
  const std::vector<std::string> args{"--disk",       disk,   "--append", "console=ttyS0 root=/dev/vda",
                                      "--api-socket", socket, "--console", "stdio",
                                      "--console-socket", consoleSocket};
  bool snapshotted = false;
  std::string failures;
  auto run = runStrata(args, kRewriteDataScript, std::chrono::seconds(240), [&](pid_t, const std::string& output) {
    if (snapshotted || output.find("one-" + dataBefore()) == std::string::npos) return;
    snapshotted = true;
    auto taken = runShell(strataBinary() + " vm snapshot --api-socket " + socket + " " + dir + " 2>&1");
    if (taken.exitCode != 0) failures += "snapshot: " + taken.output;
    if (atSnapshot) atSnapshot();
    if (!typeIntoConsole(consoleSocket, "go\n")) failures += "typing into the console socket failed";
  });
  if (!snapshotted) failures += "no snapshot taken: " + run.output;
  if (run.exitCode != 0) failures += "the VM failed: " + run.output;
  if (!contains(run.output, "seen-" + dataBefore()) || !contains(run.output, "two-" + dataAfter()))
    failures += "the guest did not read back and rewrite /data: " + run.output;
  return failures;
}

// Restores `dir` twice; each restored guest must read /data as at the snapshot
// and write its own. `afterEach` checks what must not have changed.
void restoreTwice(const std::string& dir, const std::function<void()>& afterEach) {
  for (int round = 0; round < 2; ++round) {
    auto restored = runStrata({"--restore", dir}, "go\n", std::chrono::seconds(180));
    EXPECT_EQ(restored.exitCode, 0) << restored.output;
    EXPECT_TRUE(contains(restored.output, "seen-" + dataBefore())) << "round " << round;
    EXPECT_TRUE(contains(restored.output, "two-" + dataAfter()));
    afterEach();
  }
}

// A guest writes /data on its qcow2 root disk; a snapshot with resume puts an
// overlay on that disk, the guest writes different data, which lands in the
// overlay. Each of two restores of the snapshot reads /data from its disk (page
// cache dropped) as it was at the snapshot and writes its own, which go to its
// own overlay beside the snapshot: the snapshot's image never changes.
TEST(Snapshot, QcowDiskGetsAnOverlaySoRestoresSeeItAsAtTheSnapshot) {
  const std::string base = copyOfRootDisk("snapdisk");
  const std::string disk = temporaryPath("snapdisk.qcow2");
  const std::string dir = temporaryPath("snapdisk-snap");
  const std::string overlay = temporaryPath("snapdisk.snapdisk-snap.qcow2");  // beside the disk, named after DIR
  runShell("rm -rf " + disk + " " + overlay);
  auto created = runShell(strataBinary() + " image create -f qcow2 -b " + base + " -F raw " + disk + " 2>&1");
  ASSERT_EQ(created.exitCode, 0) << created.output;
  std::string diskSum;
  EXPECT_EQ(writeSnapshotRewrite("snapdisk", disk, dir, [&] { diskSum = runShell("md5sum < " + disk).output; }), "");

  EXPECT_EQ(runShell("md5sum < " + disk).output, diskSum) << "the VM wrote on into its overlay only";
  auto [liveFsck, liveData] = checkChain(overlay, "snapdisk-live");
  EXPECT_EQ(liveFsck.exitCode, 0) << liveFsck.output;
  EXPECT_EQ(liveData, dataAfter()) << "the VM wrote on into its overlay";
  restoreTwice(dir, [&] {
    EXPECT_EQ(runShell("md5sum < " + disk).output, diskSum) << "the snapshot's image is never written again";
  });
  auto restores = runShell("ls " + dir + "/restore-*-disk0.qcow2");
  ASSERT_EQ(std::count(restores.output.begin(), restores.output.end(), '\n'), 2) << restores.output;
  const std::string lastRestore = restores.output.substr(restores.output.find('\n') + 1, restores.output.size() - restores.output.find('\n') - 2);
  for (const auto& image : {disk, overlay, lastRestore}) {
    auto check = runShell("qemu-img check " + image + " 2>&1");
    EXPECT_EQ(check.exitCode, 0) << image << ": " << check.output;
  }
  auto [restoredFsck, restoredData] = checkChain(lastRestore, "snapdisk-restored");
  EXPECT_EQ(restoredFsck.exitCode, 0) << restoredFsck.output;
  EXPECT_EQ(restoredData, dataAfter());
}

// A pool volume's bytes in a new raw file, read through the volume manager as `strata run` does.
bool copyVolumeToFile(const std::string& pv, const std::string& volume, const std::string& file) {
  auto loop = EventLoop::create();
  if (!loop) return false;
  auto device = storage::volume::openVolume({pv}, volume, {.readOnly = true}, **loop);
  if (!device) {
    ADD_FAILURE() << volume << ": " << device.error().message;
    return false;
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  std::vector<char> buffer(1 << 20);
  for (uint64_t offset = 0; offset < (*device)->sizeBytes(); offset += buffer.size()) {
    if (auto read = storage::readSync(**device, **loop, offset, buffer.data(), buffer.size()); !read) {
      ADD_FAILURE() << volume << ": " << read.error().message;
      return false;
    }
    out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  }
  return static_cast<bool>(out.flush());
}

// The file system on a pool volume: e2fsck -fn's verdict and /data's md5 prefix.
std::pair<ProcessResult, std::string> checkVolume(const std::string& pv, const std::string& volume) {
  const std::string flat = temporaryPath(volume + "-flat.raw");
  EXPECT_TRUE(copyVolumeToFile(pv, volume, flat)) << volume;
  return {runShell("e2fsck -fn " + flat + " 2>&1"), md5Prefix("debugfs -R 'cat /data' " + flat + " 2>/dev/null")};
}

// The same with the root file system on a thin pool volume: the snapshot takes
// a read-only thin snapshot of it (VOLUME.DIRNAME) while the guest writes on
// to the volume; each restore runs on its own thin clone of that snapshot.
TEST(Snapshot, ThinVolumeGetsAVolumeSnapshotSoRestoresSeeItAsAtTheSnapshot) {
  const std::string pool = temporaryPath("thinsnap"), pv = pool + "/pv1";
  ::setenv("STRATA_POOL_DIR", (pool + "/registry").c_str(), 1);
  const std::string strata = strataBinary();
  auto made = runShell("rm -rf " + pool + " && mkdir -p " + pool + " && truncate -s 384M " + pv + " && " + strata +
                       " pool create thinsnap " + pv + " && " + strata +
                       " volume create thinsnap/tp -s 320M -t thin-pool && " + strata +
                       " volume create thinsnap/root -s 64M -t thin --thin-pool tp 2>&1");
  ASSERT_EQ(made.exitCode, 0) << made.output;
  // The root file system onto the volume, by a guest booted from its initramfs.
  // sync writes a block device's cache but sends no flush: the thin volume's new
  // mappings are recorded only because the ending VM flushes its disks itself.
  auto copied = runStrata({"--disk", copyOfRootDisk("thinsnap") + ",readonly", "--disk", "pool:thinsnap/root"},
                          "dd if=/dev/vda of=/dev/vdb bs=1M 2>/dev/null; echo copied-$?; sync\npoweroff\n");
  ASSERT_TRUE(contains(copied.output, "copied-0"));

  const std::string dir = temporaryPath("thinsnap-snap");
  EXPECT_EQ(writeSnapshotRewrite("thinsnap", "pool:thinsnap/root", dir), "");
  auto [liveFsck, liveData] = checkVolume(pv, "root");
  EXPECT_EQ(liveFsck.exitCode, 0) << liveFsck.output;
  EXPECT_EQ(liveData, dataAfter()) << "the VM wrote on to its volume";
  auto snapshotUnchanged = [&] {
    auto [fsck, data] = checkVolume(pv, "root.thinsnap-snap");
    EXPECT_EQ(fsck.exitCode, 0) << fsck.output;
    EXPECT_EQ(data, dataBefore()) << "the thin snapshot keeps the disk as at the snapshot";
  };
  snapshotUnchanged();
  restoreTwice(dir, snapshotUnchanged);
  auto clones = runShell(strata + " volume list thinsnap | grep -o 'root.thinsnap-snap.restore-[0-9]*'");
  ASSERT_EQ(std::count(clones.output.begin(), clones.output.end(), '\n'), 2) << clones.output;
  auto [restoredFsck, restoredData] = checkVolume(pv, clones.output.substr(0, clones.output.find('\n')));
  EXPECT_EQ(restoredFsck.exitCode, 0) << restoredFsck.output;
  EXPECT_EQ(restoredData, dataAfter());

  // A restore refused once its thin clone exists (the memory file is found
  // short) removes that clone again.
  runShell("truncate -s 1M " + dir + "/memory");
  expectOneLineRefusal(runStrata({"--restore", dir}, "", std::chrono::seconds(60)), "memory file holds 1048576 bytes");
  auto left = runShell(strata + " volume list thinsnap | grep -c 'root.thinsnap-snap.restore-'");
  EXPECT_EQ(left.output, "2\n") << "the refused restore's thin clone stays";
}

// A restore refused after it made its disk's overlay (the memory file found
// short, checked after the disks are open) leaves no overlay behind.
TEST(Snapshot, RefusedRestoreLeavesNoOverlayBehind) {
  const std::string dir = takeSnapshot("leftover", {"--disk", copyOfRootDisk("leftover")});
  runShell("truncate -s 1M " + dir + "/memory");
  expectOneLineRefusal(runStrata({"--restore", dir}, "", std::chrono::seconds(60)), "memory file holds 1048576 bytes");
  EXPECT_EQ(runShell("ls " + dir).output, "memory\nstate\n") << "the refused restore's overlay stays";
}

// A writable pool volume that is not thin has neither overlay nor thin
// snapshot: a snapshot that would let the VM run on is refused (409) and the
// VM keeps running; one that leaves it paused is taken.
TEST(Snapshot, PoolVolumeDiskIsSnapshottedOnlyWithoutResuming) {
  const std::string pool = temporaryPath("snapvol");
  ::setenv("STRATA_POOL_DIR", (pool + "/registry").c_str(), 1);
  auto made = runShell("rm -rf " + pool + " && mkdir -p " + pool + " && truncate -s 64M " + pool + "/pv1 && " +
                       strataBinary() + " pool create snapvol " + pool + "/pv1 && " + strataBinary() +
                       " volume create snapvol/data -s 32M 2>&1");
  ASSERT_EQ(made.exitCode, 0) << made.output;
  const std::string socket = temporaryPath("snapvol.sock"), dir = temporaryPath("snapvol-snap");
  ::unlink(socket.c_str());
  bool asked = false;
  ProcessResult resumed, status, paused;
  auto run = runStrata({"--disk", "pool:snapvol/data", "--api-socket", socket}, "echo up-$((6*7))\n",
                       std::chrono::seconds(240), [&](pid_t, const std::string& output) {
                         if (asked || output.find("up-42") == std::string::npos) return;
                         asked = true;
                         const std::string vm = strataBinary() + " vm ";
                         resumed = runShell(vm + "snapshot --api-socket " + socket + " " + dir + " 2>&1");
                         status = runShell(vm + "status --api-socket " + socket + " --json 2>&1");
                         paused = runShell(vm + "snapshot --no-resume --api-socket " + socket + " " + dir + " 2>&1");
                         runShell(vm + "shutdown --api-socket " + socket + " 2>&1");
                       });
  ASSERT_TRUE(asked) << run.output;
  EXPECT_NE(resumed.exitCode, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "disk pool:snapvol/data is a pool volume"));
  EXPECT_TRUE(contains(status.output, "\"running\""));
  EXPECT_EQ(paused.exitCode, 0) << paused.output;
  EXPECT_TRUE(contains(paused.output, "VM paused"));
  EXPECT_EQ(::access((dir + "/state").c_str(), F_OK), 0);
}

TEST(Snapshot, CloneWithoutRestoreIsRefused) {
  auto run = runStrata({"--clone"}, "", std::chrono::seconds(60));
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "--clone requires --restore"));
  EXPECT_EQ(run.output.find("Linux version"), std::string::npos);
}


// ---- The clone server (`strata run --restore DIR --clone-server SOCKET`) ----

// A clone server on `dir`, killed at the end of the test; clients are `strata run --clone --clone-server`.
class CloneServer {
 public:
  CloneServer(const std::string& dir, const std::string& name)
      : dir_(dir), socket_(freshPath(name + ".clones")), log_(temporaryPath(name + "-server.log")),
        process_({strataBinary(), "run", "--restore", dir, "--clone-server", socket_}, "", log_) {}

  // Whether it listens (it restores and warms the snapshot first), at most 60 s.
  bool up() {
    for (int i = 0; i < 600 && process_.running() && !contains(process_.output(), "clone server on"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return contains(process_.output(), "clone server on") && ::access(socket_.c_str(), F_OK) == 0;
  }
  bool running() { return !process_.wait(std::chrono::seconds(0)); }
  std::string log() const { return process_.output(); }
  const std::string& socket() const { return socket_; }

  ProcessResult clone(const std::string& input, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"--restore", dir_, "--clone", "--clone-server", socket_};
    args.insert(args.end(), extra.begin(), extra.end());
    return runStrata(args, input, std::chrono::seconds(180));
  }
  // Clones at once, clone i given commandsFor(i).
  std::vector<ProcessResult> clones(int count, const std::function<std::string(int)>& commandsFor) const {
    std::vector<std::future<ProcessResult>> running;
    for (int clone = 0; clone < count; ++clone)
      running.push_back(std::async(std::launch::async, [this, input = commandsFor(clone)] { return this->clone(input); }));
    std::vector<ProcessResult> results;
    for (auto& run : running) results.push_back(run.get());
    return results;
  }

 private:
  static std::string freshPath(const std::string& name) {
    std::string path = temporaryPath(name);
    ::unlink(path.c_str());
    return path;
  }
  std::string dir_, socket_, log_;
  Child process_;
};

// The text after `prefix` in output, up to the end of its line (a prefix the typed command, echoed, does not hold).
std::string valueAfter(const std::string& output, const std::string& prefix) {
  size_t at = output.find(prefix);
  if (at == std::string::npos) return "";
  at += prefix.size();
  return output.substr(at, output.find_first_of("\r\n", at) - at);
}

// The pids of the clones the server's log says it started, and of those it says ended.
std::pair<std::set<std::string>, std::set<std::string>> clonePids(const std::string& log) {
  std::set<std::string> started, ended;
  const std::regex line(R"(clone (\d+) (started|exited|killed))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it)
    ((*it)[2] == "started" ? started : ended).insert((*it)[1]);
  return {started, ended};
}

// Clones forked by the server answer with the snapshot's shell state; each
// NIC has its own address (the guest re-probes its virtio-net device, which
// reads the MAC again) and each clone its own VM generation id.
TEST(CloneServer, ForkedClonesAnswerEachWithItsOwnMacAndGenerationId) {
  const std::string runDir = temporaryPath("clone-server-switch");
  ::mkdir(runDir.c_str(), 0755);
  ::setenv("STRATA_RUN_DIR", runDir.c_str(), 1);
  const std::string name = "cs" + std::to_string(::getpid());
  Child switchProcess({strataBinary(), "switch", name}, "", temporaryPath("clone-server-switch.log"));
  for (int i = 0; i < 100 && ::access((runDir + "/switch-" + name + ".ctl").c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string dir = takeSnapshot("clone-server-nic", {"--net", "switch=" + name + ",mac=52:54:00:00:77:01"});
  CloneServer server(dir, "clone-server-nic");
  ASSERT_TRUE(server.up()) << server.log();
  constexpr int kClones = 3;
  auto results = server.clones(kClones, [](int) {
    return "echo got-$X; d=$(basename $(readlink /sys/class/net/eth0/device)); "
           "echo $d > /sys/bus/virtio/drivers/virtio_net/unbind; echo $d > /sys/bus/virtio/drivers/virtio_net/bind; "
           "sleep 1; echo mac\"\"-$(cat /sys/class/net/eth*/address)\n"
           "[ -e /dev/mem ] || mknod /dev/mem c 1 1; echo gen\"\"-$(devmem 0x105000 64)$(devmem 0x105008 64)\npoweroff\n";
  });
  std::set<std::string> macs, generations;
  bool devmem = true;
  for (const auto& run : results) {
    EXPECT_EQ(run.exitCode, 0) << run.output;
    EXPECT_TRUE(contains(run.output, "got-hello42"));
    const std::string mac = valueAfter(run.output, "mac-");
    EXPECT_EQ(mac.size(), 17u) << run.output;
    EXPECT_NE(mac, "52:54:00:00:77:01") << "a clone's NIC gets a new address";
    macs.insert(mac);
    if (contains(run.output, "can't open '/dev/mem'")) devmem = false;
    generations.insert(valueAfter(run.output, "gen-"));
  }
  EXPECT_EQ(macs.size(), static_cast<size_t>(kClones)) << "every clone has its own MAC address";
  EXPECT_TRUE(server.running()) << server.log();
  if (!devmem)
    GTEST_SKIP() << "MACs checked; generation ids not: the default guest's kernel has no /dev/mem (rebuild it with "
                    "guest/kernel.config's CONFIG_DEVMEM)";
  EXPECT_EQ(generations.size(), static_cast<size_t>(kClones)) << "every clone has its own generation id";
}

// Two clones running at once each write their own memory (a shell variable, a
// tmpfs file) and read back only their own; a clone started after both sees the
// snapshot's, as the server's copy was never written.
TEST(CloneServer, AClonesWritesReachNeitherItsSiblingsNorTheServer) {
  CloneServer server(sharedSnapshot(), "clone-server-writes");
  ASSERT_TRUE(server.up()) << server.log();
  auto results = server.clones(2, [](int clone) {
    return fmt::format("X=mine{0}; echo clone{0} > /tmp/f; sleep 2; echo read-$(cat /tmp/f)-$X\npoweroff\n", clone);
  });
  for (int clone = 0; clone < 2; ++clone) {
    EXPECT_EQ(results[clone].exitCode, 0) << results[clone].output;
    EXPECT_TRUE(contains(results[clone].output, fmt::format("read-clone{0}-mine{0}", clone)));
  }
  auto after = server.clone("echo after-$(cat /tmp/f)-$X\npoweroff\n");
  EXPECT_EQ(after.exitCode, 0) << after.output;
  EXPECT_TRUE(contains(after.output, "after-filedata7-hello42"));
}

// Sends one request message to a clone server, with this process's stdio and working directory when
// withFds, and returns the server's first reply.
std::string rawCloneRequest(const std::string& socketPath, const std::string& payload, bool withFds) {
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  socketPath.copy(address.sun_path, sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const int directory = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int fds[4] = {0, 1, 2, directory};
  std::string reply(512, '\0');
  ssize_t got = sendWithDescriptors(fd, payload, withFds ? std::span<const int>(fds) : std::span<const int>())
                    ? ::recv(fd, reply.data(), reply.size(), 0)
                    : -1;
  ::close(directory);
  ::close(fd);
  reply.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return reply;
}

// Requests the server cannot serve get one line saying why and a non-zero
// exit; the server serves the next request as before.
TEST(CloneServer, RefusesBadRequestsAndKeepsServing) {
  CloneServer server(sharedSnapshot(), "clone-server-refusals");
  ASSERT_TRUE(server.up()) << server.log();
  auto badOption = server.clone("", {"--no-such-option"});  // refused by the client's own parser already
  EXPECT_NE(badOption.exitCode, 0);
  EXPECT_TRUE(contains(badOption.output, "--no-such-option"));
  auto otherSnapshot = runStrata({"--restore", temporaryPath("no-such-snapshot"), "--clone", "--clone-server", server.socket()}, "",
                                 std::chrono::seconds(60));
  EXPECT_NE(otherSnapshot.exitCode, 0);
  EXPECT_TRUE(contains(otherSnapshot.output, "this server clones"));
  auto jailed = server.clone("", {"--jail", "/tmp", "--uid", "1", "--gid", "1"});
  EXPECT_NE(jailed.exitCode, 0);
  EXPECT_TRUE(contains(jailed.output, "not for a clone server's clones"));
  auto mismatch = server.clone("", {"--mem", "512M"});
  EXPECT_NE(mismatch.exitCode, 0);
  EXPECT_TRUE(contains(mismatch.output, "--mem"));
  // Raw requests: not a clone request at all, one without its descriptors, options the server's parser refuses.
  using namespace std::string_literals;  // "...\0"s keeps its NUL
  const std::string magic = "strata-clone 1\0"s;
  EXPECT_TRUE(contains(rawCloneRequest(server.socket(), "GET / HTTP/1.1\r\n\r\n", false), "refused not a clone request"));
  EXPECT_TRUE(contains(rawCloneRequest(server.socket(), magic + "--clone\0"s, false), "refused a request passes 4 descriptors"));
  EXPECT_TRUE(contains(rawCloneRequest(server.socket(), magic + "--no-such-option\0"s, true), "refused bad options"));
  EXPECT_TRUE(contains(rawCloneRequest(server.socket(), magic + "--restore\0"s + sharedSnapshot() + "\0"s, true),
                       "refused a clone server runs"));
  auto good = server.clone("echo still-$X\npoweroff\n");
  EXPECT_EQ(good.exitCode, 0) << good.output;
  EXPECT_TRUE(contains(good.output, "still-hello42"));
  EXPECT_TRUE(server.running()) << server.log();
}

TEST(CloneServer, MissingSnapshotIsAClearErrorAtStart) {
  auto run = runStrata({"--restore", temporaryPath("no-such-snapshot"), "--clone-server", temporaryPath("none.clones")}, "",
                       std::chrono::seconds(60));
  EXPECT_EQ(run.exitCode, 2) << run.output;
  EXPECT_TRUE(contains(run.output, "no-such-snapshot"));
}

// A clone killed (SIGKILL) ends its client with 128 + 9; its sibling runs on
// and the server forks the next clone as before.
TEST(CloneServer, KillingACloneLeavesTheServerAndTheOtherClones) {
  CloneServer server(sharedSnapshot(), "clone-server-kill");
  ASSERT_TRUE(server.up()) << server.log();
  auto victim = std::async(std::launch::async, [&] { return server.clone("echo victim-up\nsleep 60\npoweroff\n"); });
  auto sibling = std::async(std::launch::async, [&] { return server.clone("sleep 6; echo sibling-$X\npoweroff\n"); });
  // The victim is the clone still running once its sibling ended.
  auto siblingResult = sibling.get();
  EXPECT_EQ(siblingResult.exitCode, 0) << siblingResult.output;
  EXPECT_TRUE(contains(siblingResult.output, "sibling-hello42"));
  const std::string log = server.log();
  auto [started, ended] = clonePids(log);
  std::vector<std::string> alive;
  for (const auto& pid : started)
    if (!ended.count(pid)) alive.push_back(pid);
  ASSERT_EQ(alive.size(), 1u) << log;
  runShell("kill -9 " + alive[0]);
  auto victimResult = victim.get();
  EXPECT_EQ(victimResult.exitCode, 128 + 9) << victimResult.output;
  EXPECT_TRUE(contains(victimResult.output, "killed by signal 9"));
  auto next = server.clone("echo next-$X\npoweroff\n");
  EXPECT_EQ(next.exitCode, 0) << next.output;
  EXPECT_TRUE(contains(next.output, "next-hello42"));
  EXPECT_TRUE(server.running()) << server.log();
}

// A forked clone runs as confined as any VM: every thread filtered with
// no_new_privs, the vCPU thread's own filter stacked on the I/O loop's.
TEST(Sandbox, ClonesForkedByTheCloneServerRunFilteredAsAnyVm) {
  CloneServer server(sharedSnapshot(), "clone-server-sandbox");
  ASSERT_TRUE(server.up()) << server.log();
  auto run = std::async(std::launch::async, [&] { return server.clone("sleep 4; echo confined-$X\npoweroff\n"); });
  std::string pid;
  for (int i = 0; i < 200 && pid.empty(); ++i) {
    auto started = clonePids(server.log()).first;
    if (!started.empty()) pid = *started.begin();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(pid.empty()) << server.log();
  // Its two threads (I/O loop, vCPU): filtered with no_new_privs each, the vCPU's own filter stacked.
  const std::string count = "cat /proc/" + pid + "/task/*/status 2>/dev/null | grep -c ";
  std::string counts;
  for (int attempt = 0; attempt < 100 && counts != "2 2 1\n"; ++attempt) {
    counts = runShell("echo $(" + count + "'^NoNewPrivs:.1') $(" + count + "'^Seccomp:.2') $(" + count +
                      "'^Seccomp_filters:.2')").output;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(counts, "2 2 1\n") << "threads with no_new_privs, filtered, with two filters";
  auto result = run.get();
  EXPECT_EQ(result.exitCode, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "confined-hello42"));
  EXPECT_FALSE(contains(result.output, "seccomp:"));
}

}  // namespace
}  // namespace strata::test
