#!/usr/bin/env python3
"""Random RV64IMAFDC instruction sequences (plus Zicsr on scratch-safe CSRs) for
differential testing.

One program holds several sequences. Each sequence starts from seeded integer
and FP register values, a seeded rounding mode and its own seeded 256-byte
buffer, then runs random instructions; after EACH instruction it stores two
words into a trace slot: the destination register (raw bits for FP) and an
extra word (fflags for FP instructions, read and cleared; the touched memory
dword for stores and AMOs; the sc result for LR/SC). At the end of a sequence
the guest prints a digest of the trace (or, in dump mode, every word).

Each sequence has a kind, a weighting of the instruction generators:
"mixed" (everything), "long_block" (straight-line code only: one long
translation), "control" (branches, jumps, branches back into the middle of
earlier code, self-modifying code), "traps" (straight-line code with traps
at random positions: ecall, ebreak, illegal, load/store/fetch access faults,
each traced with mcause, mtval, mepc and the trap count) and "fp" (FP with
every static rounding mode, frm changes for the dynamic one, NaN payloads,
unboxed singles). Branches back and the loops of self-modifying code are
taken once (a counter in memory), so every sequence ends.

Reserved registers: sp, gp (runtime), s0 (trace pointer), s1 (buffer base),
tp (scratch for the tracing code). They are read as sources but never written
by generated instructions. Everything is deterministic for a given seed.
"""
import argparse
import random

X_DEST = ["ra", "t0", "t1", "t2", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7",
          "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"]
X_SRC = X_DEST + ["zero", "sp", "s0", "s1", "tp"]
X_COMPRESSED = ["a0", "a1", "a2", "a3", "a4", "a5"]  # x10..x15 (x8/x9 are reserved)
F_REGS = [f"f{i}" for i in range(32)]
STATIC_RM = ["rne", "rtz", "rdn", "rup", "rmm", "dyn"]
BUFFER_BYTES = 256

INT_SPECIAL = [0, 1, 2, 0xFFFFFFFFFFFFFFFF, 0x8000000000000000, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFF,
               0x80000000, 0x7FFFFFFF, 0xFFFFFFFF80000000, 0x100000000, 3, 7, 0xFFFFFFFFFFFFFFFE]
DOUBLE_SPECIAL = [0x0000000000000000, 0x8000000000000000, 0x3FF0000000000000, 0xBFF0000000000000,
                  0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0x7FF8000000000123,
                  0x7FF0000000000001, 0x7FEFFFFFFFFFFFFF, 0x0010000000000000, 0x0000000000000001,
                  0x000FFFFFFFFFFFFF, 0x4004000000000000, 0xC004000000000000, 0x3FE0000000000000,
                  0x43E0000000000000, 0x41DFFFFFFFC00000, 0x4330000000000001, 0x3FD5555555555555]
# NaNs with payloads (signalling and quiet, both signs) and singles that are
# not NaN-boxed (they read as the canonical NaN): results must be the
# canonical NaN, only moves and sign injections keep a payload.
NAN_PAYLOADS = [0x7FF0000000000001, 0x7FF4000000000000, 0xFFF0DEADBEEF0001, 0x7FF8DEADBEEF0000,
                0xFFF8000000000001, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFF7FA00001, 0xFFFFFFFFFFC00123,
                0xFFFFFFFF7F800001, 0xFFFFFFFFFFFFFFFF, 0x000000007FC00000, 0xFFFFFFFE3F800000,
                0x000000003F800000]
# Integer register numbers, for instruction words built here (self-modifying code).
X_NUMBER = {name: number for number, name in enumerate(
    ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
     "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"])}
# I-type ALU instructions a self-modifying slot rewrites: name -> (opcode, funct3).
PATCHABLE = {"addi": (0x13, 0), "slti": (0x13, 2), "sltiu": (0x13, 3), "xori": (0x13, 4), "ori": (0x13, 6),
             "andi": (0x13, 7), "addiw": (0x1B, 0)}
