#!/usr/bin/env python3
"""Differential testing of strata's RISC-V CPU against QEMU.

  harness.py random   --seed N [--programs P --sequences S --length L] ...
      Generates P random programs from seed N (gen.py), runs each ELF on
      `strata run --bare` and on `qemu-system-riscv64 -M spike -bios none`,
      and compares the per-sequence digests. On a mismatch it rebuilds the
      differing sequence in dump mode, finds the first differing trace slot
      and prints the seed, program, sequence, slot, instruction and values.

  harness.py programs ELF[:QEMU_ELF]...
      Runs each ELF on both engines (QEMU runs QEMU_ELF when given: the same
      program built with REFERENCE_QEMU, expecting QEMU's behaviour where it
      legally differs from strata's); exit status and console output must agree.

Exit status 0 when everything agrees. The last line is "N passed, N failed".
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFORMANCE = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen  # noqa: E402

CROSS_FLAGS = ["-march=rv64gc", "-mabi=lp64d", "-mcmodel=medany", "-nostdlib", "-nostartfiles", "-static",
               "-fno-pie", "-no-pie", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-O2",
               "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments",
               "-T", os.path.join(CONFORMANCE, "common", "link.ld"), "-I", os.path.join(CONFORMANCE, "common")]
RUNTIME = [os.path.join(CONFORMANCE, "common", "crt.S"), os.path.join(CONFORMANCE, "common", "runtime.c"),
           os.path.join(HERE, "diffrt.c")]


def run_engine(command, timeout):
    start = time.monotonic()
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        status, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        status, out, err = "timeout", e.stdout or b"", e.stderr or b""
    text = out.decode("latin-1").replace("\r", "")
    return status, text, err.decode("latin-1"), time.monotonic() - start


class Engines:
    def __init__(self, args):
        self.args = args

    def strata(self, elf):
        return run_engine([self.args.strata, "run", "--bare", elf, "--cpus", str(harts_for(elf)),
                           "--engine", self.args.engine], self.args.timeout)

    def qemu(self, elf):
        return run_engine([self.args.qemu, "-M", "spike", "-bios", "none", "-nographic", "-smp",
                           str(harts_for(elf)), "-kernel", elf], self.args.timeout)


def harts_for(elf):
    """Programs under smp/ run on two harts, everything else on one."""
    return 2 if os.path.basename(os.path.dirname(elf)) == "smp" else 1


def build(args, source, elf):
    command = [args.cc] + CROSS_FLAGS + RUNTIME + [source, "-o", elf]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cross compile of {source} failed:\n{done.stderr}")


def digests(output):
    """Sequence index -> digest line from a digest-mode run."""
    result = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            result[int(parts[0])] = parts[1]
    return result


def dump_words(output):
    lines = output.splitlines()
    words = []
    started = False
    for line in lines:
        if line.endswith(":"):
            started = True
            continue
        if started and line.startswith("0x"):
            words.append(int(line, 16))
    return words


def explain_mismatch(args, engines, program_seed, program, sequence):
    """Rebuilds one sequence in dump mode and reports its first differing slot."""
    text, seqs = gen.generate_program(program_seed, args.sequences, args.length, only=sequence, dump=True)
    source = os.path.join(args.work_dir, f"seed{args.seed}_p{program}_s{sequence}_dump.S")
    elf = source[:-2] + ".elf"
    with open(source, "w") as f:
        f.write(text)
    build(args, source, elf)
    s_status, s_out, s_err, _ = engines.strata(elf)
    q_status, q_out, _, _ = engines.qemu(elf)
    s_words, q_words = dump_words(s_out), dump_words(q_out)
    seq = seqs[sequence]
    print(f"  reproduce: harness.py random --seed {args.seed} --programs {program + 1} "
          f"(program {program}, program seed {program_seed}, sequence {sequence}); source {source}")
    for slot in range(args.length):
        pair = slice(2 * slot, 2 * slot + 2)
        if s_words[pair] != q_words[pair]:
            description = seq.slots[slot][0]
            print(f"  first difference at slot {slot}: {description}")
            names = ("value", "extra (fflags / memory / sc result)")
            for name, s_word, q_word in zip(names, s_words[pair] or [None, None], q_words[pair] or [None, None]):
                mark = "" if s_word == q_word else "   <-- differs"
                s_text = "missing" if s_word is None else f"{s_word:#018x}"
                q_text = "missing" if q_word is None else f"{q_word:#018x}"
                print(f"    {name}: strata {s_text}  qemu {q_text}{mark}")
            start = max(0, slot - 3)
            print("  preceding instructions:")
            for earlier in range(start, slot):
                print(f"    slot {earlier}: {seq.slots[earlier][0]}")
            return
    print(f"  dump runs agree (strata status {s_status}, qemu status {q_status}); stderr: {s_err.strip()[:400]}")


def run_random(args, engines):
    passed = failed = 0
    os.makedirs(args.work_dir, exist_ok=True)
    for program in range(args.programs):
        program_seed = args.seed * 1000003 + program
        text, _ = gen.generate_program(program_seed, args.sequences, args.length)
        source = os.path.join(args.work_dir, f"seed{args.seed}_p{program}.S")
        elf = source[:-2] + ".elf"
        with open(source, "w") as f:
            f.write(text)
        build(args, source, elf)
        s_status, s_out, s_err, s_time = engines.strata(elf)
        q_status, q_out, q_err, q_time = engines.qemu(elf)
        s_digests, q_digests = digests(s_out), digests(q_out)
        if q_status != 0 or len(q_digests) != args.sequences:
            print(f"seed {args.seed} program {program}: QEMU itself did not finish cleanly "
                  f"(status {q_status}): {q_out[-300:]} {q_err[-300:]}")
            failed += args.sequences
            continue
        bad = [i for i in range(args.sequences) if s_digests.get(i) != q_digests.get(i)]
        passed += args.sequences - len(bad)
        failed += len(bad)
        print(f"seed {args.seed} program {program}: {args.sequences - len(bad)}/{args.sequences} sequences agree "
              f"(strata {s_time:.2f}s status {s_status}, qemu {q_time:.2f}s)")
        if s_status != 0:  # a crash or a failed check after agreeing digests is still a failure
            failed += 1
            print(f"FAIL strata status {s_status}: {s_out[-300:]} {s_err.strip()[-300:]}")
        for sequence in bad[: args.explain]:
            print(f"MISMATCH seed {args.seed} program {program} sequence {sequence}")
            explain_mismatch(args, engines, program_seed, program, sequence)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def run_programs(args, engines):
    passed = failed = 0
    for pair in args.elfs:
        elf, _, qemu_elf = pair.partition(":")
        s_status, s_out, s_err, _ = engines.strata(elf)
        q_status, q_out, q_err, _ = engines.qemu(qemu_elf or elf)
        name = os.path.relpath(elf, os.path.dirname(os.path.dirname(elf)))
        if s_status == q_status == 0 and s_out == q_out:
            passed += 1
            print(f"agree  {name}")
        else:
            failed += 1
            print(f"DIFFER {name}: strata status {s_status}, qemu status {q_status}")
            print(f"  strata: {s_out.strip()[-300:]} {s_err.strip()[-300:]}")
            print(f"  qemu:   {q_out.strip()[-300:]} {q_err.strip()[-300:]}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main():
    parser = argparse.ArgumentParser(description="strata vs QEMU differential testing")
    parser.add_argument("mode", choices=["random", "programs"])
    parser.add_argument("elfs", nargs="*", help="ELF programs, each ELF or ELF:QEMU_ELF (programs mode)")
    parser.add_argument("--strata", required=True)
    parser.add_argument("--engine", default="interp", help="strata's CPU engine (interp or jit)")
    parser.add_argument("--qemu", default="qemu-system-riscv64")
    parser.add_argument("--cc", default="riscv64-linux-gnu-gcc")
    parser.add_argument("--work-dir", default="/tmp/strata-diff")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--programs", type=int, default=10)
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--length", type=int, default=80)
    parser.add_argument("--explain", type=int, default=3, help="mismatching sequences to explain per program")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_intermixed_args()
    args.work_dir = os.path.abspath(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)
    engines = Engines(args)
    if args.mode == "random":
        return run_random(args, engines)
    return run_programs(args, engines)


if __name__ == "__main__":
    sys.exit(main())
