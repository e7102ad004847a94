#!/usr/bin/env python3
"""Boots the same kernel and initramfs in `strata run` (once per CPU engine,
`--engines interp,jit` by default) and in `qemu-system-riscv64 -M virt`, and
prints side by side, with each strata engine's time ratio to QEMU:
wall time from start to the first userspace line, the time of CPU-bound
workloads run inside the guest, and the VMM's resident memory beyond guest RAM;
then the VMM's CPU time (user + system) for the same phases, steadier than
wall time on a loaded machine, and the geometric means of both. --baseline
adds a second strata binary, so a change and main are measured in one run.

Both VMMs keep guest RAM in a memfd (shared memory), so "memory beyond guest
RAM" is the VMM's private resident memory (RssAnon + RssFile) for both.

With --compare sandbox it runs strata twice instead, with its sandbox on
(the default: seccomp, Landlock) and off, and prints on/off ratios: the
sandbox should cost the guest nothing (target: within 2%). Runs alternate
on/off so that a change in host load hits both alike.
"""
import argparse
import math
import os
import select
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USERSPACE_UP = b"strata-guest: userspace up"

WORKLOADS = [
    ("sha256 of 32 MiB", "head -c 33554432 /dev/zero | sha256sum"),
    ("awk floating-point loop", "awk 'BEGIN{s=0; for(i=1;i<=200000;i++) s+=sqrt(i)*1.5; print s}'"),
    ("shell loop (20k iterations)", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"),
]


class Guest:
    def __init__(self, argv, preexec_fn=None):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        self.output = b""

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                tail = self.output[-2000:].decode(errors="replace")
                raise RuntimeError(f"did not see {needle!r}; output tail:\n{tail}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if chunk:
                    self.output += chunk
        return time.monotonic()

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def cpu_seconds(self):
        """User + system CPU time of the VMM process so far (all its threads): steadier than
        wall time on a loaded machine."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def private_rss_kib(self):
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return int(fields["RssAnon"].split()[0]) + int(fields["RssFile"].split()[0])

    def finish(self):
        if self.proc.poll() is not None:
            return
        try:
            self.send("poweroff")
        except BrokenPipeError:  # it died before it read the line
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def add_guest_arguments(parser):
    """The options every guest bench takes: the default guest's kernel and initramfs, the strata binary."""
    parser.add_argument("--kernel", default=os.path.join(ROOT, "out/guest/Image"))
    parser.add_argument("--initrd", default=os.path.join(ROOT, "out/guest/initramfs.cpio.gz"))
    parser.add_argument("--strata", default=os.path.join(ROOT, "build/strata"))
    parser.add_argument("--baseline", help="another strata binary (e.g. main's build) measured as well, "
                                           "as contenders named base-ENGINE")


def strata_command(args):
    """`strata run` on the default guest (args: add_guest_arguments, --mem and maybe --cpus)."""
    return [args.strata, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--mem", args.mem,
            "--cpus", getattr(args, "cpus", "1"), "--append", "console=ttyS0"]


def qemu_command(args):
    """qemu-system-riscv64 on the same guest, RAM in a memfd as strata keeps it."""
    return ["qemu-system-riscv64", "-M", "virt", "-nographic", "-m", args.mem, "-smp", getattr(args, "cpus", "1"),
            "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0",
            "-object", f"memory-backend-memfd,id=ram,size={args.mem},share=on",
            "-machine", "memory-backend=ram"]


def run_timed(guest, marker, command, timeout):
    """Runs a shell command in the guest between two marker lines (the console's echo of
    the command line does not contain them); returns its seconds and what it printed."""
    guest.send(f"echo @@B$(({marker}+0))@@; {command}; echo @@E$(({marker}+0))@@")
    began = guest.wait_for(f"@@B{marker}@@".encode(), timeout)
    ended = guest.wait_for(f"@@E{marker}@@".encode(), timeout)
    printed = guest.output.split(f"@@B{marker}@@".encode(), 1)[1].split(f"@@E{marker}@@".encode(), 1)[0]
    return ended - began, printed.decode(errors="replace")


def strata_contenders(args, extra=()):
    """(name, argv) of each strata engine in --engines, and of --baseline's binary too if given."""
    binaries = [("strata", args.strata)] + ([("base", args.baseline)] if args.baseline else [])
    return [(f"{label}-{engine}", [binary] + strata_command(args)[1:] + ["--engine", engine] + list(extra))
            for label, binary in binaries for engine in args.engines.split(",")]


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def measure(argv, timeout):
    guest = Guest(argv)
    results = {"boot to userspace (s)": guest.wait_for(USERSPACE_UP, timeout) - guest.start}
    cpu = {"boot to userspace (CPU s)": guest.cpu_seconds()}
    for index, (name, command) in enumerate(WORKLOADS):
        before = guest.cpu_seconds()
        results[name + " (s)"], _ = run_timed(guest, 100 + index, command + " >/dev/null", timeout)
        cpu[name + " (CPU s)"] = guest.cpu_seconds() - before
    results["VMM memory beyond guest RAM (MiB)"] = guest.private_rss_kib() / 1024
    guest.finish()
    results.update(cpu)
    results["geometric mean of the four times (s)"] = geometric_mean(
        [results[key] for key in results if key.endswith(" (s)")])
    results["geometric mean of the four times (CPU s)"] = geometric_mean(
        [max(value, 0.01) for value in cpu.values()])
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="256M")
    parser.add_argument("--cpus", default="1")
    parser.add_argument("--runs", type=int, default=1, help="runs per VMM; the median is reported")
    parser.add_argument("--engines", default="interp,jit", help="strata CPU engines to measure, comma-separated")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--compare", choices=("qemu", "sandbox"), default="qemu",
                        help="qemu: strata against QEMU; sandbox: strata with its sandbox on against off")
    args = parser.parse_args()

    strata, qemu = strata_command(args), qemu_command(args)

    if args.compare == "sandbox":
        contenders = [("sandbox-on", strata), ("sandbox-off", strata + ["--seccomp", "off", "--landlock", "off"])]
    else:
        contenders = strata_contenders(args)
        contenders.append(("qemu", qemu))
    # Runs alternate between contenders so a change in the machine's load hits them alike.
    runs = {name: [] for name, _ in contenders}
    for _ in range(args.runs):
        for name, argv in contenders:
            runs[name].append(measure(argv, args.timeout))
            print(f"measured {name} (run {len(runs[name])} of {args.runs})", file=sys.stderr)
    table = {name: {key: statistics.median(run[key] for run in results) for key in results[0]}
             for name, results in runs.items()}

    # Ratios are each contender over the last one (QEMU, or the sandbox off): below 1.00x is faster (or smaller).
    reference = contenders[-1][0]
    others = [name for name, _ in contenders[:-1]]
    header = f"{'metric':42}" + "".join(f" {name:>13}" for name, _ in contenders)
    header += "".join(f" {name + '/' + reference:>26}" for name in others)
    print(header)
    for key in table[reference]:
        base = table[reference][key]
        row = f"{key:42}" + "".join(f" {table[name][key]:13.2f}" for name, _ in contenders)
        row += "".join(f" {(table[name][key] / base if base else float('inf')):25.3f}x" for name in others)
        print(row)


if __name__ == "__main__":
    main()
