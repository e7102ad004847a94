#!/usr/bin/env python3
"""Snapshot restore time: boots the default guest with --api-socket, snapshots
it (`strata vm snapshot`), stops it, then times `strata run --restore DIR`
from process start to the guest answering a console command, --runs times,
for each --mem size. Prints the median and the fastest run.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import ROOT, USERSPACE_UP, Guest  # noqa: E402


def snapshot(strata, mem, directory):
    socket = os.path.join(directory, "api.sock")
    guest = Guest([strata, "run", "--mem", mem, "--api-socket", socket])
    guest.wait_for(USERSPACE_UP, 120)
    guest.send("stty -echo")
    subprocess.run([strata, "vm", "snapshot", "--api-socket", socket, os.path.join(directory, "snap")],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([strata, "vm", "shutdown", "--api-socket", socket], check=True, stdout=subprocess.DEVNULL)
    guest.proc.wait(timeout=60)
    return os.path.join(directory, "snap")


def restore_seconds(strata, mem, snap, run):
    guest = Guest([strata, "run", "--mem", mem, "--restore", snap])
    guest.send(f"echo @@R$(({run}+1000))@@")
    answered = guest.wait_for(f"@@R{run + 1000}@@".encode(), 60)
    guest.finish()
    return answered - guest.start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strata", default=os.path.join(ROOT, "build/strata"))
    parser.add_argument("--mem", nargs="+", default=["256M", "2G"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for mem in args.mem:
        with tempfile.TemporaryDirectory() as directory:
            snap = snapshot(args.strata, mem, directory)
            times = [restore_seconds(args.strata, mem, snap, run) for run in range(args.runs)]
        print(f"{mem}: restore to console answer median {statistics.median(times) * 1000:.1f} ms, "
              f"fastest {min(times) * 1000:.1f} ms ({args.runs} runs)")


if __name__ == "__main__":
    main()
