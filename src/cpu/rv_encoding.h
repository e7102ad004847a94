// RISC-V instruction field encoders: build 32-bit instruction words from
// their fields. Used by the compressed-instruction expander (which rewrites a
// 16-bit instruction as its 32-bit equivalent) and by tests and boot stubs
// that assemble small programs in memory.
#pragma once

#include <cstdint>

namespace strata::cpu::rv {

// Major opcodes (bits 6:0).
inline constexpr uint32_t kOpLoad = 0x03, kOpLoadFp = 0x07, kOpMiscMem = 0x0f, kOpImm = 0x13, kOpAuipc = 0x17,
                          kOpImm32 = 0x1b, kOpStore = 0x23, kOpStoreFp = 0x27, kOpAmo = 0x2f, kOp = 0x33,
                          kOpLui = 0x37, kOp32 = 0x3b, kOpMadd = 0x43, kOpMsub = 0x47, kOpNmsub = 0x4b,
                          kOpNmadd = 0x4f, kOpFp = 0x53, kOpBranch = 0x63, kOpJalr = 0x67, kOpJal = 0x6f,
                          kOpSystem = 0x73;

constexpr uint32_t rType(uint32_t opcode, unsigned rd, unsigned funct3, unsigned rs1, unsigned rs2, unsigned funct7) {
  return opcode | (rd & 31) << 7 | (funct3 & 7) << 12 | (rs1 & 31) << 15 | (rs2 & 31) << 20 | (funct7 & 127) << 25;
}
constexpr uint32_t r4Type(uint32_t opcode, unsigned rd, unsigned rm, unsigned rs1, unsigned rs2, unsigned fmt,
                          unsigned rs3) {
  return rType(opcode, rd, rm, rs1, rs2, (fmt & 3) | (rs3 & 31) << 2);
}
constexpr uint32_t iType(uint32_t opcode, unsigned rd, unsigned funct3, unsigned rs1, int32_t imm) {
  return opcode | (rd & 31) << 7 | (funct3 & 7) << 12 | (rs1 & 31) << 15 | (static_cast<uint32_t>(imm) & 0xfff) << 20;
}
constexpr uint32_t sType(uint32_t opcode, unsigned funct3, unsigned rs1, unsigned rs2, int32_t imm) {
  uint32_t u = static_cast<uint32_t>(imm);
  return opcode | (u & 0x1f) << 7 | (funct3 & 7) << 12 | (rs1 & 31) << 15 | (rs2 & 31) << 20 | ((u >> 5) & 0x7f)
                                                                                                     << 25;
}
constexpr uint32_t bType(uint32_t opcode, unsigned funct3, unsigned rs1, unsigned rs2, int32_t imm) {
  uint32_t u = static_cast<uint32_t>(imm);
  return opcode | ((u >> 11) & 1) << 7 | ((u >> 1) & 0xf) << 8 | (funct3 & 7) << 12 | (rs1 & 31) << 15 |
         (rs2 & 31) << 20 | ((u >> 5) & 0x3f) << 25 | ((u >> 12) & 1) << 31;
}
// `imm` is the full value whose upper 20 bits land in the instruction.
constexpr uint32_t uType(uint32_t opcode, unsigned rd, int32_t imm) {
  return opcode | (rd & 31) << 7 | (static_cast<uint32_t>(imm) & 0xfffff000u);
}
constexpr uint32_t jType(uint32_t opcode, unsigned rd, int32_t imm) {
  uint32_t u = static_cast<uint32_t>(imm);
  return opcode | (rd & 31) << 7 | ((u >> 12) & 0xff) << 12 | ((u >> 11) & 1) << 20 | ((u >> 1) & 0x3ff) << 21 |
         ((u >> 20) & 1) << 31;
}

}  // namespace strata::cpu::rv
