// RV64I and M: ALU, shifts, branches, jumps, loads/stores, division edge cases,
// compressed code, misaligned and page-crossing accesses, MMIO.
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;

using Integer = CpuTest;

TEST_F(Integer, AluAndImmediates) {
  runProgram({
      addi(a0, zero, 100),         // a0 = 100
      addi(a1, zero, -3),          // a1 = -3
      add(a2, a0, a1),             // 97
      sub(a3, a1, a0),             // -103
      slt(a4, a1, a0),             // 1
      sltu(a5, a1, a0),            // 0 (-3 is huge unsigned)
      sltiu(a6, a0, -1),           // 1
      slti(a7, a1, -2),            // 1
      xori(s2, a0, 0xff),          // 100 ^ 255 = 155
      ori(s3, a0, 3),              // 103
      andi(s4, a1, 0x7f0),         // -3 & 0x7f0 = 0x7f0
      lui(s5, 0x12345000),         // 0x12345000
      lui(s6, static_cast<int32_t>(0xfffff000u)),  // sign-extends: 0xfffffffffffff000
      addi(zero, a0, 5),           // no effect on x0
      xor_(s7, a0, a1),            // 100 ^ -3
      or_(s8, a0, a1),
      and_(s9, a0, a1),
  });
  EXPECT_EQ(x(a2), 97u);
  EXPECT_EQ(x(a3), static_cast<uint64_t>(-103));
  EXPECT_EQ(x(a4), 1u);
  EXPECT_EQ(x(a5), 0u);
  EXPECT_EQ(x(a6), 1u);
  EXPECT_EQ(x(a7), 1u);
  EXPECT_EQ(x(s2), 155u);
  EXPECT_EQ(x(s3), 103u);
  EXPECT_EQ(x(s4), 0x7f0u);
  EXPECT_EQ(x(s5), 0x12345000u);
  EXPECT_EQ(x(s6), 0xfffffffffffff000ull);
  EXPECT_EQ(x(zero), 0u);
  EXPECT_EQ(x(s7), static_cast<uint64_t>(100 ^ -3));
  EXPECT_EQ(x(s8), static_cast<uint64_t>(100 | -3));
  EXPECT_EQ(x(s9), static_cast<uint64_t>(100 & -3));
  EXPECT_EQ(hart().pc(), kRamBase + 17 * 4);
  EXPECT_EQ(hart().instructionsRetired(), 17u);
}

TEST_F(Integer, ShiftsAndWordOps) {
  hart().setXreg(a0, 0x8000000080000001ull);
  hart().setXreg(a1, 65);  // shift amounts use the low 6 (5 for W) bits
  runProgram({
      slli(a2, a0, 1),    // 0x0000000100000002
      srli(a3, a0, 63),   // 1
      srai(a4, a0, 4),    // 0xf800000008000000
      sll(a5, a0, a1),    // << 1
      srl(a6, a0, a1),    // >> 1 logical: 0x4000000040000000
      sra(a7, a0, a1),    // 0xc000000040000000
      addiw(s2, a0, -2),  // low word 0x80000001 - 2 = 0x7fffffff
      slliw(s3, a0, 31),  // 0x80000000 -> sign-extended
      srliw(s4, a0, 31),  // 0x80000001 >> 31 = 1
      sraiw(s5, a0, 31),  // -1
      addw(s6, a0, a0),   // 0x00000002 (carry dropped)
      subw(s7, zero, a0), // -(0x80000001) low word = 0x7fffffff
      sllw(s8, a0, a1),   // shift by 1: 0x00000002
      srlw(s9, a0, a1),   // 0x40000000
      sraw(s10, a0, a1),  // 0xc0000000 sign-extended
  });
  EXPECT_EQ(x(a2), 0x0000000100000002ull);
  EXPECT_EQ(x(a3), 1u);
  EXPECT_EQ(x(a4), 0xf800000008000000ull);
  EXPECT_EQ(x(a5), 0x0000000100000002ull);
  EXPECT_EQ(x(a6), 0x4000000040000000ull);
  EXPECT_EQ(x(a7), 0xc000000040000000ull);
  EXPECT_EQ(x(s2), 0x7fffffffull);
  EXPECT_EQ(x(s3), 0xffffffff80000000ull);
  EXPECT_EQ(x(s4), 1u);
  EXPECT_EQ(x(s5), ~0ull);
  EXPECT_EQ(x(s6), 2u);
  EXPECT_EQ(x(s7), 0x7fffffffull);
  EXPECT_EQ(x(s8), 2u);
  EXPECT_EQ(x(s9), 0x40000000ull);
  EXPECT_EQ(x(s10), 0xffffffffc0000000ull);
}

