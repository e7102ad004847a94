// Bad input to `strata run` gets one clear line naming the file and the reason,
// and a non-zero exit status — never a crash or a hang.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

void expectCleanFailure(const ProcessResult& run, const std::string& mustMention) {
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_NE(run.exitCode, 0) << run.output;
  EXPECT_LT(run.exitCode, 128) << "killed by a signal: " << run.output;
  EXPECT_TRUE(contains(run.output, mustMention));
  EXPECT_TRUE(contains(run.output, "strata run: "));
}

TEST(BadInput, MissingKernel) {
  auto run = runStrata({"--kernel", "/nonexistent/Image"}, "");
  expectCleanFailure(run, "/nonexistent/Image: No such file or directory");
}

TEST(BadInput, KernelThatIsNotAKernel) {
  std::string path = temporaryPath("garbage-kernel");
  writeFile(path, std::string(4096, 'x'));
  auto run = runStrata({"--kernel", path}, "");
  expectCleanFailure(run, path + ": not a RISC-V Linux Image or ELF kernel");
}

TEST(BadInput, TruncatedElfKernel) {
  std::string path = temporaryPath("truncated-elf");
  writeFile(path, std::string("\x7f" "ELF\x02\x01\x01", 7));
  auto run = runStrata({"--kernel", path}, "");
  expectCleanFailure(run, path + ": truncated ELF header");
}

TEST(BadInput, MissingInitrd) {
  auto run = runStrata({"--kernel", defaultGuestFile("Image"), "--initrd", "/nonexistent/initrd"}, "");
  expectCleanFailure(run, "/nonexistent/initrd: No such file or directory");
}

TEST(BadInput, MissingDisk) {
  auto run = runStrata({"--disk", "/nonexistent/disk.img"}, "");
  expectCleanFailure(run, "/nonexistent/disk.img");
}

TEST(BadInput, DiskThatIsADirectory) {
  auto run = runStrata({"--disk", "/tmp"}, "");
  expectCleanFailure(run, "/tmp");
}

TEST(BadInput, MemoryTooSmallForKernel) {
  auto run = runStrata({"--mem", "4M"}, "");
  expectCleanFailure(run, "guest memory");
}

TEST(BadInput, TooManyCpus) {
  auto run = runStrata({"--cpus", "9"}, "");
  expectCleanFailure(run, "--cpus 9");
}

TEST(BadInput, UnknownDiskOption) {
  auto run = runStrata({"--disk", "/tmp/x,bogus"}, "");
  expectCleanFailure(run, "unknown option 'bogus'");
}

}  // namespace
}  // namespace strata::test
