// The translator (--engine jit) against the interpreter: each program runs in
// S-mode on a fresh hart with each engine until it ecalls (the translator
// translating every block on first use), and everything
// architectural (x registers, pc, instret, trap CSRs, RAM written) must be
// identical, plus checks of the expected values themselves. Programs are
// built to hit what the translator generates: chained and indirect exits,
// the TLB fast and slow paths, traps in the middle of blocks, helper calls.
#include <chrono>
#include <thread>

#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

constexpr uint64_t kData = 0x80100000;  // a data area the programs read and write
constexpr uint64_t kDataBytes = 8192;
constexpr uint64_t kHandler = 0x80080000;

struct Outcome {
  uint64_t x[32], f[32];
  uint64_t pc, instret, sepc, scause, stval;
  std::vector<uint8_t> data;
  std::vector<EngineStat> stats;
};

class JitTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRamBase = 0x80000000;
  static constexpr uint64_t kRamSize = 4ull << 20;

  // Runs `program` at the RAM base in S-mode (bare translation) until an
  // ecall, with `handler` (if any) installed at kHandler as stvec.
  // translateThreshold above 1 lets the blocks after a branch be decoded
  // (interpreted) before the branch's block is translated, as in a guest.
  Outcome runOn(EngineKind engine, const std::vector<uint32_t>& program, const std::vector<uint32_t>& handler = {},
                const std::function<void(Hart&, uint8_t* ram)>& setup = {}, uint32_t translateThreshold = 1) {
    ProgramHart run(program, kRamBase, kRamSize, EngineConfig{engine, translateThreshold});
    Hart& hart = *run.hart;
    uint8_t* ram = run.ram.get();
    std::memcpy(ram + (kHandler - kRamBase), handler.data(), handler.size() * 4);
    for (unsigned i = 0; i < 4096; ++i) ram[(kData - kRamBase) + i] = static_cast<uint8_t>(i * 7 + 3);
    hart.writeCsr(csr::kStvec, kHandler);
    if (setup) setup(hart, ram);
    EXPECT_EQ(hart.run(), ExitReason::HartStopped);
    Outcome out;
    for (unsigned i = 0; i < 32; ++i) out.x[i] = hart.xreg(i);
    for (unsigned i = 0; i < 32; ++i) out.f[i] = hart.freg(i);
    out.pc = hart.pc();
    out.instret = hart.instructionsRetired();
    out.sepc = *hart.readCsr(csr::kSepc);
    out.scause = *hart.readCsr(csr::kScause);
    out.stval = *hart.readCsr(csr::kStval);
    out.data.assign(ram + (kData - kRamBase), ram + (kData - kRamBase) + kDataBytes);
    out.stats = hart.engineStats();
    return out;
  }

  // Runs on both engines, expects identical outcomes, returns the JIT's.
  Outcome runBoth(const std::vector<uint32_t>& program, const std::vector<uint32_t>& handler = {},
                  const std::function<void(Hart&, uint8_t* ram)>& setup = {}, uint32_t translateThreshold = 1) {
    const Outcome interp = runOn(EngineKind::Interpreter, program, handler, setup);
    const Outcome jit = runOn(EngineKind::Jit, program, handler, setup, translateThreshold);
    for (unsigned i = 0; i < 32; ++i) EXPECT_EQ(jit.x[i], interp.x[i]) << "x" << i;
    for (unsigned i = 0; i < 32; ++i) EXPECT_EQ(jit.f[i], interp.f[i]) << "f" << i;
    EXPECT_EQ(jit.pc, interp.pc);
    EXPECT_EQ(jit.instret, interp.instret);
    EXPECT_EQ(jit.sepc, interp.sepc);
    EXPECT_EQ(jit.scause, interp.scause);
    EXPECT_EQ(jit.stval, interp.stval);
    EXPECT_TRUE(jit.data == interp.data) << "data areas differ";
    return jit;
  }

  static uint64_t stat(const Outcome& o, const std::string& name) {
    for (const auto& s : o.stats)
      if (s.name == name) return s.value;
    ADD_FAILURE() << "no stat " << name;
    return 0;
  }
};

// As the first instruction of a program (at the RAM base): rd = kData.
uint32_t dataPointer(unsigned rd) { return auipc(rd, static_cast<int32_t>(kData - 0x80000000)); }

