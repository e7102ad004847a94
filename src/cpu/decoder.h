// Instruction decoder for RV64IMAFDC + Zicsr + Zifencei: turns one 16- or
// 32-bit instruction word into a compact DecodedInsn (an op from a dense enum
// plus pre-extracted operands) that engines execute without re-decoding.
// Compressed instructions are expanded to the same form as their 32-bit twins.
#pragma once

#include <cstdint>

namespace strata::cpu {

// X(op, handler): `handler` groups ops that share one out-of-line executor
// (the interpreter's dispatch table is generated from this list).
#define STRATA_CPU_OPS(X)                                                                                    \
  X(Illegal, Illegal)                                                                                        \
  X(Lui, Lui) X(Auipc, Auipc) X(Jal, Jal) X(Jalr, Jalr)                                                      \
  X(Beq, Beq) X(Bne, Bne) X(Blt, Blt) X(Bge, Bge) X(Bltu, Bltu) X(Bgeu, Bgeu)                                \
  X(Lb, Lb) X(Lh, Lh) X(Lw, Lw) X(Ld, Ld) X(Lbu, Lbu) X(Lhu, Lhu) X(Lwu, Lwu)                                \
  X(Sb, Sb) X(Sh, Sh) X(Sw, Sw) X(Sd, Sd)                                                                    \
  X(Addi, Addi) X(Slti, Slti) X(Sltiu, Sltiu) X(Xori, Xori) X(Ori, Ori) X(Andi, Andi)                        \
  X(Slli, Slli) X(Srli, Srli) X(Srai, Srai)                                                                  \
  X(Add, Add) X(Sub, Sub) X(Sll, Sll) X(Slt, Slt) X(Sltu, Sltu) X(Xor, Xor) X(Srl, Srl) X(Sra, Sra)          \
  X(Or, Or) X(And, And)                                                                                      \
  X(Addiw, Addiw) X(Slliw, Slliw) X(Srliw, Srliw) X(Sraiw, Sraiw)                                            \
  X(Addw, Addw) X(Subw, Subw) X(Sllw, Sllw) X(Srlw, Srlw) X(Sraw, Sraw)                                      \
  X(Mul, Mul) X(Mulh, Mulh) X(Mulhsu, Mulhsu) X(Mulhu, Mulhu)                                                \
  X(Div, Div) X(Divu, Divu) X(Rem, Rem) X(Remu, Remu)                                                        \
  X(Mulw, Mulw) X(Divw, Divw) X(Divuw, Divuw) X(Remw, Remw) X(Remuw, Remuw)                                  \
  X(LrW, Atomic) X(ScW, Atomic) X(AmoSwapW, Atomic) X(AmoAddW, Atomic) X(AmoXorW, Atomic)                    \
  X(AmoAndW, Atomic) X(AmoOrW, Atomic) X(AmoMinW, Atomic) X(AmoMaxW, Atomic) X(AmoMinuW, Atomic)             \
  X(AmoMaxuW, Atomic)                                                                                        \
  X(LrD, Atomic) X(ScD, Atomic) X(AmoSwapD, Atomic) X(AmoAddD, Atomic) X(AmoXorD, Atomic)                    \
  X(AmoAndD, Atomic) X(AmoOrD, Atomic) X(AmoMinD, Atomic) X(AmoMaxD, Atomic) X(AmoMinuD, Atomic)             \
  X(AmoMaxuD, Atomic)                                                                                        \
  X(Fence, Fence) X(FenceFull, FenceFull) X(FenceI, System) X(Ecall, System) X(Ebreak, System)              \
  X(Mret, System) X(Sret, System) X(Wfi, System) X(SfenceVma, System)                                      \
  X(Csrrw, Csr) X(Csrrs, Csr) X(Csrrc, Csr) X(Csrrwi, Csr) X(Csrrsi, Csr) X(Csrrci, Csr)                     \
  X(Flw, Fp) X(Fld, Fp) X(Fsw, Fp) X(Fsd, Fp)                                                                \
  X(FmaddS, Fp) X(FmsubS, Fp) X(FnmsubS, Fp) X(FnmaddS, Fp)                                                  \
  X(FmaddD, Fp) X(FmsubD, Fp) X(FnmsubD, Fp) X(FnmaddD, Fp)                                                  \
  X(FaddS, Fp) X(FsubS, Fp) X(FmulS, Fp) X(FdivS, Fp) X(FsqrtS, Fp)                                          \
  X(FaddD, Fp) X(FsubD, Fp) X(FmulD, Fp) X(FdivD, Fp) X(FsqrtD, Fp)                                          \
  X(FsgnjS, Fp) X(FsgnjnS, Fp) X(FsgnjxS, Fp) X(FsgnjD, Fp) X(FsgnjnD, Fp) X(FsgnjxD, Fp)                    \
  X(FminS, Fp) X(FmaxS, Fp) X(FminD, Fp) X(FmaxD, Fp)                                                        \
  X(FcvtSD, Fp) X(FcvtDS, Fp)                                                                                \
  X(FcvtWS, Fp) X(FcvtWuS, Fp) X(FcvtLS, Fp) X(FcvtLuS, Fp)                                                  \
  X(FcvtWD, Fp) X(FcvtWuD, Fp) X(FcvtLD, Fp) X(FcvtLuD, Fp)                                                  \
  X(FcvtSW, Fp) X(FcvtSWu, Fp) X(FcvtSL, Fp) X(FcvtSLu, Fp)                                                  \
  X(FcvtDW, Fp) X(FcvtDWu, Fp) X(FcvtDL, Fp) X(FcvtDLu, Fp)                                                  \
  X(FmvXW, Fp) X(FmvWX, Fp) X(FmvXD, Fp) X(FmvDX, Fp)                                                        \
  X(FeqS, Fp) X(FltS, Fp) X(FleS, Fp) X(FeqD, Fp) X(FltD, Fp) X(FleD, Fp)                                    \
  X(FclassS, Fp) X(FclassD, Fp)                                                                              \
  X(BlockEnd, BlockEnd)

enum class Op : uint8_t {
#define STRATA_CPU_OP_ENUM(name, handler) name,
  STRATA_CPU_OPS(STRATA_CPU_OP_ENUM)
#undef STRATA_CPU_OP_ENUM
      Count
};
static_assert(static_cast<unsigned>(Op::Count) <= 256);

// x0 is never written: decoders send integer results aimed at x0 to this
// scratch slot instead, so executors write rd unconditionally.
inline constexpr uint8_t kDiscardRegister = 32;

// One decoded instruction. 16 bytes so a block's instructions pack densely.
struct DecodedInsn {
  Op op = Op::Illegal;
  uint8_t rd = 0;   // integer rd (0 remapped to kDiscardRegister) or FP rd
  uint8_t rs1 = 0;  // also the zimm field of CSR*I
  uint8_t rs2 = 0;
  uint8_t rs3 = 0;  // FP fused multiply-add third source
  uint8_t rm = 0;   // FP rounding mode field; Fence: predecessor/successor bits
  uint16_t pcOffset = 0;  // byte offset of this instruction from its block's start
  int32_t imm = 0;        // sign-extended immediate; CSR number for CSR ops
  uint32_t raw = 0;       // original encoding (16-bit ones zero-extended): the tval of illegal instructions
};
static_assert(sizeof(DecodedInsn) == 16);

// Length in bytes of the instruction whose low 16 bits are `low`.
constexpr unsigned instructionLength(uint32_t low) { return (low & 3) == 3 ? 4 : 2; }

// Decodes a 32-bit instruction. Invalid encodings yield Op::Illegal.
DecodedInsn decodeInstruction(uint32_t word);
// Rewrites a 16-bit compressed instruction as the equivalent 32-bit
// instruction; 0 (an illegal word) for reserved or illegal encodings.
uint32_t expandCompressed(uint16_t half);
// Decodes a 16- or 32-bit instruction (length from the low bits).
DecodedInsn decodeAny(uint32_t word);

// A CSR instruction on fflags, frm or fcsr: it changes nothing a block or its
// translation depends on (FP code checks FS and frm as it runs), so it does
// not end a block; compilers put frflags/fsflags pairs inside FP loops.
bool isFpCsrAccess(const DecodedInsn& insn);
// True for instructions after which a block must end: control transfers and
// anything that may change privilege, translation, interrupt state or code.
bool endsBlock(const DecodedInsn& insn);

}  // namespace strata::cpu
