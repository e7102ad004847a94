// Test support for the CPU unit tests: a tiny RV64 assembler (mnemonic ->
// instruction word), a guest machine with RAM, a scriptable clock and an MMIO
// recorder, and helpers to load programs and build page tables.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "cpu/csr_defs.h"
#include "cpu/hart.h"
#include "cpu/rv_encoding.h"

namespace strata::cpu::test {

// ---- assembler ----
namespace as {
using namespace rv;
enum Reg : unsigned {
  zero = 0, ra, sp, gp, tp, t0, t1, t2, s0, s1, a0, a1, a2, a3, a4, a5, a6, a7,
  s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, t3, t4, t5, t6
};
inline uint32_t lui(unsigned rd, int32_t imm) { return uType(kOpLui, rd, imm); }
inline uint32_t auipc(unsigned rd, int32_t imm) { return uType(kOpAuipc, rd, imm); }
inline uint32_t jal(unsigned rd, int32_t off) { return jType(kOpJal, rd, off); }
inline uint32_t jalr(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpJalr, rd, 0, rs1, imm); }
inline uint32_t beq(unsigned a, unsigned b, int32_t off) { return bType(kOpBranch, 0, a, b, off); }
inline uint32_t bne(unsigned a, unsigned b, int32_t off) { return bType(kOpBranch, 1, a, b, off); }
inline uint32_t blt(unsigned a, unsigned b, int32_t off) { return bType(kOpBranch, 4, a, b, off); }
inline uint32_t bge(unsigned a, unsigned b, int32_t off) { return bType(kOpBranch, 5, a, b, off); }
inline uint32_t bltu(unsigned a, unsigned b, int32_t off) { return bType(kOpBranch, 6, a, b, off); }
inline uint32_t bgeu(unsigned a, unsigned b, int32_t off) { return bType(kOpBranch, 7, a, b, off); }
inline uint32_t lb(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 0, rs1, imm); }
inline uint32_t lh(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 1, rs1, imm); }
inline uint32_t lw(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 2, rs1, imm); }
inline uint32_t ld(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 3, rs1, imm); }
inline uint32_t lbu(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 4, rs1, imm); }
inline uint32_t lhu(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 5, rs1, imm); }
inline uint32_t lwu(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoad, rd, 6, rs1, imm); }
inline uint32_t sb(unsigned rs2, unsigned rs1, int32_t imm) { return sType(kOpStore, 0, rs1, rs2, imm); }
inline uint32_t sh(unsigned rs2, unsigned rs1, int32_t imm) { return sType(kOpStore, 1, rs1, rs2, imm); }
inline uint32_t sw(unsigned rs2, unsigned rs1, int32_t imm) { return sType(kOpStore, 2, rs1, rs2, imm); }
inline uint32_t sd(unsigned rs2, unsigned rs1, int32_t imm) { return sType(kOpStore, 3, rs1, rs2, imm); }
inline uint32_t addi(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm, rd, 0, rs1, imm); }
inline uint32_t slti(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm, rd, 2, rs1, imm); }
inline uint32_t sltiu(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm, rd, 3, rs1, imm); }
inline uint32_t xori(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm, rd, 4, rs1, imm); }
inline uint32_t ori(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm, rd, 6, rs1, imm); }
inline uint32_t andi(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm, rd, 7, rs1, imm); }
inline uint32_t slli(unsigned rd, unsigned rs1, unsigned sh) { return iType(kOpImm, rd, 1, rs1, static_cast<int32_t>(sh)); }
inline uint32_t srli(unsigned rd, unsigned rs1, unsigned sh) { return iType(kOpImm, rd, 5, rs1, static_cast<int32_t>(sh)); }
inline uint32_t srai(unsigned rd, unsigned rs1, unsigned sh) {
  return iType(kOpImm, rd, 5, rs1, static_cast<int32_t>(sh | 0x400));
}
inline uint32_t addiw(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpImm32, rd, 0, rs1, imm); }
inline uint32_t slliw(unsigned rd, unsigned rs1, unsigned sh) { return rType(kOpImm32, rd, 1, rs1, sh, 0); }
inline uint32_t srliw(unsigned rd, unsigned rs1, unsigned sh) { return rType(kOpImm32, rd, 5, rs1, sh, 0); }
inline uint32_t sraiw(unsigned rd, unsigned rs1, unsigned sh) { return rType(kOpImm32, rd, 5, rs1, sh, 0x20); }
#define STRATA_R(name, op, f3, f7) \
  inline uint32_t name(unsigned rd, unsigned rs1, unsigned rs2) { return rType(op, rd, f3, rs1, rs2, f7); }
