// Differential test of cpu/fp against real RISC-V semantics: random and
// adversarial operands are run through riscv_fp_oracle.c (built with the
// riscv64 cross compiler, run under qemu-riscv64) and through cpu/fp, and the
// result bits and fflags must agree. Skipped when those tools are missing; the
// hand-computed tests in the other files stand on their own.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cpu/fp/fp_ops.h"

namespace strata::cpu::fp {
namespace {

namespace fs = std::filesystem;

bool toolOnPath(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

struct Case {
  unsigned op;
  unsigned rm;
  uint64_t a, b, c;
};
struct Outcome {
  uint64_t result;
  uint32_t flags;
};

// Evaluates `c` with cpu/fp; op numbering matches riscv_fp_oracle.c.
Outcome evaluate(const Case& c) {
  const auto rm = static_cast<RoundingMode>(c.rm);
  const auto a32 = static_cast<uint32_t>(c.a), b32 = static_cast<uint32_t>(c.b), c32 = static_cast<uint32_t>(c.c);
  uint32_t f = 0;
  uint64_t r = 0;
  switch (c.op) {
    case 0: r = f32Add(a32, b32, rm, f); break;
    case 1: r = f32Sub(a32, b32, rm, f); break;
    case 2: r = f32Mul(a32, b32, rm, f); break;
    case 3: r = f32Div(a32, b32, rm, f); break;
    case 4: r = f32Sqrt(a32, rm, f); break;
    case 5: r = f32MulAdd(a32, b32, c32, rm, f); break;
    case 6: r = f32MulSub(a32, b32, c32, rm, f); break;
    case 7: r = f32NegMulSub(a32, b32, c32, rm, f); break;
    case 8: r = f32NegMulAdd(a32, b32, c32, rm, f); break;
    case 9: r = f32Min(a32, b32, f); break;
    case 10: r = f32Max(a32, b32, f); break;
    case 11: r = f32Eq(a32, b32, f); break;
    case 12: r = f32Lt(a32, b32, f); break;
    case 13: r = f32Le(a32, b32, f); break;
    case 14: r = f32Classify(a32); break;
    case 15: r = f32ToF64(a32, f); break;
    case 16: r = f64ToF32(c.a, rm, f); break;
    case 17: r = f32ToI32(a32, rm, f); break;
    case 18: r = f32ToU32(a32, rm, f); break;
    case 19: r = f32ToI64(a32, rm, f); break;
    case 20: r = f32ToU64(a32, rm, f); break;
    case 21: r = i32ToF32(static_cast<int32_t>(c.a), rm, f); break;
    case 22: r = u32ToF32(static_cast<uint32_t>(c.a), rm, f); break;
    case 23: r = i64ToF32(static_cast<int64_t>(c.a), rm, f); break;
    case 24: r = u64ToF32(c.a, rm, f); break;
    case 32: r = f64Add(c.a, c.b, rm, f); break;
    case 33: r = f64Sub(c.a, c.b, rm, f); break;
    case 34: r = f64Mul(c.a, c.b, rm, f); break;
    case 35: r = f64Div(c.a, c.b, rm, f); break;
    case 36: r = f64Sqrt(c.a, rm, f); break;
    case 37: r = f64MulAdd(c.a, c.b, c.c, rm, f); break;
    case 38: r = f64MulSub(c.a, c.b, c.c, rm, f); break;
    case 39: r = f64NegMulSub(c.a, c.b, c.c, rm, f); break;
    case 40: r = f64NegMulAdd(c.a, c.b, c.c, rm, f); break;
    case 41: r = f64Min(c.a, c.b, f); break;
    case 42: r = f64Max(c.a, c.b, f); break;
    case 43: r = f64Eq(c.a, c.b, f); break;
    case 44: r = f64Lt(c.a, c.b, f); break;
    case 45: r = f64Le(c.a, c.b, f); break;
    case 46: r = f64Classify(c.a); break;
    case 49: r = f64ToI32(c.a, rm, f); break;
    case 50: r = f64ToU32(c.a, rm, f); break;
    case 51: r = f64ToI64(c.a, rm, f); break;
    case 52: r = f64ToU64(c.a, rm, f); break;
    case 53: r = i32ToF64(static_cast<int32_t>(c.a), rm, f); break;
    case 54: r = u32ToF64(static_cast<uint32_t>(c.a), rm, f); break;
    case 55: r = i64ToF64(static_cast<int64_t>(c.a), rm, f); break;
    case 56: r = u64ToF64(c.a, rm, f); break;
    default: ADD_FAILURE() << "unknown op " << c.op;
  }
  return {r, f};
}

// Operand generator biased toward the interesting corners of each format.
class OperandSource {
 public:
  explicit OperandSource(uint64_t seed) : rng_(seed) {}

  uint64_t bits(int expBits, int fracBits) {
    const uint64_t expMax = (uint64_t(1) << expBits) - 1;
    const uint64_t fracMask = (uint64_t(1) << fracBits) - 1;
    const uint64_t sign = uint64_t(coin()) << (expBits + fracBits);
    uint64_t exp, frac = next() & fracMask;
    switch (next() % 8) {
      case 0: {  // special values
        static constexpr int kSpecials = 9;
        switch (next() % kSpecials) {
          case 0: return sign;                                                      // zero
          case 1: return sign | (expMax << fracBits);                               // inf
          case 2: return (expMax << fracBits) | (uint64_t(1) << (fracBits - 1));    // qNaN
          case 3: return sign | (expMax << fracBits) | 1;                           // sNaN
          case 4: return sign | (expMax << fracBits) | (frac | (uint64_t(1) << (fracBits - 1)));
          case 5: return sign | 1;                                                  // min subnormal
          case 6: return sign | fracMask;                                           // max subnormal
          case 7: return sign | ((expMax - 1) << fracBits) | fracMask;              // max finite
          default: return sign | (uint64_t(1) << fracBits);                         // min normal
        }
      }
      case 1: exp = 0; break;                                     // subnormal
      case 2: exp = next() % 4; break;                            // near underflow
      case 3: exp = expMax - 1 - next() % 4; break;               // near overflow
      case 4: frac &= ~((uint64_t(1) << (next() % fracBits)) - 1); // few significant bits
        exp = (expMax >> 1) + next() % 8 - 4;
        break;
      default: exp = next() % (expMax + 1); break;
    }
    return sign | (exp << fracBits) | frac;
  }

  // Operand close to `base` (same exponent region, random low bits) for cancellation.
  uint64_t near(uint64_t base, int expBits, int fracBits) {
    const uint64_t signFlip = uint64_t(coin()) << (expBits + fracBits);
    const int lowBits = static_cast<int>(next() % (fracBits + 1));
    const uint64_t lowMask = lowBits == 64 ? ~uint64_t(0) : (uint64_t(1) << lowBits) - 1;
    uint64_t v = (base & ~lowMask) | (next() & lowMask);
    v += (next() % 5) - 2;
    const int width = expBits + fracBits + 1;
    return (v ^ signFlip) & (width == 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1);
  }

  uint64_t integer() {
    switch (next() % 4) {
      case 0: {
        static constexpr uint64_t kEdges[] = {0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
                                              0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff,
                                              0xffffffff80000000, 0x1000001, 0x20000000000001};
        return kEdges[next() % std::size(kEdges)] + (next() % 3) - 1;
      }
      case 1: return next() >> (next() % 64);
      default: return next();
    }
  }

  // A float value near an integer boundary for float->int conversion.
  uint64_t nearIntegerFloat(int expBits, int fracBits) {
    const uint64_t bias = (uint64_t(1) << (expBits - 1)) - 1;
    const uint64_t sign = uint64_t(coin()) << (expBits + fracBits);
    const uint64_t exp = bias - 2 + next() % 70;  // 2^-2 .. 2^67
    return sign | (exp << fracBits) | (next() & ((uint64_t(1) << fracBits) - 1) & ~((uint64_t(1) << (next() % fracBits)) - 1));
  }

  uint64_t next() { return rng_(); }
  bool coin() { return (rng_() & 1) != 0; }
  // Half the cases use RNE, the mode the host shortcuts serve.
  unsigned rm() {
    const uint64_t r = rng_();
    return (r & 1) ? 0 : static_cast<unsigned>((r >> 1) % 5);
  }

 private:
  std::mt19937_64 rng_;
};

std::vector<Case> makeCases(size_t perOp) {
  OperandSource src(0x5eed);
  std::vector<Case> cases;
  const unsigned singleOps[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24};
  const unsigned doubleOps[] = {16, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 49, 50, 51, 52, 53, 54, 55, 56};
  auto addCases = [&](unsigned op, int e, int m) {
    for (size_t i = 0; i < perOp; ++i) {
      Case c{op, src.rm(), 0, 0, 0};
      const bool intSource = (op >= 21 && op <= 24) || op >= 53;
      const bool intDest = (op >= 17 && op <= 20) || (op >= 49 && op <= 52);
      if (intSource) {
        c.a = src.integer();
      } else if (intDest && src.coin()) {
        c.a = src.nearIntegerFloat(e, m);
      } else {
        c.a = src.bits(e, m);
      }
      c.b = (i % 3 == 0) ? src.near(c.a, e, m) : src.bits(e, m);
      c.c = (i % 3 == 1) ? src.near(c.a, e, m) : src.bits(e, m);
      cases.push_back(c);
    }
  };
  for (unsigned op : singleOps) addCases(op, 8, 23);
  for (unsigned op : doubleOps) addCases(op, 11, 52);
  return cases;
}

// fma cases whose addend nearly cancels the product: the hard single-rounding cases.
void addCancellingFmaCases(std::vector<Case>& cases, size_t count) {
  OperandSource src(0xfa11);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t a32 = static_cast<uint32_t>(src.bits(8, 23));
    const uint32_t b32 = static_cast<uint32_t>(src.bits(8, 23));
    uint32_t ignored = 0;
    const uint32_t p32 = f32Mul(a32, b32, RoundingMode::RTZ, ignored);
    cases.push_back({5 + static_cast<unsigned>(src.next() % 4), src.rm(), a32, b32, src.near(p32, 8, 23)});
    const uint64_t a64 = src.bits(11, 52), b64 = src.bits(11, 52);
    const uint64_t p64 = f64Mul(a64, b64, RoundingMode::RTZ, ignored);
    cases.push_back({37 + static_cast<unsigned>(src.next() % 4), src.rm(), a64, b64, src.near(p64, 11, 52)});
  }
}

TEST(FpCrossCheck, MatchesRiscvInstructionsUnderQemu) {
  if (!toolOnPath("riscv64-linux-gnu-gcc") || !toolOnPath("qemu-riscv64")) {
    GTEST_SKIP() << "riscv64-linux-gnu-gcc or qemu-riscv64 not installed";
  }
  const fs::path oracleSource = fs::path(__FILE__).parent_path() / "riscv_fp_oracle.c";
  ASSERT_TRUE(fs::exists(oracleSource)) << oracleSource;
  const fs::path dir = fs::temp_directory_path() / ("strata_fp_oracle_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path oracle = dir / "oracle", input = dir / "in.txt", output = dir / "out.txt";
  ASSERT_EQ(std::system(("riscv64-linux-gnu-gcc -O1 -static -o '" + oracle.string() + "' '" +
                         oracleSource.string() + "'")
                            .c_str()),
            0);

  std::vector<Case> cases = makeCases(6000);
  addCancellingFmaCases(cases, 20000);
  {
    std::ofstream in(input);
    char line[128];
    for (const Case& c : cases) {
      std::snprintf(line, sizeof line, "%u %u %llx %llx %llx\n", c.op, c.rm, static_cast<unsigned long long>(c.a),
                    static_cast<unsigned long long>(c.b), static_cast<unsigned long long>(c.c));
      in << line;
    }
  }
  ASSERT_EQ(std::system(("qemu-riscv64 '" + oracle.string() + "' < '" + input.string() + "' > '" +
                         output.string() + "'")
                            .c_str()),
            0);

  std::vector<Outcome> expected;
  {
    std::ifstream out(output);
    unsigned long long result = 0, flags = 0;
    while (out >> std::hex >> result >> flags) expected.push_back({result, static_cast<uint32_t>(flags)});
  }
  fs::remove_all(dir);
  ASSERT_EQ(expected.size(), cases.size()) << "oracle output ended early";

  // Both the host shortcuts and the pure software path must match.
  for (bool hostAcceleration : {true, false}) {
    SCOPED_TRACE(hostAcceleration ? "host acceleration on" : "software only");
    setHostAcceleration(hostAcceleration);
    size_t mismatches = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& c = cases[i];
      const Outcome got = evaluate(c);
      if (got.result != expected[i].result || got.flags != expected[i].flags) {
        if (++mismatches <= 20) {
          ADD_FAILURE() << std::hex << "op " << std::dec << c.op << " rm " << c.rm << std::hex << " a=" << c.a
                        << " b=" << c.b << " c=" << c.c << ": expected " << expected[i].result << " flags "
                        << expected[i].flags << ", got " << got.result << " flags " << got.flags;
        }
      }
    }
    EXPECT_EQ(mismatches, 0u) << "of " << cases.size() << " cases";
  }
  setHostAcceleration(true);
}

}  // namespace
}  // namespace strata::cpu::fp
