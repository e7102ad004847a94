// The sandbox's seccomp filters and Landlock rules, each tried in a child
// process (a death test): a filter cannot be removed once loaded.
#include "vmm/sandbox.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace strata::vmm {
namespace {

VmConfig sandboxed(bool seccomp, bool landlock) {
  VmConfig config;
  config.sandbox.seccomp = seccomp;
  config.sandbox.landlock = landlock;
  return config;
}

// Runs body on a new thread that first enters `role`; exits 0 when body returns.
template <typename Body>
void onThreadInRole(ThreadRole role, const VmConfig& config, Body body) {
  std::thread thread([&] {
    if (auto entered = enterThreadRole(role, config); !entered) {
      std::fprintf(stderr, "enterThreadRole: %s\n", entered.error().message.c_str());
      std::_Exit(3);
    }
    body();
  });
  thread.join();
  std::_Exit(0);
}

TEST(SandboxDeathTest, ForbiddenSyscallOnVcpuThreadKillsProcessNamingIt) {
  EXPECT_EXIT(onThreadInRole(ThreadRole::Vcpu, sandboxed(true, false),
                             [] { ::socket(AF_INET, SOCK_STREAM, 0); }),
              ::testing::KilledBySignal(SIGSYS),
              "strata: seccomp: vCPU thread made forbidden syscall socket \\(41\\); killing the VM");
}

TEST(SandboxDeathTest, MigrationThreadIsRefusedFilesWithoutBeingKilled) {
  // glibc's first shrink of a thread heap opens /proc/sys/vm/overcommit_memory; refused, it goes on.
  EXPECT_EXIT(onThreadInRole(ThreadRole::Migration, sandboxed(true, false),
                             [] {
                               int fd = ::open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
                               std::fprintf(stderr, "open %d %s\n", fd, fd < 0 && errno == EACCES ? "EACCES" : "?");
                             }),
              ::testing::ExitedWithCode(0), "open -1 EACCES");
}

TEST(SandboxDeathTest, VcpuThreadDoesItsWorkAndExits) {
  // What a vCPU does: allocate, map an executable code cache, take locks,
  // signal the I/O loop's eventfd, print to the console; then the thread ends.
  int wakeup = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(wakeup, 0);
  EXPECT_EXIT(onThreadInRole(ThreadRole::Vcpu, sandboxed(true, false),
                             [wakeup] {
                               std::string grown(1 << 20, 'x');
                               void* cache = ::mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE,
                                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                               if (cache == MAP_FAILED || ::mprotect(cache, 1 << 16, PROT_READ | PROT_EXEC) != 0)
                                 std::_Exit(4);
                               ::munmap(cache, 1 << 16);
                               uint64_t one = 1;
                               if (::write(wakeup, &one, sizeof one) != sizeof one) std::_Exit(5);
                               std::fprintf(stderr, "vcpu work done %zu\n", grown.size());
                             }),
              ::testing::ExitedWithCode(0), "vcpu work done 1048576");
}

TEST(SandboxDeathTest, IoLoopStartsVcpuThreadsButNoProcesses) {
  // The started thread adds the vCPU filter on top of the I/O loop's, as a
  // vCPU thread does when a board (the first or one after a reboot) starts.
  EXPECT_EXIT(onThreadInRole(ThreadRole::IoLoop, sandboxed(true, false),
                             [] {
                               std::thread([] {
                                 if (!enterThreadRole(ThreadRole::Vcpu, sandboxed(true, false))) std::_Exit(7);
                                 std::fprintf(stderr, "thread started\n");
                               }).join();
                               if (::fork() == 0) std::_Exit(0);
                               std::_Exit(6);  // the fork should not have happened at all
                             }),
              ::testing::KilledBySignal(SIGSYS),
              "thread started\n.*strata: seccomp: I/O loop thread made forbidden syscall clone \\(56\\)");
}

TEST(SandboxDeathTest, EveryVcpuThreadOfAnIoLoopLoadsTheVcpuFilter) {
  // The I/O loop compiles the vCPU program once as it enters its role; each vCPU
  // thread loads it, so eventfd2, which the I/O loop may make, is refused to the second as to the first.
  EXPECT_EXIT(onThreadInRole(ThreadRole::IoLoop, sandboxed(true, false),
                             [] {
                               for (int vcpu = 0; vcpu < 2; ++vcpu)
                                 std::thread([vcpu] {
                                   if (!enterThreadRole(ThreadRole::Vcpu, sandboxed(true, false))) std::_Exit(7);
                                   std::fprintf(stderr, "vcpu %d filtered\n", vcpu);
                                   if (vcpu == 1) ::eventfd(0, EFD_CLOEXEC);
                                 }).join();
                               std::_Exit(8);  // the second vCPU's eventfd should have killed the process
                             }),
              ::testing::KilledBySignal(SIGSYS),
              "vcpu 0 filtered\nvcpu 1 filtered\n.*strata: seccomp: vCPU thread made forbidden syscall eventfd2");
}

TEST(SandboxDeathTest, ApiThreadServesSocketsAndRemovesOnlyItsOwnSocketFile) {
  // The API thread accepts and answers clients and unlinks config.apiSocket
  // (that string's buffer) at the end; any other path is refused with the process's death.
  char other[] = "/tmp/strata-sandbox-api-other-XXXXXX";
  int otherFd = ::mkstemp(other);
  ASSERT_GE(otherFd, 0);
  ::close(otherFd);
  VmConfig config = sandboxed(true, false);
  config.apiSocket = "/tmp/strata-sandbox-api-socket-" + std::to_string(::getpid());
  ASSERT_EQ(::close(::open(config.apiSocket.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  // Its listening socket is bound before it starts: it makes no sockets of its own.
  EXPECT_EXIT(onThreadInRole(ThreadRole::Api, config, [] { ::socket(AF_INET, SOCK_STREAM, 0); }),
              ::testing::KilledBySignal(SIGSYS), "API thread made forbidden syscall socket");
  EXPECT_EXIT(onThreadInRole(ThreadRole::Api, config,
                             [&] {
                               int removed = ::unlink(config.apiSocket.c_str());
                               std::fprintf(stderr, "own socket removed %d\n", removed == 0);
                               ::unlink(other);
                             }),
              ::testing::KilledBySignal(SIGSYS), "own socket removed 1\n.*API thread made forbidden syscall unlink");
  EXPECT_EQ(::access(other, F_OK), 0) << "the other file must survive";
  ::unlink(other);
}

TEST(SandboxDeathTest, SeccompOffLeavesSyscallsAlone) {
  EXPECT_EXIT(onThreadInRole(ThreadRole::Vcpu, sandboxed(false, false),
                             [] {
                               int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
                               std::fprintf(stderr, "socket %s\n", fd >= 0 ? "opened" : "refused");
                             }),
              ::testing::ExitedWithCode(0), "socket opened");
}

bool landlockAvailable() {
  return ::syscall(SYS_landlock_create_ruleset, nullptr, 0, 1u /* LANDLOCK_CREATE_RULESET_VERSION */) > 0;
}

TEST(SandboxDeathTest, LandlockLeavesOnlyTheVmsFilesReachable) {
  if (!landlockAvailable()) GTEST_SKIP() << "the host kernel has no Landlock";
  char held[] = "/tmp/strata-sandbox-held-XXXXXX", kernel[] = "/tmp/strata-sandbox-kernel-XXXXXX",
       other[] = "/tmp/strata-sandbox-other-XXXXXX";
  int heldFd = ::mkstemp(held);
  int kernelFd = ::mkstemp(kernel);
  int otherFd = ::mkstemp(other);
  ASSERT_TRUE(heldFd >= 0 && kernelFd >= 0 && otherFd >= 0);
  ::close(kernelFd);
  ::close(otherFd);
  int guestRam = ::memfd_create("guest-ram", MFD_CLOEXEC);  // held open like guest RAM: has no path, needs no rule
  ASSERT_GE(guestRam, 0);
  VmConfig config = sandboxed(false, true);
  config.kernel = kernel;
  // A disk held open read-write may be reopened for writing; the kernel (a boot
  // file) for reading only; any other file not at all.
  EXPECT_EXIT(onThreadInRole(ThreadRole::IoLoop, config,
                             [&] {
                               int disk = ::open(held, O_RDWR);
                               int kernelRead = ::open(kernel, O_RDONLY);
                               int kernelWrite = ::open(kernel, O_WRONLY);
                               int otherRead = ::open(other, O_RDONLY);
                               std::fprintf(stderr, "disk=%d kernel-read=%d kernel-write=%d other=%d\n", disk >= 0,
                                            kernelRead >= 0, kernelWrite >= 0, otherRead >= 0);
                             }),
              ::testing::ExitedWithCode(0), "disk=1 kernel-read=1 kernel-write=0 other=0");
  ::close(heldFd);
  ::close(guestRam);
  ::unlink(held);
  ::unlink(kernel);
  ::unlink(other);
}

}  // namespace
}  // namespace strata::vmm