STRATA_R(add, kOp, 0, 0) STRATA_R(sub, kOp, 0, 0x20) STRATA_R(sll, kOp, 1, 0) STRATA_R(slt, kOp, 2, 0)
STRATA_R(sltu, kOp, 3, 0) STRATA_R(xor_, kOp, 4, 0) STRATA_R(srl, kOp, 5, 0) STRATA_R(sra, kOp, 5, 0x20)
STRATA_R(or_, kOp, 6, 0) STRATA_R(and_, kOp, 7, 0)
STRATA_R(addw, kOp32, 0, 0) STRATA_R(subw, kOp32, 0, 0x20) STRATA_R(sllw, kOp32, 1, 0) STRATA_R(srlw, kOp32, 5, 0)
STRATA_R(sraw, kOp32, 5, 0x20)
STRATA_R(mul, kOp, 0, 1) STRATA_R(mulh, kOp, 1, 1) STRATA_R(mulhsu, kOp, 2, 1) STRATA_R(mulhu, kOp, 3, 1)
STRATA_R(div, kOp, 4, 1) STRATA_R(divu, kOp, 5, 1) STRATA_R(rem, kOp, 6, 1) STRATA_R(remu, kOp, 7, 1)
STRATA_R(mulw, kOp32, 0, 1) STRATA_R(divw, kOp32, 4, 1) STRATA_R(divuw, kOp32, 5, 1) STRATA_R(remw, kOp32, 6, 1)
STRATA_R(remuw, kOp32, 7, 1)
#undef STRATA_R
// AMOs: funct5 then aq/rl zero.
inline uint32_t amo(unsigned funct5, bool dword, unsigned rd, unsigned rs1, unsigned rs2) {
  return rType(kOpAmo, rd, dword ? 3 : 2, rs1, rs2, funct5 << 2);
}
inline uint32_t lr_w(unsigned rd, unsigned rs1) { return amo(0x02, false, rd, rs1, 0); }
inline uint32_t sc_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x03, false, rd, rs1, rs2); }
inline uint32_t lr_d(unsigned rd, unsigned rs1) { return amo(0x02, true, rd, rs1, 0); }
inline uint32_t sc_d(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x03, true, rd, rs1, rs2); }
inline uint32_t amoadd_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x00, false, rd, rs1, rs2); }
inline uint32_t amoadd_d(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x00, true, rd, rs1, rs2); }
inline uint32_t amoswap_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x01, false, rd, rs1, rs2); }
inline uint32_t amoand_d(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x0c, true, rd, rs1, rs2); }
inline uint32_t amoor_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x08, false, rd, rs1, rs2); }
inline uint32_t amoxor_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x04, false, rd, rs1, rs2); }
inline uint32_t amomin_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x10, false, rd, rs1, rs2); }
inline uint32_t amomax_d(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x14, true, rd, rs1, rs2); }
inline uint32_t amominu_d(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x18, true, rd, rs1, rs2); }
inline uint32_t amomaxu_w(unsigned rd, unsigned rs1, unsigned rs2) { return amo(0x1c, false, rd, rs1, rs2); }
// System.
inline uint32_t csrrw(unsigned rd, uint16_t c, unsigned rs1) { return iType(kOpSystem, rd, 1, rs1, c); }
inline uint32_t csrrs(unsigned rd, uint16_t c, unsigned rs1) { return iType(kOpSystem, rd, 2, rs1, c); }
inline uint32_t csrrc(unsigned rd, uint16_t c, unsigned rs1) { return iType(kOpSystem, rd, 3, rs1, c); }
inline uint32_t csrrwi(unsigned rd, uint16_t c, unsigned imm) { return iType(kOpSystem, rd, 5, imm, c); }
inline uint32_t csrrsi(unsigned rd, uint16_t c, unsigned imm) { return iType(kOpSystem, rd, 6, imm, c); }
inline uint32_t csrrci(unsigned rd, uint16_t c, unsigned imm) { return iType(kOpSystem, rd, 7, imm, c); }
inline uint32_t csrr(unsigned rd, uint16_t c) { return csrrs(rd, c, 0); }
inline uint32_t csrw(uint16_t c, unsigned rs1) { return csrrw(0, c, rs1); }
inline constexpr uint32_t ecall = 0x00000073, ebreak = 0x00100073, sret = 0x10200073, mret = 0x30200073,
                          wfi = 0x10500073, fence_i = 0x0000100f, fence = 0x0ff0000f, nop = 0x00000013;