HOLE = 0x70000000  # no RAM or device on either board: access faults
TRAP_ANY, TRAP_NONE = -2, -1  # conformance.h
MTRAP_CAUSE, MTRAP_RESUME, MTRAP_COUNT, MTRAP_SEEN_CAUSE, MTRAP_SEEN_EPC, MTRAP_SEEN_TVAL = 0, 8, 16, 24, 32, 40

SINGLE_SPECIAL = [0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000, 0x7FC00000,
                  0x7FC00123, 0x7F800001, 0x7F7FFFFF, 0x00800000, 0x00000001, 0x007FFFFF, 0x40200000,
                  0xC0200000, 0x3F000000, 0x4F000000, 0x5F000000, 0x4B800001, 0x3EAAAAAB]


class Sequence:
    """Instructions of one sequence: text lines per slot plus tracing code."""

    def __init__(self, rng, index, length):
        self.rng = rng
        self.index = index
        self.length = length
        self.kind = rng.choices(list(self.KINDS), [weight for weight, _ in self.KINDS.values()])[0]
        self.slots = []  # (description, asm lines)
        self.label = 0
        self.counters = []  # labels of once-taken loop counters (a word each, starting at 1)

    # ---- operand helpers
    def xd(self):
        return self.rng.choice(X_DEST) if self.rng.random() > 0.02 else "zero"

    def xs(self):
        return self.rng.choice(X_SRC)

    def fr(self):
        return self.rng.choice(F_REGS)

    def rm(self):
        return self.rng.choice(STATIC_RM)

    def counter(self):
        """A fresh loop counter in memory: a loop on it runs its body twice."""
        label = self.local()
        self.counters.append(label)
        return label

    @staticmethod
    def take_once(counter, scratch, target):
        """Branches to target the first time only (the counter goes 1 -> 0 -> -1 ...)."""
        return [f"la tp, {counter}", f"lw {scratch}, 0(tp)", f"addi {scratch}, {scratch}, -1",
                f"sw {scratch}, 0(tp)", f"bgez {scratch}, {target}"]

    def offset(self, align):
        return self.rng.randrange(0, BUFFER_BYTES, align)

    def imm12(self):
        r = self.rng.random()
        if r < 0.2:
            return self.rng.choice([0, 1, -1, 2047, -2048, 0x7FF, -2])
        return self.rng.randint(-2048, 2047)

    def local(self):
        self.label += 1
        return f".Ls{self.index}_{self.label}"

    # ---- tracing code for slot i (offsets relative to s0)
    @staticmethod
    def trace_x(slot, rd):
        return [f"sd {rd}, {16 * slot}(s0)", f"sd zero, {16 * slot + 8}(s0)"]

    @staticmethod
    def trace_flags(slot):
        return [f"csrrw tp, fflags, zero", f"sd tp, {16 * slot + 8}(s0)"]

    @staticmethod
    def trace_mem(slot, offset):
        return [f"ld tp, {offset & ~7}(s1)", f"sd tp, {16 * slot + 8}(s0)"]

    # ---- instruction generators: each returns (text, lines) for one slot
    def gen_int_rr(self, slot):
        op = self.rng.choice(["add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and",
                              "addw", "subw", "sllw", "srlw", "sraw", "mul", "mulh", "mulhsu", "mulhu",
                              "div", "divu", "rem", "remu", "mulw", "divw", "divuw", "remw", "remuw"])
        rd = self.xd()
        text = f"{op} {rd}, {self.xs()}, {self.xs()}"
        return text, [text] + self.trace_x(slot, rd)

    def gen_int_imm(self, slot):
        op = self.rng.choice(["addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai",
                              "addiw", "slliw", "srliw", "sraiw", "lui", "auipc"])
        rd = self.xd()
        if op in ("slli", "srli", "srai"):
            text = f"{op} {rd}, {self.xs()}, {self.rng.randrange(64)}"
        elif op in ("slliw", "srliw", "sraiw"):
            text = f"{op} {rd}, {self.xs()}, {self.rng.randrange(32)}"
        elif op in ("lui", "auipc"):
            text = f"{op} {rd}, {self.rng.randrange(1 << 20):#x}"
        else:
            text = f"{op} {rd}, {self.xs()}, {self.imm12()}"
        return text, [text] + self.trace_x(slot, rd)

    def gen_compressed(self, slot):
        rng = self.rng
        op = rng.choice(["c.add", "c.mv", "c.addi", "c.addiw", "c.li", "c.lui", "c.slli", "c.srli",
                         "c.srai", "c.andi", "c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw",
                         "c.lw", "c.ld", "c.fld"])
        rd = rng.choice(X_COMPRESSED)
        rs = rng.choice(X_COMPRESSED)
        nz6 = rng.choice([i for i in range(-32, 32) if i != 0])
        if op in ("c.add", "c.mv"):
            text = f"{op} {rd}, {rng.choice([r for r in X_DEST if r != 'zero'])}"
        elif op in ("c.addi", ):
            text = f"{op} {rd}, {nz6}"
        elif op in ("c.addiw", "c.li", "c.andi"):
            text = f"{op} {rd}, {rng.randint(-32, 31)}"
        elif op == "c.lui":
            imm = rng.choice(list(range(1, 32)) + list(range(0xFFFE0, 0x100000)))
            text = f"{op} {rd}, {imm:#x}"
        elif op in ("c.slli", "c.srli", "c.srai"):
            text = f"{op} {rd}, {rng.randint(1, 63)}"
        elif op == "c.lw":
            text = f"c.lw {rd}, {rng.randrange(0, 128, 4)}(s1)"
        elif op == "c.ld":
            text = f"c.ld {rd}, {rng.randrange(0, 256, 8)}(s1)"
        elif op == "c.fld":
            fd = f"f{rng.randint(8, 15)}"
            text = f"c.fld {fd}, {rng.randrange(0, 256, 8)}(s1)"
            return text, [text, f"fsd {fd}, {16 * slot}(s0)", f"sd zero, {16 * slot + 8}(s0)"]
        else:
            text = f"{op} {rd}, {rs}"
        return text, [text] + self.trace_x(slot, rd)

    def gen_load(self, slot):
        op, size = self.rng.choice([("lb", 1), ("lbu", 1), ("lh", 2), ("lhu", 2), ("lw", 4), ("lwu", 4),
                                    ("ld", 8)])
        rd = self.xd()
        text = f"{op} {rd}, {self.offset(size)}(s1)"
        return text, [text] + self.trace_x(slot, rd)

    def gen_store(self, slot):
        op, size = self.rng.choice([("sb", 1), ("sh", 2), ("sw", 4), ("sd", 8)])
        offset = self.offset(size)
        text = f"{op} {self.xs()}, {offset}(s1)"
        return text, [text, f"ld tp, {offset & ~7}(s1)", f"sd tp, {16 * slot}(s0)", f"sd zero, {16 * slot + 8}(s0)"]

    def gen_fp_mem(self, slot):
        op = self.rng.choice(["flw", "fld", "fsw", "fsd"])
        size = 4 if op in ("flw", "fsw") else 8
        offset = self.offset(size)
        f = self.fr()
        text = f"{op} {f}, {offset}(s1)"
        if op.startswith("fl"):
            return text, [text, f"fsd {f}, {16 * slot}(s0)", f"sd zero, {16 * slot + 8}(s0)"]
        return text, [text, f"ld tp, {offset & ~7}(s1)", f"sd tp, {16 * slot}(s0)", f"sd zero, {16 * slot + 8}(s0)"]

    def gen_branch(self, slot):
        op = self.rng.choice(["beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez"])
        rd = self.rng.choice(X_DEST)
        label = self.local()
        if op in ("beqz", "bnez"):
            branch = f"{op} {self.xs()}, {label}"
        else:
            branch = f"{op} {self.xs()}, {self.xs()}, {label}"
        skipped = f"xori {rd}, {rd}, {self.imm12()}"
        text = f"{branch}; {skipped}; {label}:"
        return text, [branch, skipped, f"{label}:"] + self.trace_x(slot, rd)

    def gen_jump(self, slot):
        rd = self.xd()
        label = self.local()
        if self.rng.random() < 0.5:
            lines = [f"jal {rd}, {label}", "xori a0, a0, 1", f"{label}:"]
        else:
            lines = [f"la tp, {label}", f"jalr {rd}, 0(tp)", "xori a0, a0, 1", f"{label}:"]
        return "; ".join(lines), lines + self.trace_x(slot, rd)

    def gen_amo(self, slot):
        width = self.rng.choice(["w", "d"])
        op = self.rng.choice(["amoswap", "amoadd", "amoxor", "amoand", "amoor", "amomin", "amomax",
                              "amominu", "amomaxu"])
        order = self.rng.choice(["", ".aq", ".rl", ".aqrl"])
        offset = self.offset(4 if width == "w" else 8)
        rd = self.xd()
        text = f"{op}.{width}{order} {rd}, {self.xs()}, ({offset}+s1)"
        lines = [f"addi tp, s1, {offset}", f"{op}.{width}{order} {rd}, {self.rng.choice(X_DEST + ['zero'])}, (tp)"]
        text = lines[1] + f"   # address s1+{offset}"
        return text, lines + [f"sd {rd}, {16 * slot}(s0)"] + self.trace_mem(slot, offset)

    def gen_lrsc(self, slot):
        width = self.rng.choice(["w", "d"])
        offset = self.offset(8)
        rd = self.rng.choice(X_DEST)
        rd2 = self.rng.choice([r for r in X_DEST if r != rd])
        src = self.rng.choice(X_DEST)
        lines = [f"addi tp, s1, {offset}", f"lr.{width} {rd}, (tp)", f"sc.{width} {rd2}, {src}, (tp)"]
        text = "; ".join(lines)
        return text, lines + [f"sd {rd}, {16 * slot}(s0)", f"sd {rd2}, {16 * slot + 8}(s0)"]

    def gen_fp_arith(self, slot):
        p = self.rng.choice(["s", "d"])
        op = self.rng.choice(["fadd", "fsub", "fmul", "fdiv", "fsqrt", "fmin", "fmax", "fsgnj", "fsgnjn",
                              "fsgnjx", "fmadd", "fmsub", "fnmsub", "fnmadd"])
        fd = self.fr()
        if op in ("fadd", "fsub", "fmul", "fdiv"):
            text = f"{op}.{p} {fd}, {self.fr()}, {self.fr()}, {self.rm()}"
        elif op == "fsqrt":
            text = f"{op}.{p} {fd}, {self.fr()}, {self.rm()}"
        elif op in ("fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx"):
            text = f"{op}.{p} {fd}, {self.fr()}, {self.fr()}"
        else:
            text = f"{op}.{p} {fd}, {self.fr()}, {self.fr()}, {self.fr()}, {self.rm()}"
        return text, [text, f"fsd {fd}, {16 * slot}(s0)"] + self.trace_flags(slot)

    def gen_fp_to_int(self, slot):
        p = self.rng.choice(["s", "d"])
        rd = self.xd()
        kind = self.rng.random()
        if kind < 0.35:
            op = self.rng.choice(["feq", "flt", "fle"])
            text = f"{op}.{p} {rd}, {self.fr()}, {self.fr()}"
        elif kind < 0.5:
            text = f"fclass.{p} {rd}, {self.fr()}"
        elif kind < 0.6:
            text = f"fmv.x.{'w' if p == 's' else 'd'} {rd}, {self.fr()}"
        else:
            op = self.rng.choice(["w", "wu", "l", "lu"])
            text = f"fcvt.{op}.{p} {rd}, {self.fr()}, {self.rm()}"
        return text, [text, f"sd {rd}, {16 * slot}(s0)"] + self.trace_flags(slot)

    def gen_int_to_fp(self, slot):
        p = self.rng.choice(["s", "d"])
        fd = self.fr()
        kind = self.rng.random()
        if kind < 0.2:
            text = f"fmv.{'w' if p == 's' else 'd'}.x {fd}, {self.xs()}"
        else:
            op = self.rng.choice(["w", "wu", "l", "lu"])
            exact = p == "d" and op in ("w", "wu")  # fcvt.d.w[u] is always exact: no rm operand
            text = f"fcvt.{p}.{op} {fd}, {self.xs()}" + ("" if exact else f", {self.rm()}")
        return text, [text, f"fsd {fd}, {16 * slot}(s0)"] + self.trace_flags(slot)

    def gen_fp_convert(self, slot):
        fd = self.fr()
        if self.rng.random() < 0.5:
            text = f"fcvt.s.d {fd}, {self.fr()}, {self.rm()}"
        else:
            text = f"fcvt.d.s {fd}, {self.fr()}"
        return text, [text, f"fsd {fd}, {16 * slot}(s0)"] + self.trace_flags(slot)

    def gen_back_branch(self, slot):
        """Branches once into the middle of earlier straight-line code, which runs again."""
        if slot == 0:
            return self.gen_int_imm(slot)
        target = self.rng.randrange(max(0, slot - 12), slot)
        label = self.local()
        text, lines = self.slots[target]
        self.slots[target] = (text, [f"{label}:"] + lines)
        scratch = self.rng.choice(X_DEST)
        lines = self.take_once(self.counter(), scratch, label)
        return f"back to slot {target} once (counter in {scratch})", lines + self.trace_x(slot, scratch)

    def gen_self_modifying(self, slot):
        """Runs an instruction, overwrites it with another (a store, fence.i) and runs it again."""
        rd = self.rng.choice(X_DEST)
        scratch = self.rng.choice([r for r in X_DEST if r != rd])
        first, second = self.rng.choice(list(PATCHABLE)), self.rng.choice(list(PATCHABLE))
        imm = self.imm12()
        opcode, funct3 = PATCHABLE[second]
        word = ((imm & 0xFFF) << 20) | (X_NUMBER[rd] << 15) | (funct3 << 12) | (X_NUMBER[rd] << 7) | opcode
        patched = self.local()
        lines = [".option push", ".option norvc", f"{patched}: {first} {rd}, {rd}, {self.imm12()}", ".option pop",
                 f"la tp, {patched}", f"li {scratch}, {word:#x}", f"sw {scratch}, 0(tp)", "fence.i"]
        lines += self.take_once(self.counter(), scratch, patched)
        return f"{first} {rd} rewritten to {second} {rd}, {rd}, {imm}, run twice", lines + self.trace_x(slot, rd)

    def gen_trap(self, slot):
        """One trapping instruction; the M handler records it and resumes after it (or at a label
        for a fetch fault). Traced: mtval << 8 ^ mcause ^ count << 60, and mepc."""
        rd = self.rng.choice(X_DEST)
        kind = self.rng.choice(["ecall", "ebreak", "illegal", "load", "store", "fetch"])
        resume = self.local()
        lines = ["la tp, mtrap", f"li {rd}, {TRAP_ANY}", f"sd {rd}, {MTRAP_CAUSE}(tp)", f"sd zero, {MTRAP_COUNT}(tp)"]
        if kind == "fetch":
            lines += [f"la {rd}, {resume}", f"sd {rd}, {MTRAP_RESUME}(tp)"]
        offset = self.rng.randrange(0, 2048, 8)
        trap = {"ecall": "ecall", "ebreak": "ebreak", "illegal": "csrw cycle, zero",
                "load": f"ld {self.rng.choice(X_DEST)}, {offset}(tp)", "store": f"sd {self.xs()}, {offset}(tp)",
                "fetch": f"jalr {self.rng.choice(X_DEST)}, {offset}(tp)"}[kind]
        if kind in ("load", "store", "fetch"):
            lines.append(f"lui tp, {HOLE >> 12:#x}")
        # ebreak's mtval is the pc on strata and 0 on QEMU 7.2 (both legal): not compared, and
        # cleared for later reads of mtval.
        tval = "zero" if kind == "ebreak" else rd
        lines += [trap, f"{resume}:"] + (["csrw mtval, zero"] if kind == "ebreak" else [])
        lines += ["la tp, mtrap", f"li {rd}, {TRAP_NONE}", f"sd {rd}, {MTRAP_CAUSE}(tp)",
                  f"sd zero, {MTRAP_RESUME}(tp)",
                  f"ld {rd}, {MTRAP_SEEN_TVAL}(tp)", f"slli {rd}, {tval}, 8", f"ld tp, {MTRAP_SEEN_CAUSE}(tp)",
                  f"xor {rd}, {rd}, tp", "la tp, mtrap", f"ld tp, {MTRAP_COUNT}(tp)", "slli tp, tp, 60",
                  f"xor {rd}, {rd}, tp", f"sd {rd}, {16 * slot}(s0)",
                  "la tp, mtrap", f"ld tp, {MTRAP_SEEN_EPC}(tp)", f"sd tp, {16 * slot + 8}(s0)"]
        return f"trap: {trap}", lines

    def gen_set_frm(self, slot):
        """Changes the dynamic rounding mode under the following FP instructions."""
        rd = self.xd()
        text = f"csrrwi {rd}, frm, {self.rng.randrange(5)}"
        return text, [text, f"sd {rd}, {16 * slot}(s0)", "csrr tp, frm", f"sd tp, {16 * slot + 8}(s0)"]

    # CSRs the runtime leaves alone (the trap handlers use mscratch/sscratch).
    # frm must stay a valid rounding mode (0-4) for later dynamic-rm
    # instructions: writes to frm/fcsr go through a mask, and csrrs on them may
    # only set fflags bits. mepc/sepc get even values: bit 0 always reads zero
    # in strata (as the ISA says) while QEMU 7.2 keeps it.
    CSR_NAMES = ["stval", "mtval", "sepc", "mepc", "fflags", "frm", "fcsr"]
    CSR_SAFE_MASK = {("frm", "csrrw"): 0x3, ("frm", "csrrs"): 0x0, ("fcsr", "csrrw"): 0x7f, ("fcsr", "csrrs"): 0x1f,
                     ("sepc", "csrrw"): -2, ("sepc", "csrrs"): -2, ("mepc", "csrrw"): -2, ("mepc", "csrrs"): -2}

    def gen_csr(self, slot):
        csr = self.rng.choice(self.CSR_NAMES)
        op = self.rng.choice(["csrrw", "csrrs", "csrrc"])
        rd = self.xd()
        mask = self.CSR_SAFE_MASK.get((csr, op))
        if self.rng.random() < 0.4:  # immediate form: a 5-bit unsigned value
            value = self.rng.randrange(32) if mask is None else self.rng.randrange(32) & mask
            lines = [f"{op}i {rd}, {csr}, {value}"]
        elif mask is None:
            lines = [f"{op} {rd}, {csr}, {self.xs()}"]
        else:
            lines = [f"andi tp, {self.xs()}, {mask}", f"{op} {rd}, {csr}, tp"]
        text = "; ".join(lines)
        # The old value goes to rd; the extra word is the CSR read back after the write.
        return text, lines + [f"sd {rd}, {16 * slot}(s0)", f"csrr tp, {csr}", f"sd tp, {16 * slot + 8}(s0)"]

    STRAIGHT = [  # (weight, method): no control flow
        (14, "gen_int_rr"), (10, "gen_int_imm"), (6, "gen_compressed"), (6, "gen_load"), (5, "gen_store"),
        (4, "gen_fp_mem"), (5, "gen_amo"), (2, "gen_lrsc"), (18, "gen_fp_arith"), (10, "gen_fp_to_int"),
        (8, "gen_int_to_fp"), (4, "gen_fp_convert"),
    ]
    FP = [(30, "gen_fp_arith"), (12, "gen_fp_to_int"), (8, "gen_int_to_fp"), (8, "gen_fp_convert"),
          (6, "gen_fp_mem"), (6, "gen_set_frm")]
    KINDS = {  # name: (weight among sequences, generators)
        "mixed": (4, STRAIGHT + [(4, "gen_branch"), (2, "gen_jump"), (3, "gen_csr"), (1, "gen_back_branch"),
                                 (1, "gen_self_modifying"), (1, "gen_trap"), (1, "gen_set_frm")]),
        "long_block": (2, STRAIGHT),
        "control": (2, [(10, "gen_int_rr"), (10, "gen_int_imm"), (6, "gen_compressed"), (4, "gen_load"),
                        (4, "gen_store"), (8, "gen_branch"), (4, "gen_jump"), (6, "gen_back_branch"),
                        (5, "gen_self_modifying")]),
        "traps": (2, STRAIGHT + [(15, "gen_trap")]),
        "fp": (2, FP),
    }

    def generate(self):
        generators = self.KINDS[self.kind][1]
        names = [name for _, name in generators]
        weights = [weight for weight, _ in generators]
        for slot in range(self.length):
            name = self.rng.choices(names, weights)[0]
            self.slots.append(getattr(self, name)(slot))

    # ---- initial state
    def int_value(self):
        if self.rng.random() < 0.4:
            return self.rng.choice(INT_SPECIAL)
        width = self.rng.choice([8, 16, 32, 64])
        value = self.rng.getrandbits(width)
        if self.rng.random() < 0.5 and width < 64:  # negative small values
            value = (-value) & 0xFFFFFFFFFFFFFFFF
        return value

    def fp_value(self):
        r = self.rng.random()
        if self.kind == "fp" and r < 0.3:
            return self.rng.choice(NAN_PAYLOADS)
        if r < 0.3:
            return self.rng.choice(DOUBLE_SPECIAL)
        if r < 0.6:
            return 0xFFFFFFFF00000000 | self.rng.choice(SINGLE_SPECIAL)
        if r < 0.75:  # small integers and halves as doubles
            import struct
            return struct.unpack("<Q", struct.pack("<d", self.rng.randint(-40, 40) / self.rng.choice([1, 2, 4, 3])))[0]
        if r < 0.85:  # random NaN-boxed single
            return 0xFFFFFFFF00000000 | self.rng.getrandbits(32)
        return self.rng.getrandbits(64)

    def prologue(self):
        lines = [f"# ---- sequence {self.index} ({self.kind})", f"la s0, trace", f"la s1, buffer_{self.index}"]
        for f in F_REGS:
            lines += [f"li t0, {self.fp_value():#x}", f"fmv.d.x {f}, t0"]
        for x in X_DEST:
            lines.append(f"li {x}, {self.int_value():#x}")
        lines.append("li tp, 0")
        lines += [f"csrwi frm, {self.rng.randrange(5)}", "csrwi fflags, 0"]
        return lines

    def buffer(self):
        words = [self.int_value() if self.rng.random() < 0.5 else self.fp_value() for _ in range(BUFFER_BYTES // 8)]
        return ([f"  .align 3", f"buffer_{self.index}:"] + [f"  .dword {w:#x}" for w in words] +
                [f"{label}: .word 1" for label in self.counters])


def generate_program(seed, sequences, length, only=None, dump=False):
    """Returns (assembly text, list of Sequence) for one program."""
    rng = random.Random(seed)
    seqs = []
    for index in range(sequences):
        seq = Sequence(random.Random(rng.getrandbits(64)), index, length)
        seq.generate()
        seqs.append(seq)
    chosen = [s for s in seqs if only is None or s.index == only]
    out = ["# Generated by tests/conformance/diff/gen.py: seed %d, %d sequences of %d instructions" %
           (seed, sequences, length),
           "  .option norelax", "  .text", "  .globl main", "main:",
           "  la t0, saved_ra", "  sd ra, 0(t0)"]
    for seq in chosen:
        out += ["  " + line for line in seq.prologue()]
        for slot, (text, lines) in enumerate(seq.slots):
            out.append(f"  # slot {slot}: {text}")
            out += ["  " + line for line in lines]
        out += [f"  li a0, {seq.index}", "  la a1, trace", f"  li a2, {2 * length}", f"  li a3, {1 if dump else 0}",
                "  call report_sequence"]
    out += ["  la t0, saved_ra", "  ld ra, 0(t0)", "  li a0, 0", "  ret", "", "  .data", "  .align 4",
            "saved_ra: .dword 0", "trace:", f"  .fill {2 * length}, 8, 0"]
    for seq in chosen:
        out += seq.buffer()
    return "\n".join(out) + "\n", seqs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--length", type=int, default=80)
    parser.add_argument("--only", type=int, help="emit only this sequence")
    parser.add_argument("--dump", action="store_true", help="print whole traces instead of digests")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    text, _ = generate_program(args.seed, args.sequences, args.length, args.only, args.dump)
    with open(args.output, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
