// IoRing's rings are restricted (IORING_REGISTER_RESTRICTIONS): after setup
// they take no further registrations, so a hijacked ring cannot be given new
// files or buffers; the operations strata submits still work.
#include "storage/io_ring.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace strata::storage {
namespace {

// The ring's fd, found as the process's newest io_uring instance.
int newestIoUringFd() {
  int newest = -1;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* entry = ::readdir(dir)) {
    std::string link = std::string("/proc/self/fd/") + entry->d_name;
    char target[64] = {};
    if (::readlink(link.c_str(), target, sizeof target - 1) > 0 && std::string(target) == "anon_inode:[io_uring]")
      newest = std::max(newest, std::atoi(entry->d_name));
  }
  ::closedir(dir);
  return newest;
}

TEST(IoRingRestrictions, RingRefusesRegistrationsAfterSetup) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto ring = IoRing::create(**loop, 8);
  ASSERT_TRUE(ring) << ring.error().message;
  int ringFd = newestIoUringFd();
  ASSERT_GE(ringFd, 0);
  int files[1] = {STDIN_FILENO};
  errno = 0;
  long rc = ::syscall(__NR_io_uring_register, ringFd, IORING_REGISTER_FILES, files, 1);
  EXPECT_EQ(rc, -1);
  EXPECT_EQ(errno, EACCES);
}

TEST(IoRingRestrictions, AllowedOperationsStillComplete) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  auto ring = IoRing::create(**loop, 8);
  ASSERT_TRUE(ring) << ring.error().message;
  char path[] = "/tmp/strata-io-ring-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  char out[] = "restricted ring";
  char in[sizeof out] = {};
  iovec outVec{out, sizeof out}, inVec{in, sizeof in};
  int results[3] = {-1, -1, -1};
  (*ring)->writev(fd, &outVec, 1, 0, [&](int result) {
    results[0] = result;
    (*ring)->fdatasync(fd, [&](int synced) {
      results[1] = synced;
      (*ring)->readv(fd, &inVec, 1, 0, [&](int read) {
        results[2] = read;
        (*loop)->stop();
      });
    });
  });
  (*loop)->run();
  ::close(fd);
  EXPECT_EQ(results[0], static_cast<int>(sizeof out));
  EXPECT_EQ(results[1], 0);
  EXPECT_EQ(results[2], static_cast<int>(sizeof out));
  EXPECT_STREQ(in, out);
}

}  // namespace
}  // namespace strata::storage
