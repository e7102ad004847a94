// `strata run --engine-trace FILE` on the default guest with the sandbox on:
// the kernel boots to its shell and the trace holds its translated blocks,
// guest instructions beside disassembled x86-64.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "guest_runner.h"

namespace strata::test {
namespace {

TEST(EngineTrace, TheKernelsTranslationsAreTracedUnderTheSandbox) {
  const std::string trace = temporaryPath("engine-trace.txt");
  auto run = runStrata({"--engine", "jit", "--engine-trace", trace}, "echo traced=$((6*7))\npoweroff\n");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "traced=42"));
  std::ifstream in(trace);
  std::stringstream text;
  text << in.rdbuf();
  const std::string log = text.str();
  EXPECT_NE(log.find("block pa 0x802"), std::string::npos);  // the kernel, loaded at 0x80200000
  EXPECT_NE(log.find(" Addi\n"), std::string::npos);
  EXPECT_NE(log.find(": mov "), std::string::npos);
  EXPECT_NE(log.find(": jmp "), std::string::npos);
}

}  // namespace
}  // namespace strata::test