TEST_F(JitTest, EveryIntegerOperationOverOperandPairs) {
  // For each of 16 operand pairs (a, b) from the data area, compute every
  // RV64IM register-register and immediate operation and store the results.
  std::vector<uint32_t> program = {
      dataPointer(s0),     // s0 = inputs
      addi(s1, s0, 256),   // s1 = outputs
      addi(s2, zero, 16),  // pairs left
  };
  const size_t loopStart = program.size();
  program.insert(program.end(), {
      ld(a0, s0, 0), ld(a1, s0, 8),
      add(t0, a0, a1), sd(t0, s1, 0), sub(t0, a0, a1), sd(t0, s1, 8),
      sll(t0, a0, a1), sd(t0, s1, 16), slt(t0, a0, a1), sd(t0, s1, 24),
      sltu(t0, a0, a1), sd(t0, s1, 32), xor_(t0, a0, a1), sd(t0, s1, 40),
      srl(t0, a0, a1), sd(t0, s1, 48), sra(t0, a0, a1), sd(t0, s1, 56),
      or_(t0, a0, a1), sd(t0, s1, 64), and_(t0, a0, a1), sd(t0, s1, 72),
      addw(t0, a0, a1), sd(t0, s1, 80), subw(t0, a0, a1), sd(t0, s1, 88),
      sllw(t0, a0, a1), sd(t0, s1, 96), srlw(t0, a0, a1), sd(t0, s1, 104),
      sraw(t0, a0, a1), sd(t0, s1, 112), mul(t0, a0, a1), sd(t0, s1, 120),
      mulh(t0, a0, a1), sd(t0, s1, 128), mulhsu(t0, a0, a1), sd(t0, s1, 136),
      mulhu(t0, a0, a1), sd(t0, s1, 144), div(t0, a0, a1), sd(t0, s1, 152),
      divu(t0, a0, a1), sd(t0, s1, 160), rem(t0, a0, a1), sd(t0, s1, 168),
      remu(t0, a0, a1), sd(t0, s1, 176), mulw(t0, a0, a1), sd(t0, s1, 184),
      divw(t0, a0, a1), sd(t0, s1, 192), divuw(t0, a0, a1), sd(t0, s1, 200),
      remw(t0, a0, a1), sd(t0, s1, 208), remuw(t0, a0, a1), sd(t0, s1, 216),
      addi(t0, a0, -2048), sd(t0, s1, 224), slti(t0, a0, -1), sd(t0, s1, 232),
      sltiu(t0, a0, -1), sd(t0, s1, 240), xori(t0, a0, -1), sd(t0, s1, 248),
      ori(t0, a0, 0x555), sd(t0, s1, 256), andi(t0, a0, -16), sd(t0, s1, 264),
      slli(t0, a0, 63), sd(t0, s1, 272), srli(t0, a0, 1), sd(t0, s1, 280),
      srai(t0, a0, 7), sd(t0, s1, 288), addiw(t0, a0, 1), sd(t0, s1, 296),
      slliw(t0, a0, 31), sd(t0, s1, 304), srliw(t0, a0, 3), sd(t0, s1, 312),
      sraiw(t0, a0, 31), sd(t0, s1, 320),
      lb(t0, s0, 3), sd(t0, s1, 328), lbu(t0, s0, 3), sd(t0, s1, 336),
      lh(t0, s0, 2), sd(t0, s1, 344), lhu(t0, s0, 2), sd(t0, s1, 352),
      lw(t0, s0, 4), sd(t0, s1, 360), lwu(t0, s0, 4), sd(t0, s1, 368),
      sb(a1, s1, 376), sh(a1, s1, 378), sw(a1, s1, 380),
      addi(zero, a0, 1), add(zero, a0, a1),  // writes to x0 vanish
      addi(s0, s0, 16), addi(s1, s1, 384), addi(s2, s2, -1),
  });
  const auto loopLength = static_cast<int32_t>(program.size() - loopStart + 1);
  program.push_back(bne(s2, zero, -4 * (loopLength - 1)));
  program.push_back(ecall);
  const Outcome out = runBoth(program, {}, [](Hart&, uint8_t* ram) {
    // Operand pairs with the interesting corners: zero divisors, INT_MIN / -1, shifts past 31/63.
    const uint64_t values[] = {0, 1, ~0ull, 0x8000000000000000ull, 0x7fffffffffffffffull, 0xffffffff80000000ull,
                               0x80000000ull, 63, 64, 31, 0x123456789abcdef0ull, 0xfedcba9876543210ull, 2, 3, 17, 5};
    for (unsigned i = 0; i < 16; ++i) {
      const uint64_t a = values[i], b = values[(i * 5 + 3) % 16];
      std::memcpy(ram + (kData - kRamBase) + 16 * i, &a, 8);
      std::memcpy(ram + (kData - kRamBase) + 16 * i + 8, &b, 8);
    }
  });
  // Spot checks of the arithmetic itself: pair 0 is (0, INT64_MIN), pair 9 is (31, 0).
  uint64_t first[48], ninth[48];
  std::memcpy(first, out.data.data() + 256, sizeof(first));
  std::memcpy(ninth, out.data.data() + 256 + 9 * 384, sizeof(ninth));
  EXPECT_EQ(first[0], 0x8000000000000000ull);  // add
  EXPECT_EQ(first[1], 0x8000000000000000ull);  // sub
  EXPECT_EQ(ninth[19], ~0ull);                 // div by zero
  EXPECT_EQ(ninth[21], 31u);                   // rem by zero
  EXPECT_EQ(ninth[28], static_cast<uint64_t>(31 - 2048));  // addi -2048
  EXPECT_EQ(out.instret, 3u + 16u * loopLength + 1);  // the loop 16 times, then the ecall
  EXPECT_LT(stat(out, "dispatches"), 16u);  // the loop goes back to its own translation, not through the run loop
  EXPECT_GT(stat(out, "blocks_translated"), 0u);
}

TEST_F(JitTest, DivisionCornerCasesMatchTheArchitecture) {
  const std::vector<uint32_t> program = {
      addi(a0, zero, 7), addi(a1, zero, 0), addi(a2, zero, -1),
      slli(a3, a2, 63),             // INT64_MIN
      div(s2, a0, a1),              // -1
      rem(s3, a0, a1),              // 7
      div(s4, a3, a2),              // INT64_MIN
      rem(s5, a3, a2),              // 0
      divuw(s6, a0, a1),            // all ones
      remw(s7, a3, a2),             // low word 0 / -1: 0
      ecall,
  };
  const Outcome out = runBoth(program);
  EXPECT_EQ(out.x[s2], ~0ull);
  EXPECT_EQ(out.x[s3], 7u);
  EXPECT_EQ(out.x[s4], 0x8000000000000000ull);
  EXPECT_EQ(out.x[s5], 0u);
  EXPECT_EQ(out.x[s6], ~0ull);
  EXPECT_EQ(out.x[s7], 0u);
}

// F/D instructions, which the translator runs inline when the host's result
// and flags are exact and through the interpreter's executor otherwise, over
// operands chosen for both: NaN payloads and signaling NaNs, infinities,
// signed zeros, subnormals and the smallest normal, overflow, ties and
// integer-range edges, an improperly boxed single, in every rounding mode.
// Every result and the fflags after every instruction must match.
struct FpOperation {
  uint32_t insn;
  bool integerResult;  // in t0, else in f10
};
std::vector<FpOperation> fpOperations() {
  const unsigned fa = 1, fb = 2, fc = 3, sa = 4, sb = 5, sc = 6, fr = 10;
  std::vector<FpOperation> ops;
  auto toFloat = [&](uint32_t insn) { ops.push_back({insn, false}); };
  auto toInteger = [&](uint32_t insn) { ops.push_back({insn, true}); };
  for (unsigned funct7 : {0x01u, 0x05u, 0x09u, 0x0du}) toFloat(fop(funct7, fr, fa, fb));  // fadd..fdiv.d
  for (unsigned funct7 : {0x00u, 0x04u, 0x08u, 0x0cu}) toFloat(fop(funct7, fr, sa, sb));  // fadd..fdiv.s
  toFloat(fop(0x2d, fr, fa, 0)), toFloat(fop(0x2d, fr, fc, 0)), toFloat(fop(0x2c, fr, sa, 0));  // fsqrt
  toFloat(fop(0x2c, fr, sc, 0));
  for (uint32_t opcode : {kOpMadd, kOpMsub, kOpNmsub, kOpNmadd}) {
    toFloat(fr4(opcode, 1, fr, fa, fb, fc));
    toFloat(fr4(opcode, 0, fr, sa, sb, sc));
  }
  for (unsigned rm = 0; rm < 3; ++rm) toFloat(fop(0x11, fr, fa, fb, rm)), toFloat(fop(0x10, fr, sa, sb, rm));  // fsgnj*
  for (unsigned rm = 0; rm < 2; ++rm) toFloat(fop(0x15, fr, fa, fb, rm)), toFloat(fop(0x14, fr, sa, sb, rm));  // fmin/fmax
  for (unsigned rm = 0; rm < 3; ++rm) toInteger(fop(0x51, t0, fa, fb, rm)), toInteger(fop(0x50, t0, sa, sb, rm));  // fle/flt/feq
  toFloat(fop(0x20, fr, fa, 1)), toFloat(fop(0x20, fr, fc, 1)), toFloat(fop(0x21, fr, sa, 0));  // fcvt.s.d, fcvt.d.s
  for (unsigned rm : {7u, 1u, 0u}) {
    toInteger(fop(0x61, t0, fa, 0, rm)), toInteger(fop(0x61, t0, fa, 2, rm));  // fcvt.w.d, fcvt.l.d
    toInteger(fop(0x60, t0, sa, 0, rm)), toInteger(fop(0x60, t0, sa, 2, rm));  // fcvt.w.s, fcvt.l.s
  }
  toInteger(fop(0x61, t0, fa, 1)), toInteger(fop(0x60, t0, sa, 3));  // fcvt.wu.d, fcvt.lu.s (executor)
  for (unsigned source : {unsigned{a0}, unsigned{a1}, unsigned{a2}}) {  // raw bits, a word, bits >> 20
    for (unsigned rs2 = 0; rs2 < 3; ++rs2) toFloat(fop(0x69, fr, source, rs2)), toFloat(fop(0x68, fr, source, rs2));
  }
  toInteger(fop(0x71, t0, fa, 0, 0)), toInteger(fop(0x70, t0, sa, 0, 0));  // fmv.x.d, fmv.x.w
  toFloat(fop(0x79, fr, a0, 0, 0)), toFloat(fop(0x78, fr, a1, 0, 0));      // fmv.d.x, fmv.w.x
  toFloat(fop(0x00, fr, fa, sb));                                          // fa is not a boxed single
  toFloat(fop(0x01, fr, fa, fb, 0)), toFloat(fop(0x01, fr, fa, fb, 1));   // static RNE, static RTZ
  toInteger(fop(0x71, t0, fa, 0, 1));                                      // fclass.d
  return ops;
}

