/* A guest that is a JIT itself, run by tests/integration/hostile_guest_test.cpp
   with `strata run --bare code_churn.elf --engine jit,threshold=1 --stats`:
   round after round it writes a new function (8 to 39 random ALU
   instructions on a0/a1, then ret) into one of 256 slots of a 64 KiB code
   buffer, so a slot is rewritten every 256 rounds, runs fence.i, calls the
   function three times (the translator translates it on its second run) and
   compares each result with what the same instruction list computes in C.
   Every version is new code for the translator: its caches must keep
   dropping stale and old translations while the host's memory stays flat.
   Prints "round N" every 32768 rounds and "code churn: ok" after ROUNDS. */
#include "conformance.h"

#define ROUNDS (1u << 19)
#define SLOTS 256
#define SLOT_WORDS 64  /* 256 bytes: 39 instructions and the ret fit */

static uint32_t code[SLOTS][SLOT_WORDS] __attribute__((aligned(4096)));

enum op { ADDI, XORI, ORI, SLLI, SRLI, ADD, SUB, MUL, OPS };
struct insn {
  enum op op;
  int32_t imm;
};

static uint64_t random_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {  /* xorshift64 */
  random_state ^= random_state << 13;
  random_state ^= random_state >> 7;
  random_state ^= random_state << 17;
  return random_state;
}

#define A0 10
#define A1 11
static uint32_t i_type(uint32_t funct3, int32_t imm) {
  return ((uint32_t)(imm & 0xfff) << 20) | (A0 << 15) | (funct3 << 12) | (A0 << 7) | 0x13;
}
static uint32_t r_type(uint32_t funct7, uint32_t funct3) {
  return (funct7 << 25) | (A1 << 20) | (A0 << 15) | (funct3 << 12) | (A0 << 7) | 0x33;
}

static uint32_t encode(struct insn i) {
  switch (i.op) {
    case ADDI: return i_type(0, i.imm);
    case XORI: return i_type(4, i.imm);
    case ORI: return i_type(6, i.imm);
    case SLLI: return i_type(1, i.imm);
    case SRLI: return i_type(5, i.imm);
    case ADD: return r_type(0, 0);
    case SUB: return r_type(0x20, 0);
    default: return r_type(1, 0);  /* mul */
  }
}

static uint64_t evaluate(const struct insn* list, int count, uint64_t a0, uint64_t a1) {
  for (int i = 0; i < count; ++i) {
    int64_t imm = list[i].imm;
    switch (list[i].op) {
      case ADDI: a0 += (uint64_t)imm; break;
      case XORI: a0 ^= (uint64_t)imm; break;
      case ORI: a0 |= (uint64_t)imm; break;
      case SLLI: a0 <<= imm; break;
      case SRLI: a0 >>= imm; break;
      case ADD: a0 += a1; break;
      case SUB: a0 -= a1; break;
      default: a0 *= a1; break;
    }
  }
  return a0;
}

int main(void) {
  struct insn list[SLOT_WORDS];
  for (uint32_t round = 1; round <= ROUNDS; ++round) {
    int count = 8 + (int)(next_random() % 32);
    for (int i = 0; i < count; ++i) {
      uint64_t r = next_random();
      list[i].op = (enum op)(r % OPS);
      list[i].imm = list[i].op == SLLI || list[i].op == SRLI ? (int32_t)((r >> 8) % 64)
                                                             : (int32_t)((r >> 8) % 4096) - 2048;
    }
    uint32_t* slot = code[round % SLOTS];
    for (int i = 0; i < count; ++i) slot[i] = encode(list[i]);
    slot[count] = 0x00008067;  /* ret */
    __asm__ volatile("fence.i" ::: "memory");
    uint64_t (*function)(uint64_t, uint64_t) = (uint64_t (*)(uint64_t, uint64_t))(uintptr_t)slot;
    for (uint64_t call = 0; call < 3; ++call) {
      uint64_t a0 = next_random(), a1 = next_random() | call;
      uint64_t got = function(a0, a1), expected = evaluate(list, count, a0, a1);
      if (got != expected) {
        print_str("round ");
        print_dec(round);
        print_str(" call ");
        print_dec(call);
        print_str(": got ");
        print_hex(got);
        print_str(" expected ");
        print_hex(expected);
        htif_putchar('\n');
        exit_program(1);
      }
    }
    if (round % 32768 == 0) {
      print_str("round ");
      print_dec(round);
      htif_putchar('\n');
    }
  }
  print_str("code churn: ok\n");
  return 0;
}
