#include "cpu/decoder.h"

#include "cpu/csr_defs.h"
#include "cpu/rv_encoding.h"

namespace strata::cpu {
namespace {

constexpr uint32_t bits(uint32_t value, unsigned hi, unsigned lo) { return (value >> lo) & ((1u << (hi - lo + 1)) - 1); }
constexpr int32_t signExtend(uint32_t value, unsigned width) {
  return static_cast<int32_t>(value << (32 - width)) >> (32 - width);
}

uint8_t integerRd(uint32_t rd) { return rd == 0 ? kDiscardRegister : static_cast<uint8_t>(rd); }

// Ops whose rm field is a real rounding mode: 5 and 6 are reserved encodings.
bool validStaticRm(uint32_t rm) { return rm != 5 && rm != 6; }

DecodedInsn decodeFp(uint32_t word, DecodedInsn d) {
  const uint32_t funct7 = word >> 25, rm = bits(word, 14, 12), rs2 = bits(word, 24, 20);
  const uint32_t rd = bits(word, 11, 7);
  d.rm = static_cast<uint8_t>(rm);
  auto arith = [&](Op op) {
    if (!validStaticRm(rm)) return DecodedInsn{Op::Illegal, 0, 0, 0, 0, 0, 0, 0, word};
    d.op = op;
    return d;
  };
  auto toInteger = [&](Op op) {
    d.op = op;
    d.rd = integerRd(rd);
    return d;
  };
  const DecodedInsn illegal{Op::Illegal, 0, 0, 0, 0, 0, 0, 0, word};
  switch (funct7) {
    case 0x00: return arith(Op::FaddS);
    case 0x01: return arith(Op::FaddD);
    case 0x04: return arith(Op::FsubS);
    case 0x05: return arith(Op::FsubD);
    case 0x08: return arith(Op::FmulS);
    case 0x09: return arith(Op::FmulD);
    case 0x0c: return arith(Op::FdivS);
    case 0x0d: return arith(Op::FdivD);
    case 0x2c: return rs2 == 0 ? arith(Op::FsqrtS) : illegal;
    case 0x2d: return rs2 == 0 ? arith(Op::FsqrtD) : illegal;
    case 0x10:
    case 0x11: {
      static constexpr Op kS[] = {Op::FsgnjS, Op::FsgnjnS, Op::FsgnjxS};
      static constexpr Op kD[] = {Op::FsgnjD, Op::FsgnjnD, Op::FsgnjxD};
      if (rm > 2) return illegal;
      d.op = funct7 == 0x10 ? kS[rm] : kD[rm];
      return d;
    }
    case 0x14:
    case 0x15:
      if (rm > 1) return illegal;
      d.op = funct7 == 0x14 ? (rm == 0 ? Op::FminS : Op::FmaxS) : (rm == 0 ? Op::FminD : Op::FmaxD);
      return d;
    case 0x20: return rs2 == 1 ? arith(Op::FcvtSD) : illegal;
    case 0x21: return rs2 == 0 ? arith(Op::FcvtDS) : illegal;
    case 0x50:
    case 0x51: {
      static constexpr Op kS[] = {Op::FleS, Op::FltS, Op::FeqS};
      static constexpr Op kD[] = {Op::FleD, Op::FltD, Op::FeqD};
      if (rm > 2) return illegal;
      return toInteger(funct7 == 0x50 ? kS[rm] : kD[rm]);
    }
    case 0x60:
    case 0x61: {
      static constexpr Op kS[] = {Op::FcvtWS, Op::FcvtWuS, Op::FcvtLS, Op::FcvtLuS};
      static constexpr Op kD[] = {Op::FcvtWD, Op::FcvtWuD, Op::FcvtLD, Op::FcvtLuD};
      if (rs2 > 3 || !validStaticRm(rm)) return illegal;
      return toInteger(funct7 == 0x60 ? kS[rs2] : kD[rs2]);
    }
    case 0x68:
    case 0x69: {
      static constexpr Op kS[] = {Op::FcvtSW, Op::FcvtSWu, Op::FcvtSL, Op::FcvtSLu};
      static constexpr Op kD[] = {Op::FcvtDW, Op::FcvtDWu, Op::FcvtDL, Op::FcvtDLu};
      if (rs2 > 3) return illegal;
      return arith(funct7 == 0x68 ? kS[rs2] : kD[rs2]);
    }
    case 0x70:
    case 0x71:
      if (rs2 != 0 || rm > 1) return illegal;
      if (funct7 == 0x70) return toInteger(rm == 0 ? Op::FmvXW : Op::FclassS);
      return toInteger(rm == 0 ? Op::FmvXD : Op::FclassD);
    case 0x78:
    case 0x79:
      if (rs2 != 0 || rm != 0) return illegal;
      d.op = funct7 == 0x78 ? Op::FmvWX : Op::FmvDX;
      return d;
    default: return illegal;
  }
}

}  // namespace

DecodedInsn decodeInstruction(uint32_t word) {
  DecodedInsn d;
  d.raw = word;
  const uint32_t opcode = word & 0x7f, rd = bits(word, 11, 7), funct3 = bits(word, 14, 12);
  const uint32_t rs1 = bits(word, 19, 15), rs2 = bits(word, 24, 20), funct7 = word >> 25;
  const int32_t immI = static_cast<int32_t>(word) >> 20;
  const int32_t immS = (static_cast<int32_t>(word) >> 25 << 5) | static_cast<int32_t>(rd);
  const int32_t immB = (static_cast<int32_t>(word & 0x80000000u) >> 19) | static_cast<int32_t>((word & 0x80) << 4) |
                       static_cast<int32_t>((word >> 20) & 0x7e0) | static_cast<int32_t>((word >> 7) & 0x1e);
  const int32_t immU = static_cast<int32_t>(word & 0xfffff000u);
  const int32_t immJ = (static_cast<int32_t>(word & 0x80000000u) >> 11) | static_cast<int32_t>(word & 0xff000) |
                       static_cast<int32_t>((word >> 9) & 0x800) | static_cast<int32_t>((word >> 20) & 0x7fe);
  d.rs1 = static_cast<uint8_t>(rs1);
  d.rs2 = static_cast<uint8_t>(rs2);
  d.rd = integerRd(rd);

  const DecodedInsn illegal{Op::Illegal, 0, 0, 0, 0, 0, 0, 0, word};
  auto make = [&](Op op, int32_t imm) {
    d.op = op;
    d.imm = imm;
    return d;
  };

  if ((word & 3) != 3) return illegal;
  switch (opcode) {
    case rv::kOpLui: return make(Op::Lui, immU);
    case rv::kOpAuipc: return make(Op::Auipc, immU);
    case rv::kOpJal: return make(Op::Jal, immJ);
    case rv::kOpJalr: return funct3 == 0 ? make(Op::Jalr, immI) : illegal;
    case rv::kOpBranch: {
      static constexpr Op kOps[] = {Op::Beq, Op::Bne, Op::Illegal, Op::Illegal,
                                    Op::Blt, Op::Bge, Op::Bltu,    Op::Bgeu};
      return kOps[funct3] == Op::Illegal ? illegal : make(kOps[funct3], immB);
    }
    case rv::kOpLoad: {
      static constexpr Op kOps[] = {Op::Lb, Op::Lh, Op::Lw, Op::Ld, Op::Lbu, Op::Lhu, Op::Lwu, Op::Illegal};
      return kOps[funct3] == Op::Illegal ? illegal : make(kOps[funct3], immI);
    }
    case rv::kOpStore: {
      static constexpr Op kOps[] = {Op::Sb, Op::Sh, Op::Sw, Op::Sd};
      if (funct3 > 3) return illegal;
      d.rd = 0;
      return make(kOps[funct3], immS);
    }
    case rv::kOpImm:
      switch (funct3) {
        case 0: return make(Op::Addi, immI);
        case 1: return (word >> 26) == 0 ? make(Op::Slli, static_cast<int32_t>(bits(word, 25, 20))) : illegal;
        case 2: return make(Op::Slti, immI);
        case 3: return make(Op::Sltiu, immI);
        case 4: return make(Op::Xori, immI);
        case 5:
          if ((word >> 26) == 0) return make(Op::Srli, static_cast<int32_t>(bits(word, 25, 20)));
          if ((word >> 26) == 0x10) return make(Op::Srai, static_cast<int32_t>(bits(word, 25, 20)));
          return illegal;
        case 6: return make(Op::Ori, immI);
        default: return make(Op::Andi, immI);
      }
    case rv::kOpImm32:
      switch (funct3) {
        case 0: return make(Op::Addiw, immI);
        case 1: return funct7 == 0 ? make(Op::Slliw, static_cast<int32_t>(rs2)) : illegal;
        case 5:
          if (funct7 == 0) return make(Op::Srliw, static_cast<int32_t>(rs2));
          if (funct7 == 0x20) return make(Op::Sraiw, static_cast<int32_t>(rs2));
          return illegal;
        default: return illegal;
      }
    case rv::kOp: {
      static constexpr Op kBase[] = {Op::Add, Op::Sll, Op::Slt, Op::Sltu, Op::Xor, Op::Srl, Op::Or, Op::And};
      static constexpr Op kMul[] = {Op::Mul, Op::Mulh, Op::Mulhsu, Op::Mulhu, Op::Div, Op::Divu, Op::Rem, Op::Remu};
      if (funct7 == 0) return make(kBase[funct3], 0);
      if (funct7 == 1) return make(kMul[funct3], 0);
      if (funct7 == 0x20 && funct3 == 0) return make(Op::Sub, 0);
      if (funct7 == 0x20 && funct3 == 5) return make(Op::Sra, 0);
      return illegal;
    }
    case rv::kOp32:
      if (funct7 == 0) {
        if (funct3 == 0) return make(Op::Addw, 0);
        if (funct3 == 1) return make(Op::Sllw, 0);
        if (funct3 == 5) return make(Op::Srlw, 0);
        return illegal;
      }
      if (funct7 == 0x20) {
        if (funct3 == 0) return make(Op::Subw, 0);
        if (funct3 == 5) return make(Op::Sraw, 0);
        return illegal;
      }
      if (funct7 == 1) {
        static constexpr Op kOps[] = {Op::Mulw,    Op::Illegal, Op::Illegal, Op::Illegal,
                                      Op::Divw,    Op::Divuw,   Op::Remw,    Op::Remuw};
        return kOps[funct3] == Op::Illegal ? illegal : make(kOps[funct3], 0);
      }
      return illegal;
    case rv::kOpMiscMem:
      if (funct3 == 0) {
        // Only store->load ordering needs a real barrier on a TSO host.
        const uint32_t pred = bits(word, 27, 24), succ = bits(word, 23, 20);
        const bool storeToLoad = (pred & 0b0101) != 0 && (succ & 0b1010) != 0;
        d.rm = static_cast<uint8_t>(bits(word, 27, 20));
        d.rd = 0;
        return make(storeToLoad ? Op::FenceFull : Op::Fence, 0);
      }
      if (funct3 == 1) return make(Op::FenceI, 0);
      return illegal;
    case rv::kOpAmo: {
      if (funct3 != 2 && funct3 != 3) return illegal;
      const bool isD = funct3 == 3;
      const uint32_t funct5 = word >> 27;
      d.rm = static_cast<uint8_t>(bits(word, 26, 25));  // aq/rl
      switch (funct5) {
        case 0x02: return rs2 == 0 ? make(isD ? Op::LrD : Op::LrW, 0) : illegal;
        case 0x03: return make(isD ? Op::ScD : Op::ScW, 0);
        case 0x01: return make(isD ? Op::AmoSwapD : Op::AmoSwapW, 0);
        case 0x00: return make(isD ? Op::AmoAddD : Op::AmoAddW, 0);
        case 0x04: return make(isD ? Op::AmoXorD : Op::AmoXorW, 0);
        case 0x0c: return make(isD ? Op::AmoAndD : Op::AmoAndW, 0);
        case 0x08: return make(isD ? Op::AmoOrD : Op::AmoOrW, 0);
        case 0x10: return make(isD ? Op::AmoMinD : Op::AmoMinW, 0);
        case 0x14: return make(isD ? Op::AmoMaxD : Op::AmoMaxW, 0);
        case 0x18: return make(isD ? Op::AmoMinuD : Op::AmoMinuW, 0);
        case 0x1c: return make(isD ? Op::AmoMaxuD : Op::AmoMaxuW, 0);
        default: return illegal;
      }
    }
    case rv::kOpSystem:
      if (funct3 == 0) {
        switch (word) {
          case 0x00000073: return make(Op::Ecall, 0);
          case 0x00100073: return make(Op::Ebreak, 0);
          case 0x10200073: return make(Op::Sret, 0);
          case 0x30200073: return make(Op::Mret, 0);
          case 0x10500073: return make(Op::Wfi, 0);
          default: break;
        }
        if (funct7 == 0x09 && rd == 0) return make(Op::SfenceVma, 0);
        return illegal;
      } else {
        static constexpr Op kOps[] = {Op::Illegal, Op::Csrrw,  Op::Csrrs,  Op::Csrrc,
                                      Op::Illegal, Op::Csrrwi, Op::Csrrsi, Op::Csrrci};
        return kOps[funct3] == Op::Illegal ? illegal : make(kOps[funct3], static_cast<int32_t>(word >> 20));
      }
    case rv::kOpLoadFp:
      if (funct3 == 2) return d.rd = static_cast<uint8_t>(rd), make(Op::Flw, immI);
      if (funct3 == 3) return d.rd = static_cast<uint8_t>(rd), make(Op::Fld, immI);
      return illegal;
    case rv::kOpStoreFp:
      d.rd = 0;
      if (funct3 == 2) return make(Op::Fsw, immS);
      if (funct3 == 3) return make(Op::Fsd, immS);
      return illegal;
    case rv::kOpMadd:
    case rv::kOpMsub:
    case rv::kOpNmsub:
    case rv::kOpNmadd: {
      const uint32_t fmt = bits(word, 26, 25);
      if (fmt > 1 || !validStaticRm(funct3)) return illegal;
      static constexpr Op kS[] = {Op::FmaddS, Op::FmsubS, Op::FnmsubS, Op::FnmaddS};
      static constexpr Op kD[] = {Op::FmaddD, Op::FmsubD, Op::FnmsubD, Op::FnmaddD};
      const unsigned index = (opcode - rv::kOpMadd) / 4;
      d.rd = static_cast<uint8_t>(rd);
      d.rs3 = static_cast<uint8_t>(word >> 27);
      d.rm = static_cast<uint8_t>(funct3);
      return make(fmt == 0 ? kS[index] : kD[index], 0);
    }
    case rv::kOpFp:
      d.rd = static_cast<uint8_t>(rd);
      return decodeFp(word, d);
    default: return illegal;
  }
}

uint32_t expandCompressed(uint16_t half) {
  using namespace rv;
  const uint32_t c = half;
  const uint32_t quadrant = c & 3, funct3 = bits(c, 15, 13);
  const unsigned rdFull = bits(c, 11, 7), rs2Full = bits(c, 6, 2);
  const unsigned rdPrime = bits(c, 4, 2) + 8, rs1Prime = bits(c, 9, 7) + 8;
  const int32_t imm6 = signExtend(bits(c, 12, 12) << 5 | bits(c, 6, 2), 6);
  switch (quadrant) {
    case 0:
      switch (funct3) {
        case 0: {  // c.addi4spn
          const uint32_t imm = bits(c, 12, 11) << 4 | bits(c, 10, 7) << 6 | bits(c, 6, 6) << 2 | bits(c, 5, 5) << 3;
          if (imm == 0) return 0;
          return iType(kOpImm, rdPrime, 0, 2, static_cast<int32_t>(imm));
        }
        case 1:  // c.fld
          return iType(kOpLoadFp, rdPrime, 3, rs1Prime,
                       static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 6, 5) << 6));
        case 2:  // c.lw
          return iType(kOpLoad, rdPrime, 2, rs1Prime,
                       static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 6, 6) << 2 | bits(c, 5, 5) << 6));
        case 3:  // c.ld
          return iType(kOpLoad, rdPrime, 3, rs1Prime, static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 6, 5) << 6));
        case 5:  // c.fsd
          return sType(kOpStoreFp, 3, rs1Prime, rdPrime, static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 6, 5) << 6));
        case 6:  // c.sw
          return sType(kOpStore, 2, rs1Prime, rdPrime,
                       static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 6, 6) << 2 | bits(c, 5, 5) << 6));
        case 7:  // c.sd
          return sType(kOpStore, 3, rs1Prime, rdPrime, static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 6, 5) << 6));
        default: return 0;
      }
    case 1:
      switch (funct3) {
        case 0: return iType(kOpImm, rdFull, 0, rdFull, imm6);  // c.addi / c.nop
        case 1:                                                 // c.addiw
          if (rdFull == 0) return 0;
          return iType(kOpImm32, rdFull, 0, rdFull, imm6);
        case 2: return iType(kOpImm, rdFull, 0, 0, imm6);  // c.li
        case 3:
          if (rdFull == 2) {  // c.addi16sp
            const uint32_t imm = bits(c, 12, 12) << 9 | bits(c, 6, 6) << 4 | bits(c, 5, 5) << 6 | bits(c, 4, 3) << 7 |
                                 bits(c, 2, 2) << 5;
            if (imm == 0) return 0;
            return iType(kOpImm, 2, 0, 2, signExtend(imm, 10));
          } else {  // c.lui
            if (imm6 == 0) return 0;
            return uType(kOpLui, rdFull, imm6 * 4096);
          }
        case 4: {
          const unsigned rd = rs1Prime;
          const uint32_t shamt = bits(c, 12, 12) << 5 | bits(c, 6, 2);
          switch (bits(c, 11, 10)) {
            case 0: return iType(kOpImm, rd, 5, rd, static_cast<int32_t>(shamt));  // c.srli
            case 1: return iType(kOpImm, rd, 5, rd, static_cast<int32_t>(shamt | 0x400));  // c.srai
            case 2: return iType(kOpImm, rd, 7, rd, imm6);  // c.andi
            default: {
              const unsigned rs2 = rdPrime;
              const unsigned sub = bits(c, 6, 5);
              if (bits(c, 12, 12) == 0) {
                switch (sub) {
                  case 0: return rType(kOp, rd, 0, rd, rs2, 0x20);  // c.sub
                  case 1: return rType(kOp, rd, 4, rd, rs2, 0);     // c.xor
                  case 2: return rType(kOp, rd, 6, rd, rs2, 0);     // c.or
                  default: return rType(kOp, rd, 7, rd, rs2, 0);    // c.and
                }
              }
              if (sub == 0) return rType(kOp32, rd, 0, rd, rs2, 0x20);  // c.subw
              if (sub == 1) return rType(kOp32, rd, 0, rd, rs2, 0);     // c.addw
              return 0;
            }
          }
        }
        case 5: {  // c.j
          const uint32_t imm = bits(c, 12, 12) << 11 | bits(c, 11, 11) << 4 | bits(c, 10, 9) << 8 |
                               bits(c, 8, 8) << 10 | bits(c, 7, 7) << 6 | bits(c, 6, 6) << 7 | bits(c, 5, 3) << 1 |
                               bits(c, 2, 2) << 5;
          return jType(kOpJal, 0, signExtend(imm, 12));
        }
        default: {  // c.beqz / c.bnez
          const uint32_t imm = bits(c, 12, 12) << 8 | bits(c, 11, 10) << 3 | bits(c, 6, 5) << 6 | bits(c, 4, 3) << 1 |
                               bits(c, 2, 2) << 5;
          return bType(kOpBranch, funct3 == 6 ? 0 : 1, rs1Prime, 0, signExtend(imm, 9));
        }
      }
    case 2:
      switch (funct3) {
        case 0: return iType(kOpImm, rdFull, 1, rdFull, static_cast<int32_t>(bits(c, 12, 12) << 5 | bits(c, 6, 2)));
        case 1:  // c.fldsp
          return iType(kOpLoadFp, rdFull, 3, 2,
                       static_cast<int32_t>(bits(c, 12, 12) << 5 | bits(c, 6, 5) << 3 | bits(c, 4, 2) << 6));
        case 2:  // c.lwsp
          if (rdFull == 0) return 0;
          return iType(kOpLoad, rdFull, 2, 2,
                       static_cast<int32_t>(bits(c, 12, 12) << 5 | bits(c, 6, 4) << 2 | bits(c, 3, 2) << 6));
        case 3:  // c.ldsp
          if (rdFull == 0) return 0;
          return iType(kOpLoad, rdFull, 3, 2,
                       static_cast<int32_t>(bits(c, 12, 12) << 5 | bits(c, 6, 5) << 3 | bits(c, 4, 2) << 6));
        case 4:
          if (bits(c, 12, 12) == 0) {
            if (rs2Full == 0) return rdFull == 0 ? 0 : iType(kOpJalr, 0, 0, rdFull, 0);  // c.jr
            return rType(kOp, rdFull, 0, 0, rs2Full, 0);                                  // c.mv
          }
          if (rs2Full == 0) {
            if (rdFull == 0) return 0x00100073;          // c.ebreak
            return iType(kOpJalr, 1, 0, rdFull, 0);  // c.jalr
          }
          return rType(kOp, rdFull, 0, rdFull, rs2Full, 0);  // c.add
        case 5:  // c.fsdsp
          return sType(kOpStoreFp, 3, 2, rs2Full, static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 9, 7) << 6));
        case 6:  // c.swsp
          return sType(kOpStore, 2, 2, rs2Full, static_cast<int32_t>(bits(c, 12, 9) << 2 | bits(c, 8, 7) << 6));
        default:  // c.sdsp
          return sType(kOpStore, 3, 2, rs2Full, static_cast<int32_t>(bits(c, 12, 10) << 3 | bits(c, 9, 7) << 6));
      }
    default: return 0;
  }
}