inline uint32_t sfence_vma(unsigned rs1, unsigned rs2) { return rType(kOpSystem, 0, 0, rs1, rs2, 0x09); }
// Floating point (rm = 7: dynamic).
inline uint32_t flw(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoadFp, rd, 2, rs1, imm); }
inline uint32_t fld(unsigned rd, unsigned rs1, int32_t imm) { return iType(kOpLoadFp, rd, 3, rs1, imm); }
inline uint32_t fsw(unsigned rs2, unsigned rs1, int32_t imm) { return sType(kOpStoreFp, 2, rs1, rs2, imm); }
inline uint32_t fsd(unsigned rs2, unsigned rs1, int32_t imm) { return sType(kOpStoreFp, 3, rs1, rs2, imm); }
inline uint32_t fop(unsigned funct7, unsigned rd, unsigned rs1, unsigned rs2, unsigned rm = 7) {
  return rType(kOpFp, rd, rm, rs1, rs2, funct7);
}
// Fused multiply-add family (opcode kOpMadd..kOpNmadd), fmt 0 = single, 1 = double.
inline uint32_t fr4(uint32_t opcode, unsigned fmt, unsigned rd, unsigned rs1, unsigned rs2, unsigned rs3,
                    unsigned rm = 7) {
  return rType(opcode, rd, rm, rs1, rs2, (rs3 << 2) | fmt);
}
}  // namespace as

// ---- machine ----
class TestHost : public HartHost {
 public:
  std::atomic<uint64_t> time{0};
  std::function<bool(Hart&)> onEcall;
  uint64_t timeNow() override { return time.load(); }
  bool supervisorEcall(Hart& hart) override { return onEcall ? onEcall(hart) : false; }
  std::atomic<unsigned> deferredFlushes{0};
  void flushDeferredOutput() override { ++deferredFlushes; }
};

// A device window that records writes and answers reads from a map.
class TestMmio : public MmioHandler {
 public:
  static constexpr uint64_t kBase = 0x10000000, kSize = 0x1000;
  std::map<uint64_t, uint64_t> registers;
  std::vector<std::pair<uint64_t, uint64_t>> writes;
  bool mmioRead(uint64_t pa, unsigned size, uint64_t& value) override {
    if (pa < kBase || pa + size > kBase + kSize) return false;
    value = registers.count(pa) ? registers[pa] : 0;
    return true;
  }
  bool mmioWrite(uint64_t pa, unsigned size, uint64_t value) override {
    if (pa < kBase || pa + size > kBase + kSize) return false;
    writes.emplace_back(pa, value);
    registers[pa] = value;
    return true;
  }
};

// A hart running `program` from `base` in S-mode (RAM of `ramBytes` there),
// stopped by the program's ecall.
struct ProgramHart {
  ProgramHart(const std::vector<uint32_t>& program, uint64_t base, uint64_t ramBytes, const EngineConfig& engine)
      : ram(std::make_unique<uint8_t[]>(ramBytes)) {
    std::memcpy(ram.get(), program.data(), program.size() * 4);
    host.onEcall = [](Hart& h) {
      h.stopSelf();
      return true;
    };
    hart = std::make_unique<Hart>(0, PhysicalMemory{base, ramBytes, ram.get(), &mmio}, host, engine);
    hart->resetToSupervisorBoot(base, 0);
  }
  std::map<std::string, uint64_t> stats() const {
    std::map<std::string, uint64_t> byName;
    for (const auto& stat : hart->engineStats()) byName[stat.name] = stat.value;
    return byName;
  }

  std::unique_ptr<uint8_t[]> ram;
  TestHost host;
  TestMmio mmio;
  std::unique_ptr<Hart> hart;
};

class CpuTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRamBase = 0x80000000;
  static constexpr uint64_t kRamSize = 16ull << 20;

  CpuTest() : ram_(new uint8_t[kRamSize]()) {
    hart_ = std::make_unique<Hart>(0, PhysicalMemory{kRamBase, kRamSize, ram_.get(), &mmio_}, host_);
    hart_->resetToMachineMode(kRamBase);
    // As firmware does: PMP grants S and U everything (tests of PMP narrow it).
    hart_->writeCsr(csr::kPmpaddr0, (1ull << 54) - 1);
    hart_->writeCsr(csr::kPmpcfg0, 0x1f);  // NAPOT, RWX
  }

  Hart& hart() { return *hart_; }
  uint64_t x(unsigned index) { return hart_->xreg(index); }
  uint8_t* ram(uint64_t pa) { return ram_.get() + (pa - kRamBase); }

  void loadWords(uint64_t pa, const std::vector<uint32_t>& words) {
    std::memcpy(ram(pa), words.data(), words.size() * 4);
  }
  // Places a program at the reset pc and executes it to its end
  // (one step per instruction unless the program branches).
  void runProgram(const std::vector<uint32_t>& words, uint64_t steps = 0) {
    loadWords(kRamBase, words);
    hart_->step(steps ? steps : words.size());
  }
  template <typename T>
  T peek(uint64_t pa) {
    T value;
    std::memcpy(&value, ram(pa), sizeof(T));
    return value;
  }
  template <typename T>
  void poke(uint64_t pa, T value) {
    std::memcpy(ram(pa), &value, sizeof(T));
  }
  uint64_t csr(uint16_t number) { return hart_->readCsr(number).value(); }

  std::unique_ptr<uint8_t[]> ram_;
  TestHost host_;
  TestMmio mmio_;
  std::unique_ptr<Hart> hart_;
};

}  // namespace strata::cpu::test
