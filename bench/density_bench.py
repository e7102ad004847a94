#!/usr/bin/env python3
"""VM density: the host memory each idle default guest costs, and how many of
them this host's available memory would hold, for strata without overcommit,
with free page reporting (`--balloon 0`), with KSM (`--mem-merge`), and for
qemu-system-riscv64 without and with virtio-balloon free page reporting.

Each configuration boots --guests guests at once (512 MiB each by default);
every guest touches --churn MiB (a tmpfs file written then deleted, as a
workload that has come and gone would), then idles; after --settle seconds the
cost of each guest is its VMM's Pss (/proc/PID/smaps_rollup: guest RAM plus the
VMM's own memory, shared pages split between the processes sharing them).
Every guest must still answer a console command at the end. KSM figures need
the host's KSM on (/sys/kernel/mm/ksm/run = 1); the script says when it is off.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import USERSPACE_UP, Guest, add_guest_arguments, qemu_command, strata_command  # noqa: E402


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def host_available_kib():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def measure(name, argv, args):
    guests = [Guest(argv) for _ in range(args.guests)]
    try:
        for guest in guests:
            guest.wait_for(USERSPACE_UP, args.timeout)
        for index, guest in enumerate(guests):
            guest.send(f"dd if=/dev/zero of=/tmp/churn bs=1M count={args.churn} 2>/dev/null; rm /tmp/churn; "
                       f"echo @@C$(({index}+0))@@")
        for index, guest in enumerate(guests):
            guest.wait_for(f"@@C{index}@@".encode(), args.timeout)
        time.sleep(args.settle)
        costs = [pss_kib(guest.proc.pid) for guest in guests]
        for index, guest in enumerate(guests):  # still alive and answering
            guest.send(f"echo @@A$(({index}+0))@@")
            guest.wait_for(f"@@A{index}@@".encode(), args.timeout)
    finally:
        for guest in guests:
            guest.finish()
    per_guest = sum(costs) / len(costs)
    print(f"measured {name}: {[c // 1024 for c in costs]} MiB", file=sys.stderr)
    return per_guest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="512M")
    parser.add_argument("--guests", type=int, default=2, help="guests booted at once per configuration")
    parser.add_argument("--churn", type=int, default=200, help="MiB each guest writes to tmpfs and deletes")
    parser.add_argument("--settle", type=float, default=20, help="seconds of idling before measuring")
    parser.add_argument("--only", default="", help="comma-separated configuration names to run")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    strata, qemu = strata_command(args), qemu_command(args)
    configurations = [
        ("strata", strata),
        ("strata-reporting", strata + ["--balloon", "0"]),
        ("strata-ksm", strata + ["--mem-merge"]),
        ("qemu", qemu),
        ("qemu-reporting", qemu + ["-device", "virtio-balloon-device,free-page-reporting=on"]),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        configurations = [c for c in configurations if c[0] in wanted]
    try:
        with open("/sys/kernel/mm/ksm/run") as run:
            if run.read().strip() != "1":
                print("note: host KSM is off (/sys/kernel/mm/ksm/run != 1): strata-ksm merges nothing", file=sys.stderr)
    except OSError:
        print("note: this host has no KSM", file=sys.stderr)

    available = host_available_kib()
    results = {name: measure(name, argv, args) for name, argv in configurations}
    baseline = results.get("strata")
    print(f"{'configuration':20} {'MiB per guest':>14} {'guests in ' + str(available // 1024) + ' MiB':>22} "
          f"{'vs strata':>10}")
    for name, cost in results.items():
        ratio = f"{baseline / cost:9.2f}x" if baseline else ""
        print(f"{name:20} {cost / 1024:14.1f} {int(available // cost):22d} {ratio:>10}")


if __name__ == "__main__":
    main()
