#include "cpu/interp/interpreter.h"

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "cpu/block_cache.h"
#include "cpu/divide.h"
#include "cpu/hart_core.h"

namespace strata::cpu::interp {

namespace {

// Executes `block` (which starts at hart.pc) up to its end, a trap, or — when
// kLimited — `limit` instructions. Leaves hart.pc at the next instruction to
// run, with any trap already taken, and accounts retired instructions.
//
// Unlimited mode chains: after a branch or jump whose target block is already
// decoded and mapped in the fetch TLB, it continues there directly (as long
// as nothing needs attention), so hot loops never leave this function.
template <bool kLimited>
// GCC's global CSE merges the per-handler indirect jumps into one shared
// dispatch site, which defeats branch prediction of the threaded code.
__attribute__((optimize("no-gcse", "no-crossjumping"))) BlockResult executeBlock(HartCore& h, Block* block,
                                                                                 uint32_t limit) {
#define STRATA_CPU_LABEL(name, handler) &&op_##handler,
  static const void* const kDispatch[] = {STRATA_CPU_OPS(STRATA_CPU_LABEL)};
#undef STRATA_CPU_LABEL
  uint64_t* const x = h.x;
  uint64_t base = h.pc;
  const DecodedInsn* in = block->insns;
  const DecodedInsn* const stopAt = block->insns + limit;
  uint32_t retired;

#define DISPATCH()                                            \
  do {                                                        \
    if constexpr (kLimited) {                                 \
      if (in == stopAt) goto limit_reached;                   \
    }                                                         \
    goto* kDispatch[static_cast<uint8_t>(in->op)];            \
  } while (0)
#define NEXT() \
  do {         \
    ++in;      \
    DISPATCH(); \
  } while (0)
#define RD x[in->rd]
#define RS1 x[in->rs1]
#define RS2 x[in->rs2]
#define IMM static_cast<int64_t>(in->imm)
#define SIMM static_cast<uint64_t>(static_cast<int64_t>(in->imm))
#define PC_HERE (base + in->pcOffset)
#define PC_NEXT (base + in[1].pcOffset)
#define SEXT32(v) static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(v))))
#define BRANCH(cond)                                 \
  do {                                                \
    h.pc = (cond) ? PC_HERE + SIMM : PC_NEXT;         \
    goto jump_exit;                                   \
  } while (0)
#define LOAD(type)                                       \
  do {                                                   \
    type value;                                          \
    if (!h.load<type>(RS1 + SIMM, value)) goto fault;    \
    RD = static_cast<uint64_t>(static_cast<std::conditional_t<std::is_signed_v<type>, int64_t, uint64_t>>(value)); \
    NEXT();                                              \
  } while (0)
#define STORE(type)                                                          \
  do {                                                                       \
    if (!h.store<type>(RS1 + SIMM, static_cast<type>(RS2))) goto fault;      \
    NEXT();                                                                  \
  } while (0)

  DISPATCH();

op_Illegal:
  h.raiseIllegal(*in);
  goto fault;
op_Lui:
  RD = SIMM;
  NEXT();
op_Auipc:
  RD = PC_HERE + SIMM;
  NEXT();
op_Jal:
  RD = PC_NEXT;
  h.pc = PC_HERE + SIMM;
  goto jump_exit;
op_Jalr: {
  const uint64_t target = (RS1 + SIMM) & ~1ull;
  RD = PC_NEXT;
  h.pc = target;
  goto jump_exit;
}
op_Beq: BRANCH(RS1 == RS2);
op_Bne: BRANCH(RS1 != RS2);
op_Blt: BRANCH(static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2));
op_Bge: BRANCH(static_cast<int64_t>(RS1) >= static_cast<int64_t>(RS2));
op_Bltu: BRANCH(RS1 < RS2);
op_Bgeu: BRANCH(RS1 >= RS2);
op_Lb: LOAD(int8_t);
op_Lh: LOAD(int16_t);
op_Lw: LOAD(int32_t);
op_Ld: LOAD(uint64_t);
op_Lbu: LOAD(uint8_t);
op_Lhu: LOAD(uint16_t);
op_Lwu: LOAD(uint32_t);
op_Sb: STORE(uint8_t);
op_Sh: STORE(uint16_t);
op_Sw: STORE(uint32_t);
op_Sd: STORE(uint64_t);
op_Addi:
  RD = RS1 + SIMM;
  NEXT();
op_Slti:
  RD = static_cast<int64_t>(RS1) < IMM;
  NEXT();
op_Sltiu:
  RD = RS1 < SIMM;
  NEXT();
op_Xori:
  RD = RS1 ^ SIMM;
  NEXT();
op_Ori:
  RD = RS1 | SIMM;
  NEXT();
op_Andi:
  RD = RS1 & SIMM;
  NEXT();
op_Slli:
  RD = RS1 << in->imm;
  NEXT();
op_Srli:
  RD = RS1 >> in->imm;
  NEXT();
op_Srai:
  RD = static_cast<uint64_t>(static_cast<int64_t>(RS1) >> in->imm);
  NEXT();
op_Add:
  RD = RS1 + RS2;
  NEXT();
op_Sub:
  RD = RS1 - RS2;
  NEXT();
op_Sll:
  RD = RS1 << (RS2 & 63);
  NEXT();
op_Slt:
  RD = static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2);
  NEXT();
op_Sltu:
  RD = RS1 < RS2;
  NEXT();
op_Xor:
  RD = RS1 ^ RS2;
  NEXT();
op_Srl:
  RD = RS1 >> (RS2 & 63);
  NEXT();
op_Sra:
  RD = static_cast<uint64_t>(static_cast<int64_t>(RS1) >> (RS2 & 63));
  NEXT();
op_Or:
  RD = RS1 | RS2;
  NEXT();
op_And:
  RD = RS1 & RS2;
  NEXT();
op_Addiw:
  RD = SEXT32(RS1 + SIMM);
  NEXT();
op_Slliw:
  RD = SEXT32(static_cast<uint32_t>(RS1) << in->imm);
  NEXT();
op_Srliw:
  RD = SEXT32(static_cast<uint32_t>(RS1) >> in->imm);
  NEXT();
op_Sraiw:
  RD = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(RS1) >> in->imm));
  NEXT();