TEST_F(JitTest, FloatingPointMatchesTheInterpreterInEveryRoundingMode) {
  // Operand triples: binary64 (a, b, c) and binary32 (a, b, c), four per run.
  const uint64_t doubles[][3] = {
      {0x3ff0000000000000, 0xbff8000000000000, 0x3fb999999999999a},  // 1, -1.5, 0.1
      {0x3fb999999999999a, 0x4008000000000000, 0x01a56e1fc2f8f359},  // 0.1, 3, 1e-300
      {0x7fe1ccf385ebc8a0, 0x4024000000000000, 0xffe1ccf385ebc8a0},  // 1e308, 10, -1e308
      {0x0010000000000000, 0x3fe0000000000000, 0x0000000000000001},  // smallest normal, 0.5, smallest subnormal
      {0x8000000000000000, 0x0000000000000000, 0x8000000000000000},  // -0, +0, -0
      {0x7ff0000000000000, 0xfff0000000000000, 0x3ff0000000000000},  // inf, -inf, 1
      {0x7ff8000000000123, 0x4000000000000000, 0x7ff0000000000001},  // qNaN with payload, 2, sNaN
      {0x4004000000000000, 0xc004000000000000, 0x41e65a0bc0000000},  // 2.5, -2.5, 3e9
      {0x0008000000000000, 0x4008000000000000, 0x3ff0000000000000},  // subnormal, 3, 1
      {0x3fd5555555555555, 0x401c000000000000, 0xbfe5555555555555},  // 1/3, 7, -2/3
      {0x43e0000000000000, 0xc3e0000000000000, 0x41e0000000000000},  // 2^63, -2^63, 2^31
      {0xc1e0000000000000, 0xc1e0000000100000, 0x3ff8000000000000},  // -2^31, -2^31 - 0.5, 1.5
      {0x7fefffffffffffff, 0x3ff0000000000001, 0x4000000000000000},  // largest, 1 + ulp, 2
      {0x4010000000000000, 0x4010000000000000, 0xbff0000000000000},  // 4, 4, -1
      {0xbff0000000000000, 0x7ff8000000000000, 0x7ff0000000000001},  // -1, qNaN, sNaN
      {0x419d6f3454f9db23, 0x00001d6329f1c35c, 0x0010000000000001},  // 123456789.2, 1e-310, smallest normal + ulp
  };
  const uint32_t singles[][3] = {
      {0x3f800000, 0xbfc00000, 0x3dcccccd}, {0x3dcccccd, 0x40400000, 0x0da24260}, {0x7f7fffff, 0x41200000, 0xff7fffff},
      {0x00800000, 0x3f000000, 0x00000001}, {0x80000000, 0x00000000, 0x80000000}, {0x7f800000, 0xff800000, 0x3f800000},
      {0x7fc00123, 0x40000000, 0x7f800001}, {0x40200000, 0xc0200000, 0x4f32d05e}, {0x00400000, 0x40400000, 0x3f800000},
      {0x3eaaaaab, 0x40e00000, 0xbf2aaaab}, {0x5f000000, 0xdf000000, 0x4f000000}, {0xcf000000, 0xcf000001, 0x3fc00000},
      {0x7f7fffff, 0x3f800001, 0x40000000}, {0x40800000, 0x40800000, 0xbf800000}, {0xbf800000, 0x7fc00000, 0x7f800001},
      {0x4ceb79a3, 0x00000100, 0x00800001},
  };
  constexpr unsigned kTriplesPerRun = 4, kOutputs = 1024;
  const std::vector<FpOperation> ops = fpOperations();
  const auto slot = [&](unsigned triple, size_t op) { return kOutputs + (triple * ops.size() + op) * 16; };
  ASSERT_LE(slot(kTriplesPerRun, 0), kDataBytes);
  // s0 = doubles, s3 = singles, s1 = outputs, s2 = triples left.
  std::vector<uint32_t> program = {dataPointer(s0), addi(s3, s0, 512), addi(s1, s0, kOutputs),
                                   addi(s2, zero, kTriplesPerRun)};
  const size_t loopStart = program.size();
  program.insert(program.end(), {fld(1, s0, 0), fld(2, s0, 8), fld(3, s0, 16), flw(4, s3, 0), flw(5, s3, 4),
                                 flw(6, s3, 8), ld(a0, s0, 0), lw(a1, s3, 0), srai(a2, a0, 20),
                                 csrw(csr::kFflags, zero)});
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto offset = static_cast<int32_t>(slot(0, i) - kOutputs);
    program.push_back(ops[i].insn);
    program.push_back(ops[i].integerResult ? sd(t0, s1, offset) : fsd(10, s1, offset));
    program.push_back(csrr(t1, csr::kFflags));
    program.push_back(sd(t1, s1, offset + 8));
  }
  program.insert(program.end(), {addi(s0, s0, 24), addi(s3, s3, 12), addi(s1, s1, static_cast<int32_t>(ops.size() * 16)),
                                 addi(s2, s2, -1)});
  program.push_back(bne(s2, zero, -4 * static_cast<int32_t>(program.size() - loopStart)));
  program.push_back(ecall);
  ASSERT_LT(program.size() * 4, kData - kRamBase);

  const auto result = [&](const Outcome& out, unsigned triple, size_t op, unsigned part) {
    uint64_t value;
    std::memcpy(&value, out.data.data() + slot(triple, op) + 8 * part, 8);
    return value;
  };
  for (unsigned first = 0; first < 16; first += kTriplesPerRun) {
    for (uint32_t mode = 0; mode <= 4; ++mode) {
      SCOPED_TRACE("triples from " + std::to_string(first) + ", frm " + std::to_string(mode));
      const Outcome out = runBoth(program, {}, [&](Hart& hart, uint8_t* ram) {
        hart.writeCsr(csr::kMstatus, *hart.readCsr(csr::kMstatus) | csr::kFsInitial);
        hart.writeCsr(csr::kFrm, mode);
        std::memcpy(ram + (kData - kRamBase), doubles[first], sizeof(doubles[0]) * kTriplesPerRun);
        std::memcpy(ram + (kData - kRamBase) + 512, singles[first], sizeof(singles[0]) * kTriplesPerRun);
      });
      EXPECT_EQ(out.scause, 0u) << "no trap expected";
      if (first == 0 && mode == 0) {  // fadd.d, then fmul.d, on triples 0, 1, 2 and 6
        EXPECT_EQ(result(out, 0, 0, 0), 0xbfe0000000000000u);  // 1 + -1.5 = -0.5, exact
        EXPECT_EQ(result(out, 0, 0, 1), 0u);
        EXPECT_EQ(result(out, 1, 0, 1), 1u);                   // 0.1 + 3: NX
        EXPECT_EQ(result(out, 2, 2, 0), 0x7ff0000000000000u);  // 1e308 * 10 = inf: OF | NX
        EXPECT_EQ(result(out, 2, 2, 1), 5u);
        EXPECT_EQ(result(out, 3, 2, 0), 0x0008000000000000u);  // smallest normal * 0.5: tiny but exact,
        EXPECT_EQ(result(out, 3, 2, 1), 1u);                   // so no UF (NX is fsub's)
      }
      if (first == 4 && mode == 0) {
        EXPECT_EQ(result(out, 2, 0, 0), 0x7ff8000000000000u);  // qNaN + 2 = the canonical NaN, no flags
        EXPECT_EQ(result(out, 2, 0, 1), 0u);
        EXPECT_EQ(result(out, 1, 0, 1), 0x10u);                // inf + -inf: NV
      }
    }
  }
}

