// Interpreter throughput on tight guest loops (prints MIPS; asserts only a
// generous floor so a slow CI machine does not flake).
#include <chrono>

#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

// The throughput floor only means something in an optimized, uninstrumented build.
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__)
constexpr double kMipsFloor = 20.0;
constexpr uint64_t kLoopIterations = 20'000'000;
#else
constexpr double kMipsFloor = 0.0;
constexpr uint64_t kLoopIterations = 200'000;
#endif

class Performance : public CpuTest {
 protected:
  // Runs the program in S-mode until its final ecall and returns guest MIPS.
  double measure(const std::vector<uint32_t>& program, const char* name) {
    host_.onEcall = [](Hart& h) {
      h.stopSelf();
      return true;
    };
    loadWords(kRamBase, program);
    hart().resetToSupervisorBoot(kRamBase, 0);
    hart().setXreg(s0, kRamBase + 0x100000);
    hart().setXreg(t0, kIterations);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(hart().run(), ExitReason::HartStopped);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double mips = static_cast<double>(hart().instructionsRetired()) / seconds / 1e6;
    std::printf("[ perf     ] %s: %.0f MIPS (%llu instructions in %.3f s)\n", name, mips,
                static_cast<unsigned long long>(hart().instructionsRetired()), seconds);
    return mips;
  }
  static constexpr uint64_t kIterations = kLoopIterations;
};

TEST_F(Performance, AluLoop) {
  const double mips = measure({addi(a0, a0, 1), xor_(a1, a1, a0), addi(t0, t0, -1), bne(t0, zero, -12), ecall},
                              "alu loop (4 insns/iteration)");
  EXPECT_EQ(x(a0), kIterations);
  EXPECT_GT(mips, kMipsFloor);
}

TEST_F(Performance, LoadStoreLoop) {
  const double mips = measure({ld(a0, s0, 0), addi(a0, a0, 1), sd(a0, s0, 0), addi(t0, t0, -1), bne(t0, zero, -16),
                               ecall},
                              "load/store loop (5 insns/iteration)");
  EXPECT_EQ(peek<uint64_t>(kRamBase + 0x100000), kIterations);
  EXPECT_GT(mips, kMipsFloor);
}

}  // namespace
}  // namespace strata::cpu::test