op_Addw:
  RD = SEXT32(RS1 + RS2);
  NEXT();
op_Subw:
  RD = SEXT32(RS1 - RS2);
  NEXT();
op_Sllw:
  RD = SEXT32(static_cast<uint32_t>(RS1) << (RS2 & 31));
  NEXT();
op_Srlw:
  RD = SEXT32(static_cast<uint32_t>(RS1) >> (RS2 & 31));
  NEXT();
op_Sraw:
  RD = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(RS1) >> (RS2 & 31)));
  NEXT();
op_Mul:
  RD = RS1 * RS2;
  NEXT();
op_Mulh:
  RD = static_cast<uint64_t>((static_cast<__int128>(static_cast<int64_t>(RS1)) *
                              static_cast<__int128>(static_cast<int64_t>(RS2))) >> 64);
  NEXT();
op_Mulhsu:
  RD = mulhsu(RS1, RS2);
  NEXT();
op_Mulhu:
  RD = static_cast<uint64_t>((static_cast<unsigned __int128>(RS1) * RS2) >> 64);
  NEXT();
op_Div:
  RD = divSigned(RS1, RS2);
  NEXT();
op_Divu:
  RD = divUnsigned(RS1, RS2);
  NEXT();
op_Rem:
  RD = remSigned(RS1, RS2);
  NEXT();
op_Remu:
  RD = remUnsigned(RS1, RS2);
  NEXT();
op_Mulw:
  RD = SEXT32(RS1 * RS2);
  NEXT();
op_Divw:
  RD = divSignedWord(RS1, RS2);
  NEXT();
op_Divuw:
  RD = divUnsignedWord(RS1, RS2);
  NEXT();
op_Remw:
  RD = remSignedWord(RS1, RS2);
  NEXT();
op_Remuw:
  RD = remUnsignedWord(RS1, RS2);
  NEXT();
op_Atomic:
  if (!h.executeAtomic(*in)) goto fault;
  NEXT();
op_Fence:
  // Loads and stores through host pointers already keep TSO order; only the
  // compiler must not move them across the fence.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  NEXT();
op_FenceFull:
  std::atomic_thread_fence(std::memory_order_seq_cst);
  NEXT();
op_System:
  h.pc = PC_HERE;
  if (!h.executeSystem(*in)) goto fault;
  goto retire_last;  // executeSystem set the next pc
op_Csr:
  h.pc = PC_HERE;
  if (!h.executeCsr(*in, static_cast<uint64_t>(in - block->insns))) goto fault;
  if (isFpCsrAccess(*in)) NEXT();  // the block goes on (endsBlock)
  h.pc = PC_NEXT;
  goto retire_last;
