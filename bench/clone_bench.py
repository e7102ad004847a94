#!/usr/bin/env python3
"""Clones: snapshots the default guest (--mem, 256M by default), then starts
--clones `strata run --restore DIR --clone` processes at once and prints the
time from the first start until every clone answered a console command, and
the host memory they use together (sum of Pss from /proc/PID/smaps_rollup: a
page shared by n processes counts 1/n in each) against one restored VM alone
and one booted VM. Targets: 20 clones of a 256 MiB guest within 2x the memory
of one, all answering within 1 s.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import USERSPACE_UP, Guest, add_guest_arguments  # noqa: E402
from restore_bench import answer, strata_snapshot  # noqa: E402


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="256M")
    parser.add_argument("--clones", type=int, default=20)
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before the snapshot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        booted = Guest([args.strata, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--mem", args.mem])
        booted.wait_for(USERSPACE_UP, 300)
        answer(booted, 0)
        booted_kib = pss_kib(booted.proc.pid)
        booted.finish()

        snap, _ = strata_snapshot(args, args.mem, directory)
        alone = Guest([args.strata, "run", "--restore", snap])
        answer(alone, 1)
        alone_kib = pss_kib(alone.proc.pid)
        alone.finish()

        began = time.monotonic()
        clones = [Guest([args.strata, "run", "--restore", snap, "--clone"]) for _ in range(args.clones)]
        for index, clone in enumerate(clones):
            answer(clone, 100 + index)
        all_answered = time.monotonic() - began
        clones_kib = sum(pss_kib(clone.proc.pid) for clone in clones)
        for clone in clones:
            clone.finish()
    print(f"{args.clones} clones of a {args.mem} guest: all answering {all_answered * 1000:.0f} ms after the first "
          f"start (target < 1000)")
    print(f"host memory (Pss): {args.clones} clones {clones_kib / 1024:.1f} MiB, one restored VM "
          f"{alone_kib / 1024:.1f} MiB ({clones_kib / alone_kib:.2f}x, target <= 2x), one booted VM "
          f"{booted_kib / 1024:.1f} MiB ({clones_kib / booted_kib:.2f}x)")


if __name__ == "__main__":
    main()
