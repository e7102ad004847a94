#!/usr/bin/env python3
"""VM density: how many idle default guests (512 MiB each) fit in a fixed amount
of host memory, for strata without overcommit, with free page reporting
(`--balloon 0`), with KSM (`--mem-merge`, the host's KSM turned on for that
run), with both, and for qemu-system-riscv64 with virtio-balloon free page
reporting.

Counting to hundreds of guests on a 2-core machine takes too long, so the guests
run in a memory cgroup limited to --limit (3 GiB by default, no swap), and the
count is scaled to --scale-to (24 GiB, this machine's size) in the report.
Guests are added one at a time: each boots, touches --churn MiB (a tmpfs file
written then deleted, as a workload that has come and gone would) and idles
--settle seconds; then every guest must answer a console command within
--answer-timeout. The count is the number of guests answering before the first
one that fails to (or the cgroup's OOM killer acts). The per-guest cost is the
cgroup's memory use over that count (guest RAM, the VMMs' own memory, and
their share of page cache).

Needs root (the cgroup; KSM's sysfs knobs, restored afterwards). cgroup v2
(memory.max, memory.swap.max = 0) or v1 (memory.limit_in_bytes and
memory.memsw.limit_in_bytes).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import USERSPACE_UP, Guest, add_guest_arguments, qemu_command, strata_command  # noqa: E402

KSM = "/sys/kernel/mm/ksm/"
MIB = 1 << 20


def read(path):
    with open(path) as f:
        return f.read().strip()


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


class MemoryCgroup:
    """A child of the memory cgroup this script runs in, limited to `limit` bytes with no swap."""

    def __init__(self, name, limit):
        v2 = v1 = None
        with open("/proc/self/cgroup") as cgroups:
            for line in cgroups:
                number, controllers, path = line.rstrip("\n").split(":", 2)
                if number == "0" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                    v2 = "/sys/fs/cgroup" + path
                if "memory" in controllers.split(","):
                    v1 = "/sys/fs/cgroup/memory" + path
        if v1:
            self.path, self.v2 = os.path.join(v1, name), False
        elif v2:
            self.path, self.v2 = os.path.join(v2, name), True
        else:
            raise RuntimeError("no memory cgroup controller found")
        if os.path.exists(self.path):
            os.rmdir(self.path)
        os.mkdir(self.path)
        if self.v2:
            write(self.file("memory.max"), limit)
            write(self.file("memory.swap.max"), 0)
        else:
            write(self.file("memory.limit_in_bytes"), limit)
            try:  # no swap either (where swap is accounted)
                write(self.file("memory.memsw.limit_in_bytes"), limit)
            except OSError:
                pass

    def file(self, name):
        return os.path.join(self.path, name)

    def enter(self):
        """For preexec_fn: puts the calling (child) process in the cgroup."""
        write(self.file("cgroup.procs"), os.getpid())

    def usage(self):
        return int(read(self.file("memory.current" if self.v2 else "memory.usage_in_bytes")))

    def oom_kills(self):
        text = read(self.file("memory.events" if self.v2 else "memory.oom_control"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.2)


class KsmOn:
    """Turns the host's KSM on with a faster scan for one run, and puts the old settings back."""

    SETTINGS = {"pages_to_scan": 1000, "sleep_millisecs": 20, "run": 1}

    def __enter__(self):
        self.saved = {name: read(KSM + name) for name in self.SETTINGS}
        for name, value in self.SETTINGS.items():
            write(KSM + name, value)
        return self

    def __exit__(self, *exc):
        for name in ("run", "pages_to_scan", "sleep_millisecs"):
            write(KSM + name, self.saved[name])


def answers(guest, marker, timeout):
    try:
        guest.send(f"echo @@{marker}$((0+0))@@")
        guest.wait_for(f"@@{marker}0@@".encode(), timeout)
        return True
    except (RuntimeError, BrokenPipeError):
        return False


