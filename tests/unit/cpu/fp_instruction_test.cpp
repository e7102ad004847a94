// F/D instructions through the hart: mstatus.FS gating and dirtying,
// NaN-boxing, rounding-mode selection, fflags accrual, conversions, fclass.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

class FpInstructions : public CpuTest {
 protected:
  void SetUp() override {
    hart().writeCsr(csr::kMtvec, kRamBase + 0x800);
    hart().writeCsr(csr::kMstatus, csr::kFsInitial);
  }
  uint64_t fs() { return csr(csr::kMstatus) & csr::kStatusFs; }
};

constexpr uint64_t kOne32 = 0xffffffff3f800000ull;  // 1.0f boxed
constexpr uint64_t kTwoD = 0x4000000000000000ull, kThreeD = 0x4008000000000000ull, kOneD = 0x3ff0000000000000ull;

TEST_F(FpInstructions, FsOffMakesFpIllegal) {
  hart().writeCsr(csr::kMstatus, 0);
  runProgram({fop(0x01, 1, 2, 3)}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
  EXPECT_EQ(csr(csr::kMtval), fop(0x01, 1, 2, 3));
  // fcsr is also off limits.
  hart().setPc(kRamBase + 4);
  loadWords(kRamBase + 4, {csrr(a0, csr::kFcsr)});
  hart().writeCsr(csr::kMcause, 0);
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
}

TEST_F(FpInstructions, SingleAddBoxesAndDirtiesFs) {
  hart().setFreg(1, kOne32);
  EXPECT_EQ(fs(), csr::kFsInitial);
  runProgram({fop(0x00, 2, 1, 1), fop(0x70, a0, 2, 0, 0)});  // fadd.s f2,f1,f1; fmv.x.w a0,f2
  EXPECT_EQ(hart().freg(2), 0xffffffff40000000ull);
  EXPECT_EQ(x(a0), 0x40000000u);
  EXPECT_EQ(fs(), csr::kFsDirty);
  EXPECT_NE(csr(csr::kMstatus) & csr::kStatusSd, 0u);
}

TEST_F(FpInstructions, ImproperlyBoxedSingleReadsAsCanonicalNan) {
  hart().setFreg(1, 0x000000003f800000ull);  // upper half not all ones
  runProgram({fop(0x00, 2, 1, 1), fop(0x70, a0, 1, 0, 0), fop(0x70, a1, 1, 0, 1)});  // fadd.s; fmv.x.w; fclass.s
  EXPECT_EQ(hart().freg(2), 0xffffffff7fc00000ull);
  EXPECT_EQ(x(a0), 0x3f800000u);  // moves do not unbox
  EXPECT_EQ(x(a1), 1u << 9);      // quiet NaN
}

TEST_F(FpInstructions, LoadsStoresAndMoves) {
  const uint64_t data = kRamBase + 0x1000;
  poke<uint32_t>(data, 0x40490fdb);  // pi as float
  poke<uint64_t>(data + 8, kThreeD);
  hart().setXreg(s0, data);
  hart().setXreg(a0, 0x1234567890abcdefull);
  runProgram({
      flw(1, s0, 0), fld(2, s0, 8), fsd(1, s0, 16), fsw(2, s0, 24),
      fop(0x79, 3, a0, 0, 0),  // fmv.d.x f3, a0
      fop(0x71, a1, 3, 0, 0),  // fmv.x.d a1, f3
      fop(0x78, 4, a0, 0, 0),  // fmv.w.x f4, a0
  });
  EXPECT_EQ(hart().freg(1), 0xffffffff40490fdbull);
  EXPECT_EQ(hart().freg(2), kThreeD);
  EXPECT_EQ(peek<uint64_t>(data + 16), 0xffffffff40490fdbull);
  EXPECT_EQ(peek<uint32_t>(data + 24), 0u);  // low half of 3.0
  EXPECT_EQ(x(a1), 0x1234567890abcdefull);
  EXPECT_EQ(hart().freg(4), 0xffffffff90abcdefull);
}

TEST_F(FpInstructions, ConversionsUseInstructionOrDynamicRoundingMode) {
  hart().setFreg(1, 0xffffffff40200000ull);  // 2.5f
  hart().setFreg(2, 0x7ff8000000000000ull);  // NaN
  hart().setXreg(a5, static_cast<uint64_t>(-7));
  runProgram({
      fop(0x60, a0, 1, 0, 0),      // fcvt.w.s rne: 2
      fop(0x60, a1, 1, 0, 3),      // fcvt.w.s rup: 3
      csrrwi(zero, csr::kFrm, 2),  // frm = rdn
      fop(0x60, a2, 1, 0, 7),      // dynamic: 2
      fop(0x61, a3, 2, 0, 1),      // fcvt.w.d NaN: 0x7fffffff, NV
      fop(0x69, 3, a5, 0, 7),      // fcvt.d.w f3 = -7.0
      csrr(a4, csr::kFflags),
  });
  EXPECT_EQ(x(a0), 2u);
  EXPECT_EQ(x(a1), 3u);
  EXPECT_EQ(x(a2), 2u);
  EXPECT_EQ(x(a3), 0x7fffffffu);
  EXPECT_EQ(hart().freg(3), 0xc01c000000000000ull);
  EXPECT_EQ(x(a4), 0x11u);  // NV | NX
}

TEST_F(FpInstructions, InvalidDynamicRoundingModeIsIllegal) {
  hart().writeCsr(csr::kFrm, 5);
  runProgram({fop(0x01, 1, 2, 3, 7)}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
}

TEST_F(FpInstructions, FusedMultiplyAddCompareAndClassify) {
  hart().setFreg(1, kTwoD);
  hart().setFreg(2, kThreeD);
  hart().setFreg(3, kOneD);
  hart().setFreg(4, 0xfff0000000000000ull);  // -inf
  runProgram({
      r4Type(kOpMadd, 5, 0, 1, 2, 1, 3),  // fmadd.d f5 = 2*3+1
      r4Type(kOpNmsub, 6, 0, 1, 2, 1, 3), // fnmsub.d f6 = -(2*3)+1 = -5
      fop(0x51, a0, 1, 2, 1),             // flt.d 2<3
      fop(0x51, a1, 2, 1, 2),             // feq.d
      fop(0x15, 7, 4, 3, 0),              // fmin.d(-inf, 1) = -inf
      fop(0x71, a2, 4, 0, 1),             // fclass.d -inf
      fop(0x71, a3, 3, 0, 1),             // fclass.d +1.0: positive normal
  });
  EXPECT_EQ(hart().freg(5), 0x401c000000000000ull);  // 7.0
  EXPECT_EQ(hart().freg(6), 0xc014000000000000ull);  // -5.0
  EXPECT_EQ(x(a0), 1u);
  EXPECT_EQ(x(a1), 0u);
  EXPECT_EQ(hart().freg(7), 0xfff0000000000000ull);
  EXPECT_EQ(x(a2), 1u);
  EXPECT_EQ(x(a3), 1u << 6);
}

TEST_F(FpInstructions, FcsrFieldsAliasFrmAndFflags) {
  hart().setXreg(a0, 0xff);
  runProgram({csrw(csr::kFcsr, a0), csrr(a1, csr::kFrm), csrr(a2, csr::kFflags), csrrwi(a3, csr::kFflags, 0),
              csrr(a4, csr::kFcsr)});
  EXPECT_EQ(x(a1), 7u);
  EXPECT_EQ(x(a2), 0x1fu);
  EXPECT_EQ(x(a3), 0x1fu);
  EXPECT_EQ(x(a4), 7u << 5);
}

}  // namespace
}  // namespace strata::cpu::test