TEST_F(JitTest, KeptFpRegistersAreExactAcrossSlowPathsHelpersAndTraps) {
  // Doubles only, so the translations keep f1..f12 in xmm registers: the
  // loop (a translation looping to its own start) runs an underflowing
  // multiply (its slow path, every iteration) whose result the next
  // instructions read, executor-only instructions reading (fcvt.wu.d,
  // fclass.d) and writing (fcvt.d.lu) kept registers, an integer helper
  // (div), stores of kept registers, and an fflags clear (so every
  // iteration's first inexact result takes the MXCSR path). After it, a
  // block writes f8 twice and traps in its middle: the handler stores f8.
  const uint32_t fadd = 0x01, fsub = 0x05, fmul = 0x09, fsgnj = 0x11, fminmax = 0x15, fcompare = 0x51,
                 fcvtToInt = 0x61, fcvtFromInt = 0x69, fmvToX = 0x71, fmvFromX = 0x79;
  std::vector<uint32_t> program = {
      dataPointer(s0), fld(1, s0, 0), fld(2, s0, 8), fld(3, s0, 16), addi(t1, zero, 20), addi(s4, zero, 3),
  };
  const std::vector<uint32_t> loop = {
      fop(fadd, 4, 1, 2), fop(fmul, 5, 4, 2),
      fop(fmul, 6, 3, 3),  // 2^-600 squared: zero, UF and NX, in software
      fop(fadd, 6, 6, 5), fop(fsub, 1, 5, 6),
      fop(fcvtToInt, t2, 4, 1, 1),                      // fcvt.wu.d, rtz: the executor
      fop(fmvToX, a7, 4, 0, 1),                         // fclass.d: the executor
      fop(fcvtFromInt, 7, t1, 3), fop(fadd, 1, 1, 7),  // fcvt.d.lu: the executor writes f7
      div(t3, t2, s4),
      fsd(1, s0, 24), fsd(6, s0, 32),
      csrw(csr::kFflags, zero),
      fop(fsgnj, 9, 1, 2, 1), fop(fcompare, t5, 9, 1, 1), fop(fmvToX, a5, 9, 0, 0), fop(fmvFromX, 10, a5, 0, 0),
      fop(fminmax, 10, 10, 1, 1), fop(fcvtFromInt, 11, t1, 0), fop(fcvtToInt, a6, 5, 0),
      fr4(kOpMadd, 1, 12, 1, 2, 5), fop(fadd, 1, 12, 11),
      addi(t1, t1, -1),
  };
  program.insert(program.end(), loop.begin(), loop.end());
  program.push_back(bne(t1, zero, -4 * static_cast<int32_t>(loop.size())));
  program.insert(program.end(), {
      fop(fadd, 8, 1, 2), fop(fmul, 8, 8, 8),
      lui(t6, 0x40000000), ld(t4, t6, 8),  // nothing lives there: faults
      fop(fadd, 8, 8, 8), ecall,
  });
  const std::vector<uint32_t> handler = {csrr(s2, csr::kInstret), fsd(8, s0, 40), ecall};
  const uint64_t inputs[] = {0x3ff8000000000000, 0x3fb999999999999a, 0x1a70000000000000};  // 1.5, 0.1, 2^-600
  const Outcome out = runBoth(program, handler, [&](Hart& hart, uint8_t* ram) {
    hart.writeCsr(csr::kMstatus, *hart.readCsr(csr::kMstatus) | csr::kFsInitial);
    std::memcpy(ram + (kData - kRamBase), inputs, sizeof(inputs));
  });
  EXPECT_EQ(out.scause, csr::kLoadAccessFault);
  uint64_t stored;
  std::memcpy(&stored, out.data.data() + 40, 8);
  EXPECT_EQ(stored, out.f[8]);  // the trap left f8 (written in an xmm register) in the hart
  double f8;
  std::memcpy(&f8, &out.f[8], 8);
  EXPECT_GT(f8, 1.0);
  EXPECT_EQ(out.f[6] & ~(1ull << 63), out.f[5] & ~(1ull << 63));  // f6 = 0 + f5 in the last iteration
  EXPECT_EQ(out.x[a7], 1u << 6);  // fclass.d of f4: a positive normal
}