def count(name, argv, args):
    """Adds guests until one fails; returns (guests that fit, bytes each, why it stopped)."""
    cgroup = MemoryCgroup(f"strata-density-{os.getpid()}", args.limit)
    guests, fitted, cost, why = [], 0, 0, f"reached --max-guests {args.max_guests}"
    try:
        while len(guests) < args.max_guests:
            kills = cgroup.oom_kills()
            guest = Guest(argv, preexec_fn=cgroup.enter)
            guests.append(guest)
            index = len(guests)
            try:
                guest.wait_for(USERSPACE_UP, args.timeout)
                guest.send(f"dd if=/dev/zero of=/tmp/churn bs=1M count={args.churn} 2>/dev/null; rm /tmp/churn; "
                           f"echo @@C$((0+{index}))@@")
                guest.wait_for(f"@@C{index}@@".encode(), args.timeout)
            except (RuntimeError, BrokenPipeError):
                why = f"guest {index} did not boot and churn"
                break
            time.sleep(args.settle)
            silent = [i + 1 for i, g in enumerate(guests) if not answers(g, f"A{index}x", args.answer_timeout)]
            if silent or cgroup.oom_kills() > kills:
                why = f"with {index} guests: guests {silent} silent, {cgroup.oom_kills() - kills} OOM kills"
                break
            fitted, cost = index, cgroup.usage() / index
            print(f"  {name}: {index} guests answer, cgroup {cgroup.usage() // MIB} MiB", file=sys.stderr)
    finally:
        for guest in guests:
            guest.finish()
        cgroup.remove()
    return fitted, cost, why


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="512M")
    parser.add_argument("--limit", type=lambda v: int(v) * MIB, default=3072 * MIB, help="cgroup limit, MiB")
    parser.add_argument("--scale-to", type=lambda v: int(v) * MIB, default=24576 * MIB,
                        help="host memory the count is scaled to, MiB")
    parser.add_argument("--max-guests", type=int, default=200)
    parser.add_argument("--churn", type=int, default=200, help="MiB each guest writes to tmpfs and deletes")
    parser.add_argument("--settle", type=float, default=10, help="seconds of idling after each guest's churn")
    parser.add_argument("--answer-timeout", type=float, default=60)
    parser.add_argument("--only", default="", help="comma-separated configuration names to run")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    strata, qemu = strata_command(args), qemu_command(args)
    configurations = [  # name, argv, whether the host's KSM is on for it
        ("strata", strata, False),
        ("strata-reporting", strata + ["--balloon", "0"], False),
        ("strata-ksm", strata + ["--mem-merge"], True),
        ("strata-reporting-ksm", strata + ["--balloon", "0", "--mem-merge"], True),
        ("qemu-reporting", qemu + ["-device", "virtio-balloon-device,free-page-reporting=on"], False),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        configurations = [c for c in configurations if c[0] in wanted]

    results = {}
    for name, argv, ksm in configurations:
        if ksm:
            with KsmOn():
                results[name] = count(name, argv, args)
        else:
            results[name] = count(name, argv, args)
        print(f"{name}: {results[name][0]} guests ({results[name][2]})", file=sys.stderr)

    scale = args.scale_to / args.limit
    print(f"guests of {args.mem} in a {args.limit // MIB} MiB cgroup, scaled x{scale:.1f} to "
          f"{args.scale_to // MIB} MiB")
    print(f"{'configuration':22} {'guests':>7} {'scaled':>7} {'MiB per guest':>14} {'vs strata':>10}")
    baseline = results.get("strata", (0,))[0]
    for name, (fitted, cost, _) in results.items():
        ratio = f"{fitted / baseline:9.2f}x" if baseline else ""
        print(f"{name:22} {fitted:7d} {int(fitted * scale):7d} {cost / MIB:14.1f} {ratio:>10}")


if __name__ == "__main__":
    main()
