// --engine-trace: a translated block appears in the trace with its guest
// instructions and the x86-64 code generated for them, disassembled.
#include <dlfcn.h>

#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "cpu/jit/engine_trace.h"
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

TEST(EngineTrace, ShowsEachTranslationsGuestCodeBesideItsHostCode) {
  constexpr uint64_t kBase = 0x80000000, kRamBytes = 1 << 20;
  const std::string path = ::testing::TempDir() + "engine_trace_test.txt";
  auto trace = EngineTrace::open(path);
  ASSERT_TRUE(trace) << trace.error().message;
  const std::vector<uint32_t> program = {addi(a0, zero, 5), addi(a0, a0, 37), slli(a1, a0, 3), ecall};
  EngineConfig engine{EngineKind::Jit, 1};
  engine.trace = *trace;
  {
    ProgramHart run(program, kBase, kRamBytes, engine);
    EXPECT_EQ(run.hart->run(), ExitReason::HartStopped);
    EXPECT_EQ(run.hart->xreg(a0), 42u);
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string log = text.str();
  EXPECT_NE(log.find("block pa 0x80000000: 4 guest instructions"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format("guest 0x80000004: {:08x} Addi", program[1])), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format("guest 0x80000008: {:08x} Slli", program[2])), std::string::npos) << log;
  // x86-64 from capstone: the hart state lives behind rbx (translator.h).
  EXPECT_NE(log.find("  host  0x"), std::string::npos) << log;
  EXPECT_NE(log.find("mov qword ptr [rbx"), std::string::npos) << log;
}

// A VM process without a trace never maps capstone (its relocations cost each start ~10 ms).
TEST(EngineTrace, CapstoneIsLoadedOnlyWhileATraceIsOpen) {
  auto loaded = [] {
    void* library = ::dlopen(EngineTrace::disassemblerLibrary(), RTLD_NOW | RTLD_NOLOAD);
    if (library) ::dlclose(library);
    return library != nullptr;
  };
  EXPECT_FALSE(loaded());
  auto trace = EngineTrace::open(::testing::TempDir() + "engine_trace_loaded.txt");
  ASSERT_TRUE(trace) << trace.error().message;
  EXPECT_TRUE(loaded());
  trace->reset();
  EXPECT_FALSE(loaded());
}

TEST(EngineTrace, AnUnwritablePathIsAnError) {
  EXPECT_FALSE(EngineTrace::open("/nonexistent-directory/trace.txt"));
}

}  // namespace
}  // namespace strata::cpu::test