TEST_F(Integer, BranchLoopSumsOneToTen) {
  loadWords(kRamBase, {
                          addi(a0, zero, 0),   // sum
                          addi(a1, zero, 10),  // i
                          add(a0, a0, a1),     // loop:
                          addi(a1, a1, -1),
                          bne(a1, zero, -8),
                          addi(a2, zero, 7),
                      });
  hart().step(2 + 3 * 10 + 1);
  EXPECT_EQ(x(a0), 55u);
  EXPECT_EQ(x(a2), 7u);
  EXPECT_EQ(hart().pc(), kRamBase + 24);
}

TEST_F(Integer, AllBranchConditions) {
  hart().setXreg(a0, static_cast<uint64_t>(-1));
  hart().setXreg(a1, 1);
  // Each taken branch skips the following "addi t0, t0, 1"; not-taken ones fall into it.
  runProgram({
      blt(a0, a1, 8), addi(t0, t0, 1),    // taken (signed -1 < 1)
      bltu(a0, a1, 8), addi(t1, t1, 1),   // not taken (unsigned huge)
      bge(a1, a0, 8), addi(t2, t2, 1),    // taken
      bgeu(a1, a0, 8), addi(s0, s0, 1),   // not taken
      beq(a1, a1, 8), addi(s1, s1, 1),    // taken
      bne(a1, a1, 8), addi(a2, a2, 1),    // not taken
  }, 9);
  EXPECT_EQ(x(t0), 0u);
  EXPECT_EQ(x(t1), 1u);
  EXPECT_EQ(x(t2), 0u);
  EXPECT_EQ(x(s0), 1u);
  EXPECT_EQ(x(s1), 0u);
  EXPECT_EQ(x(a2), 1u);
}

TEST_F(Integer, JalJalrAndAuipc) {
  runProgram({
      auipc(a0, 0x1000),      // a0 = base + 0x1000
      jal(ra, 12),            // -> +16, ra = base + 8
      addi(a1, zero, 1),      // skipped
      addi(a1, zero, 2),      // skipped
      addi(a2, zero, 3),      // +16
      jalr(t0, ra, 1),        // -> (ra + 1) & ~1 = base + 8, t0 = base + 24
      addi(a3, zero, 4),      // never reached within the step budget
  }, 5);
  EXPECT_EQ(x(a0), kRamBase + 0x1000);
  EXPECT_EQ(x(ra), kRamBase + 8);
  EXPECT_EQ(x(a1), 1u);  // jalr landed on base + 8 and executed one more instruction
  EXPECT_EQ(x(a2), 3u);
  EXPECT_EQ(x(t0), kRamBase + 24);
  EXPECT_EQ(hart().pc(), kRamBase + 12);
}

TEST_F(Integer, LoadsSignAndZeroExtend) {
  const uint64_t data = kRamBase + 0x1000;
  poke<uint64_t>(data, 0x8182838485868788ull);
  hart().setXreg(s0, data);
  runProgram({
      lb(a0, s0, 0), lbu(a1, s0, 0), lh(a2, s0, 0), lhu(a3, s0, 0), lw(a4, s0, 0), lwu(a5, s0, 0),
      ld(a6, s0, 0), lb(a7, s0, 7),
  });
  EXPECT_EQ(x(a0), 0xffffffffffffff88ull);
  EXPECT_EQ(x(a1), 0x88u);
  EXPECT_EQ(x(a2), 0xffffffffffff8788ull);
  EXPECT_EQ(x(a3), 0x8788u);
  EXPECT_EQ(x(a4), 0xffffffff85868788ull);
  EXPECT_EQ(x(a5), 0x85868788u);
  EXPECT_EQ(x(a6), 0x8182838485868788ull);
  EXPECT_EQ(x(a7), 0xffffffffffffff81ull);
}

TEST_F(Integer, StoresOfEachWidth) {
  const uint64_t data = kRamBase + 0x2000;
  hart().setXreg(s0, data);
  hart().setXreg(a0, 0x1122334455667788ull);
  runProgram({sd(a0, s0, 0), sw(a0, s0, 8), sh(a0, s0, 16), sb(a0, s0, 24), sd(zero, s0, 32)});
  EXPECT_EQ(peek<uint64_t>(data), 0x1122334455667788ull);
  EXPECT_EQ(peek<uint64_t>(data + 8), 0x55667788ull);
  EXPECT_EQ(peek<uint64_t>(data + 16), 0x7788ull);
  EXPECT_EQ(peek<uint64_t>(data + 24), 0x88ull);
  EXPECT_EQ(peek<uint64_t>(data + 32), 0ull);
}