op_Fp:
  if (!h.executeFp(*in)) goto fault;
  NEXT();
op_BlockEnd:  // fell off the end of a block cut by size or the page boundary
  h.pc = PC_HERE;
  retired = static_cast<uint32_t>(in - block->insns);
  h.instret += retired;
  goto try_chain;

jump_exit:
  retired = static_cast<uint32_t>(in - block->insns) + 1;
  h.instret += retired;
try_chain:
  if constexpr (!kLimited) {
    if (h.attention.load(std::memory_order_relaxed) == 0 && --h.timerCountdown > 0) [[likely]] {
      const uint64_t pc = h.pc;
      Block* next = nullptr;
      if (((pc ^ base) >> 12) == 0 && block != &h.scratch.block) [[likely]] {
        // Same page: the successor's physical address follows from ours.
        const auto offset = static_cast<uint16_t>(pc & 0xfff);
        if (block->chain[0] != nullptr && block->chainOffset[0] == offset) {
          next = block->chain[0];
        } else if (block->chain[1] != nullptr && block->chainOffset[1] == offset) {
          next = block->chain[1];
        } else {
          next = h.blocks.find((block->physicalPc & ~0xfffull) | offset);
          if (next != nullptr && !block->chainFrozen) {
            const unsigned victim = block->chainVictim;
            block->chain[victim] = next;
            block->chainOffset[victim] = offset;
            block->chainVictim = static_cast<uint8_t>(victim ^ 1);
          }
        }
      } else {
        const FetchTlbEntry& e = h.currentFetchTlb[(pc >> 12) & (HartCore::kTlbSlots - 1)];
        if (e.tag == (pc >> 12)) next = h.blocks.find(pc + e.physicalAddend);
      }
      if (next != nullptr && next->translated == nullptr && h.blocks.countRun(*next) < h.chainUntilExecutions) [[likely]] {
        block = next;
        base = pc;
        in = next->firstInsn();
        DISPATCH();
      }
    }
  }
  return {retired, false};
retire_last:
  retired = static_cast<uint32_t>(in - block->insns) + 1;
  h.instret += retired;
  return {retired, false};
fault:
  h.pc = PC_HERE;
  retired = static_cast<uint32_t>(in - block->insns);
  h.instret += retired;
  h.takeException();
  return {retired, true};
limit_reached:
  __attribute__((unused));
  h.pc = PC_HERE;
  retired = static_cast<uint32_t>(in - block->insns);
  h.instret += retired;
  return {retired, false};

#undef DISPATCH
#undef NEXT
#undef RD
#undef RS1
#undef RS2
#undef IMM
#undef SIMM
#undef PC_HERE
#undef PC_NEXT
#undef SEXT32
#undef BRANCH
#undef LOAD
#undef STORE
}

}  // namespace

BlockResult executeLimited(HartCore& h, Block* block, uint32_t limit) { return executeBlock<true>(h, block, limit); }
void executeChained(HartCore& h, Block* block) { executeBlock<false>(h, block, 0); }

ExitReason InterpreterEngine::run(HartCore& h) {
  RunScope scope(h);
  for (;;) {
    if (h.attention.load(std::memory_order_relaxed) != 0 || --h.timerCountdown <= 0) [[unlikely]] {
      ExitReason reason;
      if (h.serviceAttention(true, true, reason)) return reason;
    }
    Block* block = h.lookupBlock();
    if (block == nullptr) [[unlikely]] {
      h.takeException();
      continue;
    }
    executeChained(h, block);
  }
}

uint64_t InterpreterEngine::step(HartCore& h, uint64_t count) {
  RunScope scope(h);
  const uint64_t start = h.instret;
  uint64_t attempts = 0;
  while (attempts < count) {
    if (h.attention.load(std::memory_order_relaxed) != 0 || --h.timerCountdown <= 0) {
      ExitReason reason;
      if (h.serviceAttention(true, false, reason)) break;
    }
    Block* block = h.lookupBlock();
    if (block == nullptr) {
      h.takeException();
      ++attempts;
      continue;
    }
    const auto limit = static_cast<uint32_t>(std::min<uint64_t>(count - attempts, block->instructionCount));
    const BlockResult result = executeBlock<true>(h, block, limit);
    attempts += result.retired + (result.trapped ? 1 : 0);
  }
  return h.instret - start;
}

}  // namespace strata::cpu::interp
