// The seccomp program builder: what it refuses to build, and what a built
// program does once loaded, each tried in a child process (a death test), as
// a filter cannot be removed.
#include "vmm/seccomp_program.h"

#include <asm/unistd.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>


#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace strata::vmm::seccomp {
namespace {

ArgumentCheck equals(unsigned index, uint64_t value) { return ArgumentCheck{index, ~uint64_t{0}, value}; }

// A builder allowing what a death test's child needs to report and exit.
ProgramBuilder reporting() {
  ProgramBuilder program;
  for (int syscall : {SYS_write, SYS_exit_group, SYS_exit}) program.allow(syscall);
  return program;
}

// Loads the program into this (child) process, then runs body and exits 0.
template <typename Body>
void underProgram(const ProgramBuilder& builder, uint32_t defaultAction, Body body) {
  auto program = builder.build(defaultAction);
  if (!program) {
    std::fprintf(stderr, "build: %s\n", program.error().message.c_str());
    std::_Exit(3);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    std::perror("prctl(PR_SET_NO_NEW_PRIVS)");
    std::_Exit(4);
  }
  if (auto loaded = load(*program); !loaded) {
    std::fprintf(stderr, "load: %s\n", loaded.error().message.c_str());
    std::_Exit(4);
  }
  body();
  std::_Exit(0);
}

// ioctl on a descriptor that is no terminal: an allowed TCGETS runs and fails with ENOTTY.
void reportIoctl(unsigned long request) {
  int fd = STDERR_FILENO;
  long rc = ::syscall(SYS_ioctl, fd, request, nullptr);
  std::fprintf(stderr, "ioctl %ld %s\n", rc, rc < 0 ? std::strerror(errno) : "ok");
}

TEST(SeccompProgram, RefusesTwoDifferentUnconditionalAnswersForOneSyscall) {
  ProgramBuilder program;
  program.allow(SYS_openat);
  program.allow(SYS_openat);  // the same answer twice is harmless
  ASSERT_TRUE(program.build(trapAction()));
  program.answer(SYS_openat, errnoAction(EACCES));
  auto built = program.build(trapAction());
  ASSERT_FALSE(built);
  EXPECT_NE(built.error().message.find("two different answers"), std::string::npos) << built.error().message;
}

TEST(SeccompProgram, RefusesChecksThatCanNeverHold) {
  ProgramBuilder noSuchArgument;
  noSuchArgument.allowIf(SYS_ioctl, equals(6, 1));
  EXPECT_FALSE(noSuchArgument.build(trapAction()));
  ProgramBuilder outsideTheMask;
  outsideTheMask.allowIf(SYS_umask, ArgumentCheck{0, 0xff, 0x100});
  auto built = outsideTheMask.build(trapAction());
  ASSERT_FALSE(built);
  EXPECT_NE(built.error().message.find("can never be"), std::string::npos) << built.error().message;
}

TEST(SeccompProgram, RefusesRulesTooLongToJumpOver) {
  ProgramBuilder program;
  // A 64-bit compare takes 4 instructions and its return 1: 40 rules and the block's
  // own return make 201 instructions, 60 make 301, beyond a jump's 255.
  for (unsigned long request = 0; request < 40; ++request) program.allowIf(SYS_ioctl, equals(1, request));
  ASSERT_TRUE(program.build(trapAction()));
  for (unsigned long request = 40; request < 60; ++request) program.allowIf(SYS_ioctl, equals(1, request));
  auto built = program.build(trapAction());
  ASSERT_FALSE(built);
  EXPECT_NE(built.error().message.find("too long"), std::string::npos) << built.error().message;
}

TEST(SeccompProgramDeathTest, ListedSyscallRunsAndAnUnlistedOneGetsTheDefault) {
  ProgramBuilder program = reporting();
  program.allow(SYS_getpid);
  EXPECT_EXIT(underProgram(program, errnoAction(EPERM),
                           [] {
                             long pid = ::syscall(SYS_getpid);
                             long uid = ::syscall(SYS_getuid);
                             std::fprintf(stderr, "getpid %s getuid %ld %s\n", pid > 0 ? "ran" : "?", uid,
                                          uid < 0 && errno == EPERM ? "EPERM" : "?");
                           }),
              ::testing::ExitedWithCode(0), "getpid ran getuid -1 EPERM");
  EXPECT_EXIT(underProgram(program, trapAction(), [] { ::syscall(SYS_getuid); }), ::testing::KilledBySignal(SIGSYS), "");
}

TEST(SeccompProgramDeathTest, ArgumentRuleComparesAllSixtyFourBits) {
  ProgramBuilder program = reporting();
  program.allowIf(SYS_ioctl, equals(1, TCGETS));
  EXPECT_EXIT(underProgram(program, errnoAction(EPERM),
                           [] {
                             reportIoctl(TCGETS);                                  // allowed: runs
                             reportIoctl(TCSETS);                                  // another request
                             reportIoctl(TCGETS | (uint64_t{1} << 32));            // same low half
                           }),
              ::testing::ExitedWithCode(0),
              "ioctl -1 Inappropriate ioctl for device\nioctl -1 Operation not permitted\nioctl -1 Operation not permitted");
}

TEST(SeccompProgramDeathTest, MaskedRuleAndErrnoAnswer) {
  ProgramBuilder program = reporting();
  program.allowIf(SYS_umask, ArgumentCheck{0, 0777, 022});
  program.answer(SYS_openat, errnoAction(EACCES));
  EXPECT_EXIT(underProgram(program, trapAction(),
                           [] {
                             ::syscall(SYS_umask, 01022);  // the bit outside the mask is not looked at
                             int fd = ::open("/dev/null", O_RDONLY);
                             std::fprintf(stderr, "umask ran open %d %s\n", fd, fd < 0 && errno == EACCES ? "EACCES" : "?");
                             ::syscall(SYS_umask, 077);    // traps
                             std::fprintf(stderr, "not reached\n");
                           }),
              ::testing::KilledBySignal(SIGSYS), "umask ran open -1 EACCES");
}

TEST(SeccompProgramDeathTest, SyscallOfAnotherAbiKillsTheProcess) {
  ProgramBuilder program = reporting();
  program.allow(SYS_getpid);
  // The x32 ABI's getpid: the same arch in seccomp_data, the x32 bit set in the number.
  EXPECT_EXIT(underProgram(program, errnoAction(EPERM), [] { ::syscall(__X32_SYSCALL_BIT | SYS_getpid); }),
              ::testing::KilledBySignal(SIGSYS), "");
}

}  // namespace
}  // namespace strata::vmm::seccomp