TEST_F(JitTest, FusedPairsMatchTheInterpreter) {
  // lui/auipc + addi(w) and slli 32 + srli 32 on one register are emitted as
  // one operation; look-alikes on different registers, x0, and an auipc
  // whose sum is beyond a 32-bit displacement are not, and all must compute
  // what the interpreter computes. A trap right after a pair retires it.
  const std::vector<uint32_t> program = {
      lui(a0, 0x12345000), addi(a0, a0, -1),             // 0x12344fff
      lui(a1, static_cast<int32_t>(0x80000000)), addi(a1, a1, -2048),  // sign-extended upper half
      lui(a2, 0x7ffff000), addiw(a2, a2, 0x7ff),         // wraps to negative in 32 bits
      auipc(a3, 0x1000), addi(a3, a3, 12),
      auipc(a4, static_cast<int32_t>(0x80000000)), addi(a4, a4, -2048),  // displacement below INT32_MIN
      auipc(a5, 0x7ffff000), addiw(a5, a5, 0x7ff),
      addi(s3, zero, -5), slli(s3, s3, 32), srli(s3, s3, 32),   // s3 = 0xfffffffb... then the pair
      addi(s4, zero, -7), slli(s5, s4, 32), srli(s5, s5, 32),   // pair from another source register
      lui(s6, 0x1000), addi(s7, s6, 1),                  // different rd: not a pair
      slli(s8, s4, 32), srli(s8, s8, 31),                // shift amounts differ: not a pair
      lui(zero, 0x5000), addi(zero, zero, 1),            // x0 stays 0
      lui(t0, 0x40000000), addi(t0, t0, 8),              // nothing lives at 0x40000008
      ld(t1, t0, 0),                                     // faults right after the pair
      ecall,
  };
  const std::vector<uint32_t> handler = {csrr(s2, csr::kInstret), ecall};
  const Outcome out = runBoth(program, handler);
  EXPECT_EQ(out.x[a0], 0x12344fffu);
  EXPECT_EQ(out.x[a1], 0xffffffff7ffff800u);
  EXPECT_EQ(out.x[a2], 0x000000007ffff7ffu);
  EXPECT_EQ(out.x[a3], kRamBase + 24 + 0x1000 + 12);
  EXPECT_EQ(out.x[a4], kRamBase + 32 - 0x80000000ull - 2048);
  EXPECT_EQ(out.x[a5], static_cast<uint64_t>(static_cast<int32_t>(static_cast<uint32_t>(kRamBase + 40 + 0x7ffff000 + 0x7ff))));
  EXPECT_EQ(out.x[s3], 0xfffffffbu);
  EXPECT_EQ(out.x[s5], 0xfffffff9u);
  EXPECT_EQ(out.x[s7], 0x1001u);
  EXPECT_EQ(out.x[s8], 0x1fffffff2u);
  EXPECT_EQ(out.x[zero], 0u);
  EXPECT_EQ(out.scause, csr::kLoadAccessFault);
  EXPECT_EQ(out.sepc, kRamBase + 4 * 26);
  EXPECT_EQ(out.x[s2], 26u);
}

// A CRC-style loop whose short forward branches over in-place updates the
// translator turns into conditional moves (every branch kind, pinned and
// in-memory destinations, taken and not), translated with the blocks after
// its branches; then a loop whose translation faults on its 4th round right
// after such a branch: registers, instret and the trap must match the
// interpreter's, and so must single steps through the same code.
std::vector<uint32_t> conditionalSkipProgram() {
  std::vector<uint32_t> program = {
      dataPointer(t5),
      addi(a2, zero, 0x5a5), addi(a0, zero, 0x3c3), addi(s1, zero, 0x301), addi(t0, zero, 40),
      addi(t4, zero, 2), addi(a4, zero, 0), lui(s3, 0x100000), addi(t6, zero, 0),
  };
  const std::vector<uint32_t> crcLoop = {
      andi(t2, a2, 1), srli(a2, a2, 1),
      beq(t2, zero, 16), xor_(a2, a2, s1), slli(a2, a2, 48), srli(a2, a2, 48),  // a2 in memory
      andi(t3, a0, 3),
      bltu(t3, t4, 8), addi(a0, a0, 7),     // a0 pinned
      bge(a0, a2, 8), ori(a0, a0, 0x100),
      bne(t3, zero, 8), add(a4, a4, a2),     // a4 pinned
      bgeu(a2, a0, 12), sub(a2, a2, a0), srai(a2, a2, 1),
      blt(a0, a2, 8), and_(a2, a2, a0),
      addi(a0, a0, 1), andi(a0, a0, 0x3ff),
      addi(t0, t0, -1),
  };
  program.insert(program.end(), crcLoop.begin(), crcLoop.end());
  program.push_back(bne(t0, zero, -4 * static_cast<int32_t>(crcLoop.size())));
  const std::vector<uint32_t> faultLoop = {
      andi(t3, t6, 1), beq(t3, zero, 8), addi(a1, a1, 3),
      ld(t1, t5, 0),  // kData + n MiB: beyond RAM on the 4th round
      add(t5, t5, s3), addi(t6, t6, 1),
  };
  program.insert(program.end(), faultLoop.begin(), faultLoop.end());
  program.push_back(jal(zero, -4 * static_cast<int32_t>(faultLoop.size())));
  return program;
}

TEST_F(JitTest, ConditionalSkipsBecomeConditionalMovesExactly) {
  const std::vector<uint32_t> program = conditionalSkipProgram();
  const std::vector<uint32_t> handler = {csrr(s2, csr::kInstret), ecall};
  const Outcome out = runBoth(program, handler, {}, 3);
  EXPECT_EQ(out.scause, csr::kLoadAccessFault);
  EXPECT_EQ(out.stval, kData + (3u << 20));
  EXPECT_EQ(out.x[t6], 3u);
  EXPECT_EQ(out.x[a1], 6u);  // rounds with t6 odd add 3; the 4th (t6 = 3) faults after its add
  EXPECT_GT(stat(out, "blocks_translated"), 0u);
}