TEST_F(Integer, MisalignedAndPageCrossingAccesses) {
  const uint64_t cross = kRamBase + 0x3ffd;  // 3 bytes before a page boundary
  hart().setXreg(s0, cross);
  hart().setXreg(a0, 0x0102030405060708ull);
  runProgram({sd(a0, s0, 0), ld(a1, s0, 0), lw(a2, s0, 1), lh(a3, s0, 2)});
  EXPECT_EQ(peek<uint64_t>(cross), 0x0102030405060708ull);
  EXPECT_EQ(x(a1), 0x0102030405060708ull);
  EXPECT_EQ(x(a2), 0x04050607u);
  EXPECT_EQ(x(a3), 0x0506u);
  EXPECT_EQ(hart().privilege(), Privilege::Machine);
  EXPECT_EQ(csr(csr::kMcause), 0u);  // no trap
}

TEST_F(Integer, MulhVariants) {
  hart().setXreg(a0, static_cast<uint64_t>(-2));
  hart().setXreg(a1, 3);
  hart().setXreg(a2, 0xffffffffffffffffull);
  runProgram({
      mul(s0, a0, a1),     // -6
      mulh(s1, a0, a1),    // high of -6 = -1
      mulhu(s2, a0, a1),   // (2^64-2)*3 >> 64 = 2
      mulhsu(s3, a0, a1),  // -6 high = -1
      mulhsu(s4, a1, a2),  // 3 * (2^64-1) >> 64 = 2
      mulh(s5, a2, a2),    // (-1)*(-1) = 1 -> high 0
      mulhu(s6, a2, a2),   // (2^64-1)^2 >> 64 = 2^64-2
      mulw(s7, a0, a1),    // -6 sign-extended from 32 bits
  });
  EXPECT_EQ(x(s0), static_cast<uint64_t>(-6));
  EXPECT_EQ(x(s1), ~0ull);
  EXPECT_EQ(x(s2), 2u);
  EXPECT_EQ(x(s3), ~0ull);
  EXPECT_EQ(x(s4), 2u);
  EXPECT_EQ(x(s5), 0u);
  EXPECT_EQ(x(s6), 0xfffffffffffffffeull);
  EXPECT_EQ(x(s7), static_cast<uint64_t>(-6));
}

TEST_F(Integer, DivisionEdgeCases) {
  hart().setXreg(a0, 0x8000000000000000ull);  // INT64_MIN
  hart().setXreg(a1, static_cast<uint64_t>(-1));
  hart().setXreg(a2, 0);
  hart().setXreg(a3, static_cast<uint64_t>(-7));
  hart().setXreg(a4, 2);
  hart().setXreg(a5, 0xffffffff80000000ull);  // INT32_MIN as a word
  runProgram({
      div(s0, a0, a1),     // overflow: INT64_MIN
      rem(s1, a0, a1),     // overflow: 0
      div(s2, a3, a2),     // by zero: -1
      divu(s3, a3, a2),    // by zero: all ones
      rem(s4, a3, a2),     // by zero: dividend
      remu(s5, a3, a2),    // by zero: dividend
      div(s6, a3, a4),     // -7/2 = -3 (toward zero)
      rem(s7, a3, a4),     // -1
      divw(s8, a5, a1),    // word overflow: INT32_MIN sign-extended
      remw(s9, a5, a1),    // 0
      divuw(s10, a3, a2),  // by zero: all ones
      remuw(s11, a3, a2),  // by zero: low word of dividend sign-extended: -7
      divuw(t0, a3, a4),   // 0xfffffff9 / 2 = 0x7ffffffc
      remw(t1, a3, a4),    // -1
  });
  EXPECT_EQ(x(s0), 0x8000000000000000ull);
  EXPECT_EQ(x(s1), 0u);
  EXPECT_EQ(x(s2), ~0ull);
  EXPECT_EQ(x(s3), ~0ull);
  EXPECT_EQ(x(s4), static_cast<uint64_t>(-7));
  EXPECT_EQ(x(s5), static_cast<uint64_t>(-7));
  EXPECT_EQ(x(s6), static_cast<uint64_t>(-3));
  EXPECT_EQ(x(s7), static_cast<uint64_t>(-1));
  EXPECT_EQ(x(s8), 0xffffffff80000000ull);
  EXPECT_EQ(x(s9), 0u);
  EXPECT_EQ(x(s10), ~0ull);
  EXPECT_EQ(x(s11), static_cast<uint64_t>(-7));
  EXPECT_EQ(x(t0), 0x7ffffffcull);
  EXPECT_EQ(x(t1), static_cast<uint64_t>(-1));
}

