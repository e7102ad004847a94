#include <gtest/gtest.h>

#include "cpu/decoder.h"
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {

// Pairs (compressed, 32-bit equivalent) produced with GNU as for rv64gc
// (the second column assembled with .option norvc).
struct CompressedPair {
  uint16_t compressed;
  uint32_t expanded;
};
constexpr CompressedPair kCompressedPairs[] = {
    {0x1fe0, 0x3fc10413},  // c.addi4spn s0,sp,1020
    {0x3fe8, 0x0f87b507},  // c.fld fa0,248(a5)
    {0x5e6c, 0x07c62583},  // c.lw a1,124(a2)
    {0x7f74, 0x0f873683},  // c.ld a3,248(a4)
    {0xa404, 0x00943427},  // c.fsd fs1,8(s0)
    {0xc1a8, 0x04a5a023},  // c.sw a0,64(a1)
    {0xe7c4, 0x0897b423},  // c.sd s1,136(a5)
    {0x0001, 0x00000013},  // c.nop
    {0x1281, 0xfe028293},  // c.addi t0,-32
    {0x257d, 0x01f5051b},  // c.addiw a0,31
    {0x5365, 0xff900313},  // c.li t1,-7
    {0x7101, 0xe0010113},  // c.addi16sp sp,-512
    {0x617d, 0x1f010113},  // c.addi16sp sp,496
    {0x697d, 0x0001f937},  // c.lui s2,0x1f
    {0x7981, 0xfffe09b7},  // c.lui s3,0xfffe0
    {0x917d, 0x03f55513},  // c.srli a0,63
    {0x8585, 0x4015d593},  // c.srai a1,1
    {0x9a7d, 0xfff67613},  // c.andi a2,-1
    {0x8c05, 0x40940433},  // c.sub s0,s1
    {0x8eb9, 0x00e6c6b3},  // c.xor a3,a4
    {0x8fc1, 0x0087e7b3},  // c.or a5,s0
    {0x8ce9, 0x00a4f4b3},  // c.and s1,a0
    {0x9e15, 0x40d6063b},  // c.subw a2,a3
    {0x9f3d, 0x00f7073b},  // c.addw a4,a5
    {0xaffd, 0x7fe0006f},  // c.j .+2046
    {0xb001, 0x801ff06f},  // c.j .-2048
    {0xcd7d, 0x0e050f63},  // c.beqz a0,.+254
    {0xf081, 0xf00490e3},  // c.bnez s1,.-256
    {0x1386, 0x02139393},  // c.slli t2,33
    {0x30fe, 0x1f813087},  // c.fldsp ft1,504(sp)
    {0x50fe, 0x0fc12083},  // c.lwsp ra,252(sp)
    {0x7e7e, 0x1f813e03},  // c.ldsp t3,504(sp)
    {0x8082, 0x00008067},  // c.jr ra
    {0x857e, 0x01f00533},  // c.mv a0,t6
    {0x9002, 0x00100073},  // c.ebreak
    {0x9282, 0x000280e7},  // c.jalr t0
    {0x9ada, 0x016a8ab3},  // c.add s5,s6
    {0xbfca, 0x1f213c27},  // c.fsdsp fs2,504(sp)
    {0xdff6, 0x0fd12e23},  // c.swsp t4,252(sp)
    {0xfffa, 0x1fe13c23},  // c.sdsp t5,504(sp)
};

TEST(Decoder, CompressedExpandsToAssemblerEquivalent) {
  for (const auto& pair : kCompressedPairs) {
    EXPECT_EQ(expandCompressed(pair.compressed), pair.expanded) << std::hex << "c=" << pair.compressed;
    DecodedInsn c = decodeAny(pair.compressed);
    DecodedInsn u = decodeAny(pair.expanded);
    EXPECT_EQ(c.op, u.op);
    EXPECT_EQ(c.rd, u.rd);
    EXPECT_EQ(c.rs1, u.rs1);
    EXPECT_EQ(c.imm, u.imm);
    EXPECT_EQ(c.raw, pair.compressed);
  }
}

TEST(Decoder, ReservedCompressedEncodingsAreIllegal) {
  EXPECT_EQ(expandCompressed(0x0000), 0u);  // all zeros
  EXPECT_EQ(expandCompressed(0x6101), 0u);  // c.addi16sp with imm 0
  EXPECT_EQ(expandCompressed(0x6501), 0u);  // c.lui a0, 0
  EXPECT_EQ(expandCompressed(0x2001), 0u);  // c.addiw x0
  EXPECT_EQ(expandCompressed(0x8002), 0u);  // c.jr x0
  EXPECT_EQ(expandCompressed(0x4002), 0u);  // c.lwsp x0
  EXPECT_EQ(expandCompressed(0x9c41), 0u);  // c.subw-space reserved (funct2 = 2 with bit 12)
  EXPECT_EQ(decodeAny(0x0000).op, Op::Illegal);
  EXPECT_EQ(decodeAny(0x0000).raw, 0u);
}

TEST(Decoder, ImmediatesAndRegisters) {
  using namespace as;
  DecodedInsn d = decodeInstruction(beq(a0, a1, -4096));
  EXPECT_EQ(d.op, Op::Beq);
  EXPECT_EQ(d.imm, -4096);
  EXPECT_EQ(d.rs1, a0);
  EXPECT_EQ(d.rs2, a1);
  d = decodeInstruction(jal(ra, 0xffffe));
  EXPECT_EQ(d.op, Op::Jal);
  EXPECT_EQ(d.imm, 0xffffe);
  d = decodeInstruction(jal(ra, -0x100000));
  EXPECT_EQ(d.imm, -0x100000);
  d = decodeInstruction(sd(t0, sp, -2048));
  EXPECT_EQ(d.op, Op::Sd);
  EXPECT_EQ(d.imm, -2048);
  EXPECT_EQ(d.rs2, t0);
  d = decodeInstruction(lui(a0, static_cast<int32_t>(0x80000000u)));
  EXPECT_EQ(d.imm, INT32_MIN);
  d = decodeInstruction(addi(zero, a0, 1));
  EXPECT_EQ(d.rd, kDiscardRegister);  // x0 writes go to the sink
  d = decodeInstruction(csrrw(a0, csr::kMscratch, a1));
  EXPECT_EQ(d.op, Op::Csrrw);
  EXPECT_EQ(d.imm, csr::kMscratch);
}

TEST(Decoder, InvalidEncodings) {
  using namespace as;
  EXPECT_EQ(decodeInstruction(0xffffffff).op, Op::Illegal);
  EXPECT_EQ(decodeInstruction(iType(kOpLoad, 1, 7, 2, 0)).op, Op::Illegal);             // no load funct3 7
  EXPECT_EQ(decodeInstruction(iType(kOpJalr, 1, 1, 2, 0)).op, Op::Illegal);             // jalr funct3 != 0
  EXPECT_EQ(decodeInstruction(rType(kOp, 1, 0, 2, 3, 0x10)).op, Op::Illegal);           // bad funct7
  EXPECT_EQ(decodeInstruction(iType(kOpSystem, 0, 4, 0, 0x300)).op, Op::Illegal);       // funct3 4
  EXPECT_EQ(decodeInstruction(fop(0x00, 1, 2, 3, 5)).op, Op::Illegal);                  // reserved rm
  EXPECT_EQ(decodeInstruction(fop(0x00, 1, 2, 3, 7)).op, Op::FaddS);                    // dynamic rm
  EXPECT_EQ(decodeInstruction(amo(0x02, false, 1, 2, 3)).op, Op::Illegal);              // lr with rs2 != 0
  EXPECT_EQ(decodeInstruction(iType(kOpImm, 1, 1, 2, 0x400 | 3)).op, Op::Illegal);      // slli with funct6 != 0
  EXPECT_EQ(decodeInstruction(slli(a0, a0, 63)).op, Op::Slli);
  EXPECT_EQ(decodeInstruction(rType(kOpImm32, 1, 1, 2, 3, 1)).op, Op::Illegal);        // slliw funct7 != 0
}

TEST(Decoder, BlockTerminators) {
  using namespace as;
  const auto ends = [](uint32_t word) { return endsBlock(decodeInstruction(word)); };
  EXPECT_TRUE(ends(jal(ra, 8)));
  EXPECT_TRUE(ends(csrrs(a0, csr::kMstatus, a1)));
  EXPECT_TRUE(ends(csrr(a0, csr::kCycle)));
  EXPECT_TRUE(ends(wfi));
  EXPECT_FALSE(ends(add(a0, a1, a2)));
  EXPECT_FALSE(ends(sd(a0, a1, 8)));
  // fflags, frm and fcsr change nothing a block depends on.
  EXPECT_FALSE(ends(csrrs(a0, csr::kFflags, 0)));
  EXPECT_FALSE(ends(csrrw(0, csr::kFflags, a4)));
  EXPECT_FALSE(ends(csrrwi(a0, csr::kFrm, 1)));
  EXPECT_FALSE(ends(csrrc(a0, csr::kFcsr, a1)));
}

}  // namespace
}  // namespace strata::cpu::test