TEST_F(JitTest, StepThroughConditionalSkipsRetiresExactly) {
  const std::vector<uint32_t> program = conditionalSkipProgram();
  for (uint64_t n : {9u, 12u, 13u, 40u, 97u, 500u}) {
    ProgramHart jit(program, kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 2});
    ProgramHart interp(program, kRamBase, kRamSize, EngineConfig{EngineKind::Interpreter});
    EXPECT_EQ(jit.hart->step(n), n);
    EXPECT_EQ(interp.hart->step(n), n);
    EXPECT_EQ(jit.hart->pc(), interp.hart->pc()) << "n = " << n;
    EXPECT_EQ(jit.hart->instructionsRetired(), n);
    for (unsigned i = 0; i < 32; ++i) EXPECT_EQ(jit.hart->xreg(i), interp.hart->xreg(i)) << "x" << i << ", n = " << n;
  }
}

TEST_F(JitTest, BorrowedRegistersAreExactAcrossHelpersSlowPathsAndTraps) {
  // Blocks that use t0 (unpinned) often and never name s0 or sp (pinned):
  // t0 lives in their host registers there, through a helper call (div), a
  // TLB miss (the first access to the data page), the loop's exits, and a
  // trap in the middle of the last block.
  std::vector<uint32_t> program = {
      dataPointer(t5), addi(t0, zero, 7), addi(t1, zero, 50), addi(s4, zero, 3), addi(s0, zero, 99),
  };
  const std::vector<uint32_t> loop = {
      add(t0, t0, t1), slli(t0, t0, 1), xor_(t0, t0, t1), div(t2, t0, s4), add(t0, t0, t2),
      sd(t0, t5, 0), ld(t3, t5, 0), add(t0, t0, t3), srli(t0, t0, 3), addi(t1, t1, -1),
  };
  program.insert(program.end(), loop.begin(), loop.end());
  program.push_back(bne(t1, zero, -4 * static_cast<int32_t>(loop.size())));
  program.insert(program.end(), {
      add(t0, t0, t0), addi(t0, t0, 5), add(t0, t0, t0), addi(t0, t0, 5), add(t0, t0, t0),
      lui(t6, 0x40000000), ld(t4, t6, 8),  // nothing lives there: faults
      addi(t0, zero, 0), ecall,
  });
  const std::vector<uint32_t> handler = {csrr(s2, csr::kInstret), ecall};
  const Outcome out = runBoth(program, handler);
  EXPECT_EQ(out.scause, csr::kLoadAccessFault);
  EXPECT_EQ(out.x[s0], 99u);
  EXPECT_NE(out.x[t0], 0u);
}

TEST_F(JitTest, TrapInTheMiddleOfABlockIsPrecise) {
  // The load from an address with no RAM or device faults at index 3 of the
  // block: the instructions before it are retired, the ones after are not.
  const std::vector<uint32_t> program = {
      addi(a0, zero, 11),
      addi(a1, zero, 22),
      lui(t0, 0x40000000),          // nothing lives at 0x40000000
      ld(a2, t0, 8),                // faults
      addi(a3, zero, 33),           // never runs
      ecall,
  };
  const std::vector<uint32_t> handler = {
      csrr(s2, csr::kInstret),
      ecall,
  };
  const Outcome out = runBoth(program, handler);
  EXPECT_EQ(out.sepc, kRamBase + 12);
  EXPECT_EQ(out.scause, csr::kLoadAccessFault);
  EXPECT_EQ(out.stval, 0x40000008u);
  EXPECT_EQ(out.x[a0], 11u);
  EXPECT_EQ(out.x[a1], 22u);
  EXPECT_EQ(out.x[a3], 0u);
  EXPECT_EQ(out.x[s2], 3u);  // three instructions retired before the trap
}

TEST_F(JitTest, HelperExecutedInstructionsTrapPrecisely) {
  // A misaligned AMO (executed by the interpreter's executor) in mid-block,
  // then an illegal instruction; both must trap with exact pc and instret.
  const std::vector<uint32_t> program = {
      dataPointer(s0),
      addi(a0, s0, 2),
      amoadd_d(a1, a0, a0),         // misaligned: store/AMO misaligned fault
      addi(a3, zero, 1),
      ecall,
  };
  const std::vector<uint32_t> handler = {csrr(s2, csr::kInstret), ecall};
  const Outcome out = runBoth(program, handler);
  EXPECT_EQ(out.sepc, kRamBase + 8);
  EXPECT_EQ(out.scause, csr::kStoreMisaligned);
  EXPECT_EQ(out.x[s2], 2u);
  EXPECT_EQ(out.x[a3], 0u);

  const Outcome illegal = runBoth({addi(a0, zero, 1), 0xffffffff, ecall}, handler);
  EXPECT_EQ(illegal.sepc, kRamBase + 4);
  EXPECT_EQ(illegal.scause, csr::kIllegalInstruction);
  EXPECT_EQ(illegal.stval, 0xffffffffu);
}

TEST_F(JitTest, CallsAndReturnsGoThroughTheJumpCache) {
  // A loop calling a function 1000 times: jal + jalr (ret), with the function on another page.
  const int32_t toFunction = 0x2000;
  std::vector<uint32_t> program = {
      addi(s2, zero, 1000),
      addi(a0, zero, 0),
      // loop (index 2):
      jal(ra, toFunction - 8),      // call (from index 2: offset 8)
      addi(s2, s2, -1),
      bne(s2, zero, -8),
      ecall,
  };
  program.resize(toFunction / 4);
  program.push_back(addi(a0, a0, 3));
  program.push_back(jalr(zero, ra, 0));  // ret
  const Outcome out = runBoth(program);
  EXPECT_EQ(out.x[a0], 3000u);
  // The first call and return of each fill the jump cache through the
  // out-of-line lookup; the other 999 are served inline.
  EXPECT_GT(stat(out, "lookup_hits"), 0u);
  EXPECT_LT(stat(out, "lookup_hits"), 10u);
}

TEST_F(JitTest, SelfModifyingCodeIsSeenAfterFenceI) {
  // Runs `addi a0, a0, 1` at `patch`, rewrites it to `addi a0, a0, 100`,
  // fence.i, runs it again: 1 + 100.
  const std::vector<uint32_t> program = {
      auipc(s0, 0),                 // s0 = base
      lw(t1, s0, 40),               // the replacement word, stored at index 10
      jal(ra, 20),                  // call patch (index 7)
      sw(t1, s0, 28),               // rewrite index 7
      fence_i,
      jal(ra, 8),                   // call patch again
      ecall,
      addi(a0, a0, 1),              // index 7: patch
      jalr(zero, ra, 0),
      nop,
      addi(a0, a0, 100),            // index 10: the replacement (data)
  };
  const Outcome out = runBoth(program);
  EXPECT_EQ(out.x[a0], 101u);
  EXPECT_EQ(stat(out, "stale_pages_dropped"), 1u);  // the one page, rewritten before fence.i
}