DecodedInsn decodeAny(uint32_t word) {
  if ((word & 3) == 3) return decodeInstruction(word);
  const uint16_t half = static_cast<uint16_t>(word);
  const uint32_t expanded = expandCompressed(half);
  DecodedInsn d = decodeInstruction(expanded);
  d.raw = half;  // tval of an illegal compressed instruction is its 16 bits
  return d;
}

bool isFpCsrAccess(const DecodedInsn& insn) {
  return insn.op >= Op::Csrrw && insn.op <= Op::Csrrci && (insn.imm & 0xfff) >= csr::kFflags &&
         (insn.imm & 0xfff) <= csr::kFcsr;
}

bool endsBlock(const DecodedInsn& insn) {
  if (isFpCsrAccess(insn)) return false;
  switch (insn.op) {
    case Op::Jal:
    case Op::Jalr:
    case Op::Beq:
    case Op::Bne:
    case Op::Blt:
    case Op::Bge:
    case Op::Bltu:
    case Op::Bgeu:
    case Op::Illegal:
    case Op::FenceI:
    case Op::Ecall:
    case Op::Ebreak:
    case Op::Mret:
    case Op::Sret:
    case Op::Wfi:
    case Op::SfenceVma:
    case Op::Csrrw:
    case Op::Csrrs:
    case Op::Csrrc:
    case Op::Csrrwi:
    case Op::Csrrsi:
    case Op::Csrrci:
    case Op::BlockEnd: return true;
    default: return false;
  }
}

}  // namespace strata::cpu