TEST_F(Integer, CompressedProgram) {
  // c.li a0,5; c.addi a0,-32 (a0 = -27); c.mv a1,a0; c.add a1,a0 (-54); c.slli a1,1 (-108);
  // c.j +4 (skip the next c.li); c.li a2,1; c.li a3,9
  const uint16_t code[] = {0x4515, 0x1501, 0x85aa, 0x95aa, 0x0586, 0xa011, 0x4605, 0x46a5};
  std::memcpy(ram(kRamBase), code, sizeof code);
  hart().step(7);
  EXPECT_EQ(x(a0), static_cast<uint64_t>(-27));
  EXPECT_EQ(x(a1), static_cast<uint64_t>(-108));
  EXPECT_EQ(x(a2), 0u);
  EXPECT_EQ(x(a3), 9u);
  EXPECT_EQ(hart().pc(), kRamBase + 16);
}

TEST_F(Integer, InstructionStraddlingAPageBoundary) {
  // A compressed nop puts the next 32-bit instruction across the 4 KiB boundary.
  const uint64_t start = kRamBase + 0x1ff8;
  const uint16_t cnop = 0x0001;
  std::memcpy(ram(start), &cnop, 2);
  std::memcpy(ram(start + 2), &cnop, 2);
  std::memcpy(ram(start + 4), &cnop, 2);
  const uint32_t insn = addi(a0, zero, 0x123);
  std::memcpy(ram(start + 6), &insn, 4);  // bytes 0x1ffe..0x2001 of the page pair
  const uint32_t next = addi(a1, a0, 1);
  std::memcpy(ram(start + 10), &next, 4);
  hart().setPc(start);
  hart().step(5);
  EXPECT_EQ(x(a0), 0x123u);
  EXPECT_EQ(x(a1), 0x124u);
  EXPECT_EQ(hart().pc(), start + 14);
}

TEST_F(Integer, MmioLoadsAndStores) {
  mmio_.registers[TestMmio::kBase + 8] = 0xabcd;
  hart().setXreg(s0, TestMmio::kBase);
  hart().setXreg(a0, 0x55);
  runProgram({sw(a0, s0, 4), lw(a1, s0, 8), lhu(a2, s0, 8)});
  ASSERT_EQ(mmio_.writes.size(), 1u);
  EXPECT_EQ(mmio_.writes[0].first, TestMmio::kBase + 4);
  EXPECT_EQ(mmio_.writes[0].second, 0x55u);
  EXPECT_EQ(x(a1), 0xabcdu);
  EXPECT_EQ(x(a2), 0xabcdu);
}

TEST_F(Integer, UnmappedPhysicalAddressRaisesAccessFault) {
  hart().setXreg(s0, 0x20000000);  // neither RAM nor a device
  hart().writeCsr(csr::kMtvec, kRamBase + 0x800);
  runProgram({lw(a0, s0, 0)}, 1);
  EXPECT_EQ(csr(csr::kMcause), csr::kLoadAccessFault);
  EXPECT_EQ(csr(csr::kMtval), 0x20000000u);
  EXPECT_EQ(csr(csr::kMepc), kRamBase);
  EXPECT_EQ(hart().pc(), kRamBase + 0x800);
  hart().setPc(kRamBase + 4);
  loadWords(kRamBase + 4, {sd(a0, s0, 16)});
  hart().step(1);
  EXPECT_EQ(csr(csr::kMcause), csr::kStoreAccessFault);
  EXPECT_EQ(csr(csr::kMtval), 0x20000010u);
}

TEST_F(Integer, IllegalInstructionTrapsWithBits) {
  hart().writeCsr(csr::kMtvec, kRamBase + 0x400);
  runProgram({addi(a0, zero, 1), 0xffffffffu}, 2);
  EXPECT_EQ(x(a0), 1u);
  EXPECT_EQ(csr(csr::kMcause), csr::kIllegalInstruction);
  EXPECT_EQ(csr(csr::kMtval), 0xffffffffu);
  EXPECT_EQ(csr(csr::kMepc), kRamBase + 4);
  EXPECT_EQ(hart().pc(), kRamBase + 0x400);
  EXPECT_EQ(hart().instructionsRetired(), 1u);
}

TEST_F(Integer, SelfModifyingCodeNeedsFenceI) {
  // Execute "addi a0, zero, 1", patch it to "addi a0, zero, 2" through a store,
  // then jump back: without fence.i the stale block may run; after fence.i the new code must.
  const uint32_t patched = addi(a0, zero, 2);
  hart().setXreg(s0, kRamBase);
  hart().setXreg(s1, patched);
  loadWords(kRamBase, {addi(a0, zero, 1), jal(zero, 4), sw(s1, s0, 0), fence_i, jal(zero, -16)});
  hart().step(6);  // addi, jal, sw, fence.i, jal, addi(new)
  EXPECT_EQ(x(a0), 2u);
}

}  // namespace
}  // namespace strata::cpu::test
