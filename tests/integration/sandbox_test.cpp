// The VM process's sandbox seen from the host: every thread of a booting VM
// runs under a seccomp filter with no_new_privs, and a VM started with --jail
// runs as the given user in its own PID namespace, with a root holding only
// its files and no other host file open, and still boots and uses its disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "guest_runner.h"

namespace strata::test {
namespace {

namespace fs = std::filesystem;

std::string readText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The value of "Field:" in a /proc status file, tabs and spaces kept inside.
std::string statusField(const std::string& status, const std::string& field) {
  size_t at = status.find("\n" + field + ":");
  if (at == std::string::npos) return "";
  size_t start = status.find_first_not_of(" \t", at + field.size() + 2);
  return status.substr(start, status.find('\n', start) - start);
}

// The strata process whose command line holds `marker` (a unique --append
// text), once its main thread is sandboxed; for a jailed VM, the one that is
// PID 1 of its own namespace.
pid_t findVmProcess(const std::string& marker, bool jailed) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = readText(entry.path() / "cmdline");
    if (cmdline.find(marker) == std::string::npos) continue;
    // A jailed VM once the jailer has exec'd strata inside the jail.
    if (jailed && cmdline.rfind(std::string("/strata\0run", 11), 0) != 0) continue;
    std::string status = readText(entry.path() / "status");
    std::string nspid = statusField(status, "NSpid");
    bool inOwnNamespace = nspid.find('\t') != std::string::npos && nspid.substr(nspid.rfind('\t') + 1) == "1";
    // Sandboxed means the board is built: its files are open, the loader's are closed.
    if (inOwnNamespace == jailed && statusField(status, "Seccomp") == "2") return std::stoi(name);
  }
  return -1;
}

