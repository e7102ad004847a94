#!/usr/bin/env python3
"""Small C programs (bench/cprogs/: CoreMark-style list/matrix/state-machine
work, an n-body floating-point kernel, large memcpy/memset, an LZ77
compression round trip) built static with Debian's riscv64 cross compiler and
run inside the default guest under `strata run` (once per CPU engine) and
under `qemu-system-riscv64` TCG, in one run; the same sources built for
x86-64 and run natively are the limit. The riscv64 binaries reach the guest on
a small read-only ext4 disk made for the run (the default guest build is
unchanged). Each program prints a checksum of its work, which must be the same
everywhere (-ffp-contract=off makes every target round alike), else the bench
fails.

Prints each time (seconds, median of --runs), the ratios QEMU/strata (above
1.00x: strata is faster) and strata/native (how far from the limit), and the
geometric mean of every ratio column; then the same table in CPU seconds
(user + system of the VMM, or of the native process), steadier than wall
time on a loaded machine. --scale multiplies every program's amount of work
(0.1 for a quick look); --baseline adds a second strata binary (e.g. main's
build) as base-ENGINE, so a change and main are measured in one run.
"""
import argparse
import resource
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import (ROOT, USERSPACE_UP, Guest, add_guest_arguments, geometric_mean,  # noqa: E402
                         qemu_command, run_timed, strata_contenders)

SOURCES = os.path.join(ROOT, "bench", "cprogs")
# (program, the work its argument sets at --scale 1: about half a second natively here)
PROGRAMS = [("coremark_like", 2000), ("nbody", 1000000), ("memops", 40), ("compress", 4)]
CFLAGS = ["-O2", "-static", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"]


def build(compiler, out_dir):
    for program, _ in PROGRAMS:
        subprocess.run([compiler, *CFLAGS, "-o", os.path.join(out_dir, program),
                        os.path.join(SOURCES, program + ".c"), "-lm"], check=True)


def make_disk(riscv_dir, image):
    """A read-only ext4 image holding the riscv64 programs (mke2fs -d, no root needed)."""
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", riscv_dir, image, "32M"], check=True,
                   stdout=subprocess.DEVNULL)


def work(program, default, scale):
    return max(1, round(default * scale))


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_native(native_dir, scale):
    """Wall and CPU seconds of each program (keys: program, (program, "cpu")) and what it printed."""
    times, outputs = {}, {}
    for program, default in PROGRAMS:
        began, cpu = time.monotonic(), children_cpu_seconds()
        done = subprocess.run([os.path.join(native_dir, program), str(work(program, default, scale))],
                              check=True, capture_output=True, text=True)
        times[program] = time.monotonic() - began
        times[(program, "cpu")] = children_cpu_seconds() - cpu
        outputs[program] = done.stdout.strip()
    return times, outputs


def run_in_guest(argv, expected, scale, timeout):
    guest = Guest(argv)
    guest.wait_for(USERSPACE_UP, timeout)
    run_timed(guest, 90, "mkdir -p /progs && mount -t ext4 -o ro /dev/vda /progs", timeout)
    times = {}
    for index, (program, default) in enumerate(PROGRAMS):
        cpu = guest.cpu_seconds()
        seconds, printed = run_timed(guest, 100 + index, f"/progs/{program} {work(program, default, scale)}",
                                     timeout)
        times[(program, "cpu")] = guest.cpu_seconds() - cpu
        if expected[program] not in printed:
            guest.proc.kill()
            raise RuntimeError(f"{program} printed {printed.strip()!r} in the guest, natively {expected[program]!r}")
        times[program] = seconds
    guest.finish()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="256M")
    parser.add_argument("--cpus", default="1")
    parser.add_argument("--runs", type=int, default=1, help="runs per contender; the median is reported")
    parser.add_argument("--engines", default="interp,jit", help="strata CPU engines to measure, comma-separated")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every program's work")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    for tool in ("riscv64-linux-gnu-gcc", "gcc", "mke2fs", "qemu-system-riscv64"):
        if not shutil.which(tool):
            sys.exit(f"cprog_bench: {tool} not found (scripts/setup.sh installs it)")

    with tempfile.TemporaryDirectory(prefix="strata-cprog-") as work_dir:
        native_dir, riscv_dir = os.path.join(work_dir, "x86-64"), os.path.join(work_dir, "riscv64")
        os.mkdir(native_dir)
        os.mkdir(riscv_dir)
        build("gcc", native_dir)
        build("riscv64-linux-gnu-gcc", riscv_dir)
        image = os.path.join(work_dir, "progs.img")
        make_disk(riscv_dir, image)
        disk_strata = ["--disk", image + ",readonly,format=raw"]
        disk_qemu = ["-drive", f"file={image},format=raw,if=none,id=progs,readonly=on",
                     "-device", "virtio-blk-device,drive=progs"]
        contenders = strata_contenders(args, disk_strata)
        contenders.append(("qemu", qemu_command(args) + disk_qemu))

        runs = {name: [] for name, _ in contenders}
        runs["native"] = []
        expected = None
        # Runs alternate between contenders so a change in the machine's load hits them alike.
        for _ in range(args.runs):
            native_times, outputs = run_native(native_dir, args.scale)
            expected = expected or outputs
            if outputs != expected:
                sys.exit(f"cprog_bench: native runs disagree: {outputs} vs {expected}")
            runs["native"].append(native_times)
            for name, argv in contenders:
                runs[name].append(run_in_guest(argv, expected, args.scale, args.timeout))
                print(f"measured {name} (run {len(runs[name])} of {args.runs})", file=sys.stderr)

    stratas = [name for name, _ in contenders[:-1]]
    columns = [name for name, _ in contenders] + ["native"]
    ratio_columns = [(f"qemu/{name}", "qemu", name) for name in stratas] + \
                    [(f"{name}/native", name, "native") for name in stratas] + [("qemu/native", "qemu", "native")]
    # Wall time first, then the CPU time (user + system) of the VMM or native process: steadier under load.
    for kind, key in (("s", lambda program: program), ("CPU s", lambda program: (program, "cpu"))):
        table = {name: {program: max(statistics.median(run[key(program)] for run in results), 0.01)
                        for program, _ in PROGRAMS} for name, results in runs.items()}
        print(f"{'program (' + kind + ')':16}" + "".join(f" {name:>13}" for name in columns) +
              "".join(f" {label:>20}" for label, _, _ in ratio_columns))
        ratios = {label: [] for label, _, _ in ratio_columns}
        for program, _ in PROGRAMS:
            row = f"{program:16}" + "".join(f" {table[name][program]:13.3f}" for name in columns)
            for label, top, bottom in ratio_columns:
                ratio = table[top][program] / table[bottom][program]
                ratios[label].append(ratio)
                row += f" {ratio:19.2f}x"
            print(row)
        print(f"{'geometric mean':16}" + "".join(f" {geometric_mean(table[name].values()):13.3f}" for name in columns) +
              "".join(f" {geometric_mean(ratios[label]):19.2f}x" for label, _, _ in ratio_columns))
    print("outputs: " + "; ".join(expected.values()))


if __name__ == "__main__":
    main()
