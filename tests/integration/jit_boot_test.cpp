// The default guest on the translator (`strata run --engine jit`): Linux boots
// to userspace and runs commands whose output proves they ran, on one and two
// harts (the SMP run also hashes on both harts at once, exercising AMOs, IPIs
// and remote fences through translated code).
#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

class JitGuestBoot : public ::testing::TestWithParam<int> {};

TEST_P(JitGuestBoot, BootsAndRunsCommands) {
  const int cpus = GetParam();
  auto run = runStrata({"--engine", "jit", "--cpus", std::to_string(cpus)},
                       "echo answer=$((6*7))\n"
                       "echo harts=$(grep -c ^processor /proc/cpuinfo)\n" + parallelHashCommands(2, 20000) +
                           "poweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "strata-guest: userspace up"));
  EXPECT_TRUE(contains(run.output, "answer=42"));
  EXPECT_TRUE(contains(run.output, "harts=" + std::to_string(cpus) + "\r\n"));
  EXPECT_TRUE(hasParallelHashes(run.output, 2, 20000));
}

INSTANTIATE_TEST_SUITE_P(Cpus, JitGuestBoot, ::testing::Values(1, 2));

}  // namespace
}  // namespace strata::test