// Polls until the VM process shows up (it boots for a few seconds).
pid_t waitForVmProcess(const std::string& marker, bool jailed) {
  for (int attempt = 0; attempt < 400; ++attempt) {
    pid_t pid = findVmProcess(marker, jailed);
    if (pid > 0) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

std::string uniqueMarker(const std::string& test) { return "strata-test=" + test + "-" + std::to_string(::getpid()); }

TEST(Sandbox, EveryThreadOfABootingVmRunsFiltered) {
  std::string marker = uniqueMarker("filtered");
  auto run = std::async(std::launch::async, [&] {
    return runStrata({"--cpus", "2", "--append", "console=ttyS0 " + marker},
                     "sleep 3\necho sandboxed-$((6*7))\npoweroff\n");
  });
  pid_t pid = waitForVmProcess(marker, false);
  ASSERT_GT(pid, 0);
  // The vCPU threads enter their role as they start: wait for all three threads.
  // Each vCPU thread stacks its own filter (one program, compiled once) on the I/O loop's.
  std::set<std::string> filtered, stacked;
  for (int attempt = 0; attempt < 200 && stacked.size() < 2; ++attempt) {
    filtered.clear();
    stacked.clear();
    std::error_code error;
    for (const auto& task : fs::directory_iterator(fs::path("/proc") / std::to_string(pid) / "task", error)) {
      std::string status = readText(task.path() / "status");
      if (statusField(status, "Seccomp") == "2" && statusField(status, "NoNewPrivs") == "1")
        filtered.insert(task.path().filename());
      if (statusField(status, "Seccomp_filters") == "2") stacked.insert(task.path().filename());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(filtered.size(), 3u) << "threads with a seccomp filter and no_new_privs";
  EXPECT_EQ(stacked.size(), 2u) << "vCPU threads with their own filter on the I/O loop's";
  auto result = run.get();
  ASSERT_FALSE(result.timedOut) << result.output;
  EXPECT_EQ(result.exitCode, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "sandboxed-42"));
  EXPECT_FALSE(contains(result.output, "seccomp:"));
}

TEST(Sandbox, SeccompOffBootsWithoutFilters) {
  auto run = runStrata({"--seccomp", "off"}, "echo unfiltered-$((6*7))\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "unfiltered-42"));
}

// Every file below `dir` (recursively), as paths relative to it.
std::set<std::string> filesBelow(const fs::path& dir) {
  std::set<std::string> files;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(dir, error); it != fs::recursive_directory_iterator(); it.increment(error))
    if (!it->is_directory()) files.insert(it->path().string().substr(dir.string().size() + 1));
  return files;
}

TEST(Jailer, JailedVmSeesOnlyItsFilesAndRunsAsTheGivenUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "the jailer needs root (namespaces, mounts, dropping to another user)";
  constexpr int kNobody = 65534;
  std::string disk = copyOfRootDisk("jail");
  ASSERT_EQ(::chown(disk.c_str(), kNobody, kNobody), 0);
  std::string jail = temporaryPath("jail");
  fs::remove_all(jail);
  std::string marker = uniqueMarker("jail");
  auto run = std::async(std::launch::async, [&] {
    return runStrata({"--jail", jail, "--uid", std::to_string(kNobody), "--gid", std::to_string(kNobody), "--disk", disk,
                      "--append", "console=ttyS0 root=/dev/vda " + marker},
                     "echo jailed-$((6*7)) > /in-jail.txt\nsync\nsleep 3\necho jail-done\npoweroff\n");
  });
  pid_t pid = waitForVmProcess(marker, true);
  ASSERT_GT(pid, 0);
  fs::path proc = fs::path("/proc") / std::to_string(pid);
  std::string status = readText(proc / "status");
  EXPECT_EQ(statusField(status, "Uid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(statusField(status, "Gid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(statusField(status, "Groups"), "");

  // Its root: the VM's files, the strata binary and the shared objects it
  // runs with (read-only), nothing else: not even a device node.
  std::set<std::string> vmFiles;
  for (const auto& file : filesBelow(proc / "root")) {
    if (file.ends_with(".so") || file.find(".so.") != std::string::npos) continue;
    vmFiles.insert(file);
  }
  EXPECT_EQ(vmFiles, (std::set<std::string>{"disk0", "initrd", "kernel", "strata"}));

  // Its open files: none of the host's, only the disk (and the stdio pipes,
  // anonymous inodes, the guest RAM memfd).
  std::error_code error;
  for (const auto& fd : fs::directory_iterator(proc / "fd", error)) {
    std::string target = fs::read_symlink(fd.path(), error).string();
    if (target.empty() || target[0] != '/') continue;
    EXPECT_TRUE(target == "/disk0" || target.starts_with("/memfd:"))
        << "fd " << fd.path().filename() << " -> " << target;
  }

  auto result = run.get();
  ASSERT_FALSE(result.timedOut) << result.output;
  EXPECT_EQ(result.exitCode, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "jail-done"));
  EXPECT_EQ(runShell("debugfs -R 'cat /in-jail.txt' " + disk + " 2>/dev/null").output, "jailed-42\n");
  EXPECT_TRUE(fs::is_empty(jail)) << "the jail's mounts live only in its namespace";
}

TEST(Jailer, JailedVmPingsHostOverTheTapItWasHanded) {
  if (::geteuid() != 0) GTEST_SKIP() << "the jailer needs root (namespaces, mounts, dropping to another user)";
  TapNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace with a TAP device here: " << ns.why();
  // /dev/net/tun is not in the jail and the VM runs as nobody: the TAP works
  // only through the fd the jailer opened before dropping privileges.
  auto run = runShell("printf 'ip link set eth0 up\\nip addr add 10.77.0.2/24 dev eth0\\n"
                      "ping -c 3 -W 5 10.77.0.1\\npoweroff\\n' | timeout 240 ip netns exec " + ns.name() + " " +
                      strataBinary() + " run --jail " + temporaryPath("jail-net") +
                      " --uid 65534 --gid 65534 --net tap=stap0 2>&1");
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "3 packets transmitted, 3 packets received"));
}

TEST(Jailer, HandedOverTapFdThatIsNotATapIsAClearError) {
  auto run = runStrata({"--net", "tapfd=99"}, "");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "--net tapfd=99: TUNGETIFF"));
}

TEST(Jailer, RefusesToRunAsRoot) {
  auto run = runStrata({"--jail", temporaryPath("jail-root"), "--uid", "0", "--gid", "0"}, "");
  EXPECT_NE(run.exitCode, 0);
  EXPECT_TRUE(contains(run.output, "--jail"));
}

}  // namespace
}  // namespace strata::test