TEST_F(JitTest, FenceIDropsOnlyThePagesWhoseCodeChanged) {
  // f (a0 += 1) and g (a1 += 1) on two pages of their own, each called before
  // and after f's first instruction is rewritten to a0 += 100 and fence.i:
  // only f's page is dropped; main's and g's translations stay.
  std::vector<uint32_t> program = {
      auipc(s0, 0),             // 0: s0 = base
      lw(t1, s0, 48),           // the replacement word (index 12)
      jal(ra, 0x2000 - 8),      // f
      jal(ra, 0x3000 - 12),     // g
      lui(t2, 0x2000),
      add(t2, s0, t2),          // t2 = f
      sw(t1, t2, 0),
      fence_i,
      jal(ra, 0x2000 - 32),     // f again
      jal(ra, 0x3000 - 36),     // g again
      ecall,
      nop,
      addi(a0, a0, 100),        // 12: the replacement (data)
  };
  program.resize(0x2000 / 4);
  program.push_back(addi(a0, a0, 1));  // f
  program.push_back(jalr(zero, ra, 0));
  program.resize(0x3000 / 4);
  program.push_back(addi(a1, a1, 1));  // g
  program.push_back(jalr(zero, ra, 0));
  const Outcome out = runBoth(program);
  EXPECT_EQ(out.x[a0], 101u);
  EXPECT_EQ(out.x[a1], 2u);
  EXPECT_EQ(stat(out, "stale_pages_dropped"), 1u);
  EXPECT_EQ(stat(out, "block_cache_flushes"), 1u);  // the reset's only
}

TEST_F(JitTest, FenceISeesCodeWrittenBehindTheHartsBack) {
  // The hart runs f (a0 += 1) and stops; the host rewrites f in RAM (as a
  // device's DMA or another hart would); after fence.i the hart runs the new
  // f (a0 += 100). A fence.i with nothing changed drops nothing.
  std::vector<uint32_t> program = {
      fence_i,
      jal(ra, 0x1000 - 4),   // f
      ecall,                 // the host rewrites f here
      fence_i,
      jal(ra, 0x1000 - 16),  // f again
      ecall,
  };
  program.resize(0x1000 / 4);
  program.push_back(addi(a0, a0, 1));  // f
  program.push_back(jalr(zero, ra, 0));
  for (EngineKind engine : {EngineKind::Interpreter, EngineKind::Jit}) {
    ProgramHart run(program, kRamBase, kRamSize, EngineConfig{engine, 1});
    EXPECT_EQ(run.hart->run(), ExitReason::HartStopped);
    EXPECT_EQ(run.hart->xreg(a0), 1u);
    const uint32_t replacement = addi(a0, a0, 100);
    std::memcpy(run.ram.get() + 0x1000, &replacement, 4);
    EXPECT_EQ(run.hart->run(), ExitReason::HartStopped);
    EXPECT_EQ(run.hart->xreg(a0), 101u);
    if (engine == EngineKind::Jit) {
      auto stats = run.stats();
      EXPECT_EQ(stats["stale_pages_dropped"], 1u);
      EXPECT_EQ(stats["block_cache_flushes"], 1u);
    }
  }
}

TEST_F(JitTest, SlowPathsPageCrossingAndMmio) {
  // A load and a store straddling a page boundary go through the slow path;
  // a store to a device reaches it through the bus.
  const std::vector<uint32_t> program = {
      auipc(s0, static_cast<int32_t>(kData + 0x1000 - 0x80000000)),
      ld(a0, s0, -4),               // straddles 0x80100ffc..0x80101003
      sd(a0, s0, -12),              // 0x80100ff4: inside the page, fast path
      addi(a1, zero, 0x5a),
      sw(a1, s0, -2),               // straddles
      lui(s1, 0x10000000),
      sw(a1, s1, 8),                // MMIO
      lw(a2, s1, 8),                // reads back the device register
      ecall,
  };
  const Outcome out = runBoth(program);
  EXPECT_EQ(out.x[a2], 0x5au);
  uint64_t crossed;
  std::memcpy(&crossed, out.data.data() + 0xff4, 8);
  EXPECT_EQ(crossed, out.x[a0]);
}

TEST_F(JitTest, AccessGroupsAreExactAcrossPagesMissesAndFaults) {
  // A loop whose stores and loads off s1 (and t4 = s1 + 16) share one TLB
  // probe: the group's range crosses into the next page on the 12th round,
  // whose first touch misses; a load off s2 between the members, a new page
  // every round, takes its slow path inside the group. Then a group on an
  // address with nothing behind it: its first member faults precisely.
  std::vector<uint32_t> program = {
      dataPointer(s1), addi(s1, s1, 0x7f8), addi(s1, s1, 0x6f8),  // kData + 0xef0
      auipc(s2, 0x200000), andi(s2, s2, -8), addi(t0, zero, 0x5a5), addi(a6, zero, 16), lui(t5, 0x1000),
  };
  const std::vector<uint32_t> loop = {
      sd(t0, s1, 0), ld(t3, s2, 0), sd(t0, s1, 8), addi(t4, s1, 16), sw(t3, t4, 0), ld(t2, s1, 8),
      add(t0, t0, t2), sb(t0, t4, 7), add(s2, s2, t5), addi(s1, s1, 24), addi(a6, a6, -1),
  };
  program.insert(program.end(), loop.begin(), loop.end());
  program.push_back(bne(a6, zero, -4 * static_cast<int32_t>(loop.size())));
  program.insert(program.end(), {lui(t6, 0x40000000), sd(t0, t6, 0), sd(t0, t6, 8), addi(t0, zero, 0), ecall});
  const std::vector<uint32_t> handler = {csrr(s3, csr::kInstret), ecall};
  for (const uint32_t threshold : {1u, 3u}) {
    const Outcome out = runBoth(program, handler, {}, threshold);
    EXPECT_EQ(out.scause, csr::kStoreAccessFault);
    EXPECT_EQ(out.stval, 0x40000000u);
    EXPECT_EQ(out.x[a6], 0u);
    EXPECT_NE(out.x[t0], 0u);  // the fault came before the addi
    EXPECT_GT(stat(out, "blocks_translated"), 0u);
  }
}

TEST_F(JitTest, CopyLoopClustersAreExactAcrossPagesAndFaults) {
  // A copy loop: loads off s3 and stores off s4 (and t4 = s4 + 8), two
  // groups in one cluster (two addend registers). The stores cross into the
  // next page on the 4th round. Then a cluster whose store group faults:
  // the loads before the faulting store retire, nothing after it.
  std::vector<uint32_t> program = {
      dataPointer(s3), addi(s4, s3, 0x7f0), addi(s4, s4, 0x7a8), addi(a7, zero, 12),  // s4 = kData + 0xf98
  };
  const std::vector<uint32_t> loop = {
      ld(t0, s3, 0), sd(t0, s4, 0), ld(t1, s3, 8), addi(t4, s4, 8), sd(t1, t4, 0), ld(t2, s3, 16), sd(t2, s4, 16),
      addi(s3, s3, 24), addi(s4, s4, 24), addi(a7, a7, -1),
  };
  program.insert(program.end(), loop.begin(), loop.end());
  program.push_back(bne(a7, zero, -4 * static_cast<int32_t>(loop.size())));
  program.insert(program.end(), {lui(t6, 0x40000000), ld(t0, s3, 0), sd(t0, t6, 0), ld(t1, s3, 8), sd(t1, t6, 8),
                                 addi(t0, zero, 0), ecall});
  const std::vector<uint32_t> handler = {csrr(s5, csr::kInstret), ecall};
  for (const uint32_t threshold : {1u, 3u}) {
    const Outcome out = runBoth(program, handler, {}, threshold);
    EXPECT_EQ(out.scause, csr::kStoreAccessFault);
    EXPECT_EQ(out.stval, 0x40000000u);
    EXPECT_EQ(out.x[a7], 0u);
    EXPECT_NE(out.x[t0], 0u);  // loaded, and the fault came before the addi
    EXPECT_EQ(std::memcmp(out.data.data(), out.data.data() + 0xf98, 12 * 24), 0);  // copied
  }
}

TEST_F(JitTest, ChainedLoopStillStopsOnRequest) {
  // `j .` chains to itself forever; requestStop() from another thread must end run().
  ProgramHart run({jal(zero, 0)}, kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
  Hart& hart = *run.hart;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    hart.requestStop();
  });
  EXPECT_EQ(hart.run(), ExitReason::StopRequested);
  stopper.join();
  EXPECT_GT(hart.instructionsRetired(), 1000u);
  EXPECT_EQ(hart.pc(), kRamBase);
}

TEST_F(JitTest, StepRetiresExactlyTheRequestedCount) {
  // step(n) through translated blocks and partial (interpreted) ones alike.
  const std::vector<uint32_t> program = {
      addi(a0, zero, 0),
      addi(a0, a0, 1), addi(a0, a0, 1), addi(a0, a0, 1),
      jal(zero, -12),
  };
  for (uint64_t n : {1u, 3u, 4u, 5u, 17u, 100u}) {
    ProgramHart run(program, kRamBase, kRamSize, EngineConfig{EngineKind::Jit, 1});
    Hart& hart = *run.hart;
    EXPECT_EQ(hart.step(n), n);
    EXPECT_EQ(hart.instructionsRetired(), n);
    // After n instructions: the first sets a0 = 0, then each 4-instruction round adds 3.
    const uint64_t rounds = (n - 1) / 4, extra = std::min<uint64_t>((n - 1) % 4, 3);
    EXPECT_EQ(hart.xreg(a0), rounds * 3 + extra) << "n = " << n;
  }
}

TEST(JitThreshold, ColdBlocksAreInterpretedUntilTheyRunOften) {
  // A 102400-iteration loop with the default threshold (16): the interpreter
  // runs it chained, counting the loop block's runs, and hands back to the run
  // loop as soon as the block is hot; it is translated then and the rest of
  // the loop runs translated (chained to itself, back in the run loop only at
  // timer polls). Before, the interpreter chained on for hundreds of blocks
  // per hand-back and the loop only got translated after 16 hand-backs. The
  // blocks before and after the
  // loop run once and are never translated.
  constexpr uint64_t kBase = 0x80000000, kSize = 1 << 20;
  const std::vector<uint32_t> program = {
      lui(a0, 0x19000),
      addi(a1, a1, 2), addi(a0, a0, -1), bne(a0, zero, -8),
      ecall,
  };
  ProgramHart run(program, kBase, kSize, EngineKind::Jit);
  EXPECT_EQ(run.hart->run(), ExitReason::HartStopped);
  EXPECT_EQ(run.hart->xreg(a1), 2u * 0x19000);
  EXPECT_EQ(run.hart->instructionsRetired(), 1u + 3u * 0x19000 + 1u);
  auto stats = run.stats();
  EXPECT_EQ(stats["blocks_translated"], 1u);
  // The entry block, then the ecall's block; the timer poll may add a few.
  EXPECT_GE(stats["interpreted_blocks"], 2u);
  EXPECT_LT(stats["interpreted_blocks"], 6u);
  EXPECT_GT(stats["dispatches"], 0u);
}

TEST(JitCodeCache, FullCacheIsFlushedAndCountedAndResultsStayExact) {
  // 1500 two-instruction blocks (addi; jal to the next), run 3 times, through
  // a 64 KiB code cache that cannot hold them all: the engine must drop
  // everything when full (counted) and keep computing the right sum.
  constexpr uint64_t kBase = 0x80000000, kSize = 1 << 20;
  constexpr int kBlocks = 1500;
  std::vector<uint32_t> program = {addi(s2, zero, 3)};
  for (int i = 0; i < kBlocks; ++i) {
    program.push_back(addi(a0, a0, 1));
    program.push_back(jal(zero, 4));
  }
  program.push_back(addi(s2, s2, -1));
  program.push_back(beq(s2, zero, 8));                  // done: skip the jump back
  program.push_back(jal(zero, -4 * (2 * kBlocks + 2)));  // too far for a branch
  program.push_back(ecall);
  for (EngineConfig config : {EngineConfig{EngineKind::Jit, 1, 64 << 10}, EngineConfig{EngineKind::Interpreter}}) {
    ProgramHart run(program, kBase, kSize, config);
    EXPECT_EQ(run.hart->run(), ExitReason::HartStopped);
    EXPECT_EQ(run.hart->xreg(a0), 3u * kBlocks);
    EXPECT_EQ(run.hart->instructionsRetired(), 1u + 3u * (2 * kBlocks + 2) + 2u + 1u);  // 2 jumps back, the ecall
    if (config.kind == EngineKind::Jit) {
      auto stats = run.stats();
      EXPECT_GT(stats["code_cache_flushes"], 0u);
      EXPECT_LE(stats["code_bytes"], 64u << 10);
      EXPECT_GT(stats["blocks_translated"], static_cast<uint64_t>(3 * kBlocks) / 2);
    }
  }
}

}  // namespace
}  // namespace strata::cpu::test
