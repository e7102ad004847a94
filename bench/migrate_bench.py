#!/usr/bin/env python3
"""Live migration over loopback TCP, strata against qemu-system-riscv64 (both at
their defaults), same kernel and initramfs. For each workload the source guest
prints a tick about every 10 ms ("idle": only that; "dirty": plus a loop
rewriting 32 MiB of page cache as fast as it can), is migrated to a
destination waiting on 127.0.0.1, and the bench reports the total migration
time (the VMM's own figure) and the downtime seen from the guest's side: the
longest gap between consecutive ticks arriving on the host, across the source's
console and then the destination's; the switch-over gap, between the source's
last tick and the destination's first (the downtime the move itself made: the
longest gap may lie elsewhere on a loaded host); the median gap (what the
host's load makes of the 10 ms tick anyway); and whether the guest lives on at
the destination: after the move it is asked to answer and to sleep a second
("yes", "timers stopped": it answers but its sleep never ends, as with QEMU 7.2,
or "no answer"). Short runs: --runs 1 by default.
--baseline BINARY measures a second strata build (e.g. main's) in the same run;
--breakdown prints where each strata switch-over's time went.
With --postcopy both switch over early and fetch the rest on fault: strata
`--postcopy`, QEMU the postcopy-ram capability (on both sides) and
migrate-start-postcopy right after migrate.

--with-disks: no shared storage. The source gets a raw disk holding
--disk-data MiB of random data (of --disk-size), the destination an empty one
of its own; workload "disk" rewrites 64 KiB blocks of it (each flushed) as fast
as it can. strata migrates with `--with-disks`, QEMU 7.2 with block migration
(`migrate` with "blk": true, which copies the disk and its dirty blocks).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import USERSPACE_UP, Guest, add_guest_arguments  # noqa: E402

TICKER = "(i=0; while :; do i=$((i+1)); echo T$i; usleep 10000; done) &"
DIRTIER = "(while :; do yes abcdefgh | head -c 33554432 > /tmp/blob; done) &"
DISK_WRITER = ("(i=0; while :; do dd if=/dev/urandom of=/dev/vda bs=64k count=1 seek=$((i % 256)) conv=notrunc,fsync "
               "2>/dev/null; i=$((i+1)); done) &")
WORKLOADS = {"idle": [TICKER], "dirty": [DIRTIER, TICKER], "disk": [DISK_WRITER, TICKER]}


class TickWatcher:
    """Reads a guest's console on a thread, noting when each tick line arrived (and, in `sides`, on which
    VMM's console)."""

    def __init__(self, guest, ticks, sides, side):
        self.guest, self.ticks, self.sides, self.side = guest, ticks, sides, side
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        pending = b""
        while True:
            chunk = os.read(self.guest.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            now = time.monotonic()
            self.guest.output += chunk
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                line = line.strip()
                if line.startswith(b"T") and line[1:].isdigit():
                    self.ticks[int(line[1:])] = now
                    self.sides[int(line[1:])] = self.side


def longest_gap(ticks):
    """(gap in ms, host time of the tick before it, of the tick after it)."""
    numbers = sorted(ticks)
    gaps = [(ticks[b] - ticks[a], ticks[a], ticks[b]) for a, b in zip(numbers, numbers[1:]) if b == a + 1]
    if not gaps:
        return float("nan"), float("nan"), float("nan")
    gap, before, after = max(gaps)
    return gap * 1000, before, after


def longest_gap_ms(ticks):
    return longest_gap(ticks)[0]


def switchover_gap_ms(ticks, sides):
    """The gap between the source's last tick and the destination's first: the downtime the move itself made,
    apart from the gaps the host's load makes elsewhere (which the longest gap may be). inf: the destination
    printed no tick before the run ended (--settle seconds after the move); nan: a tick went missing."""
    last_on_source = max((n for n, side in sides.items() if side == "source"), default=None)
    first_on_destination = min((n for n, side in sides.items() if side == "destination"), default=None)
    if last_on_source is not None and first_on_destination is None:
        return float("inf")
    if last_on_source is None or first_on_destination != last_on_source + 1:
        return float("nan")
    return (ticks[first_on_destination] - ticks[last_on_source]) * 1000


def median_gap_ms(ticks):
    """The host's load shows here: a guest ticking every 10 ms on a busy host ticks slower throughout."""
    numbers = sorted(ticks)
    gaps = sorted(ticks[b] - ticks[a] for a, b in zip(numbers, numbers[1:]) if b == a + 1)
    return gaps[len(gaps) // 2] * 1000 if gaps else float("nan")


def destination_alive(destination, timeout=5.0):
    """Asks the destination's guest to answer and then to sleep a second (the console's reader thread collects
    what it prints): "yes", "timers stopped" (it answers, its timer never fires) or "no answer"."""
    destination.send("echo ANSWER$((6*7)); sleep 1; echo SLEPT$((6*7))")
    deadline = time.monotonic() + timeout
    while b"SLEPT42" not in destination.output and time.monotonic() < deadline:
        time.sleep(0.05)
    if b"SLEPT42" in destination.output:
        return "yes"
    return "timers stopped" if b"ANSWER42" in destination.output else "no answer"


def print_breakdown(progress, destination_output, ticks):
    """--breakdown: each step of strata's switch-over in ms from the source's pause request, both sides and the
    guest's ticks on CLOCK_MONOTONIC (the destination's `--stats` lines, the source's "switchover" figures)."""
    switchover = progress.get("switchover")
    if not switchover:
        print("  (no switch-over figures)")
        return
    origin = switchover["pause_requested_ns"] / 1e6
    print(f"  {progress['iteration'] + 1} rounds, {progress['pages_sent']} pages sent, "
          f"auto-converge throttle at the end {progress['throttle_percent']}%")
    steps = [("source: vCPUs stopped", switchover["vcpus_stopped_ms"]),
             ("source: last dirty pages sent", switchover["pages_sent_ms"]),
             ("source: device state + end sent", switchover["state_sent_ms"]),
             ("source: confirmation received", switchover["confirmed_ms"])]
    for line in destination_output.decode(errors="replace").splitlines():
        for prefix in ("migration: ", "restore: "):
            if line.startswith(prefix) and " at CLOCK_MONOTONIC " in line:
                what, _, ns = line[len(prefix):].partition(" at CLOCK_MONOTONIC ")
                steps.append((f"destination: {what}", int(ns.split()[0]) / 1e6 - origin))
    times = sorted(tick * 1000 - origin for tick in ticks.values())
    before, after = [at for at in times if at < 0], [at for at in times if at >= 0]
    if before and after:
        steps += [("guest: last tick before the pause request", before[-1]),
                  ("guest: first tick after it", after[0])]
    for what, at in sorted(steps, key=lambda step: step[1]):
        print(f"  {at:8.1f} ms  {what}")
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    if gaps:
        print(f"  guest ticks: median gap {gaps[len(gaps) // 2]:.1f} ms, 90th percentile {gaps[len(gaps) * 9 // 10]:.1f} ms, "
              f"longest {gaps[-1]:.1f} ms")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=60):
    """Until a socket listens on loopback `port` (read from /proc/net/tcp: a test connection would be taken
    for the migration stream)."""
    needle = f"0100007F:{port:04X} 00000000:0000 0A"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as table:
            if needle in table.read():
                return
        time.sleep(0.05)


def start_pair(source_argv, destination_argv, commands, settle):
    """Boots the source, starts the workload, starts the destination; both consoles' ticks go into one dict."""
    source = Guest(source_argv)
    source.wait_for(USERSPACE_UP, 180)
    source.send("stty -echo")
    for command in commands:
        source.send(command)
    destination = Guest(destination_argv)
    ticks, sides = {}, {}
    TickWatcher(source, ticks, sides, "source")
    TickWatcher(destination, ticks, sides, "destination")
    time.sleep(settle)
    return source, destination, ticks, sides


def make_disks(args, directory):
    """With --with-disks: the source's raw disk (random data up front) and the destination's empty one."""
    if not args.with_disks:
        return None, None
    source, target = os.path.join(directory, "source.raw"), os.path.join(directory, "target.raw")
    for path in (source, target):
        with open(path, "wb") as disk:
            disk.truncate(args.disk_size << 20)
    with open(source, "r+b") as disk:
        for _ in range(args.disk_data):
            disk.write(os.urandom(1 << 20))
    return source, target


def migrate_strata(args, commands, directory, binary=None):
    binary = binary or args.strata
    port, api = free_port(), os.path.join(directory, "api.sock")
    base = [binary, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--mem", args.mem]
    source_disk, target_disk = make_disks(args, directory)
    source_extra = ["--disk", f"{source_disk},format=raw"] if source_disk else []
    target_extra = ["--disk", f"{target_disk},format=raw"] if target_disk else []
    stats = ["--stats"] if args.breakdown else []
    source, destination, ticks, sides = start_pair(base + ["--api-socket", api] + source_extra,
                                            base + ["--incoming", f"tcp:127.0.0.1:{port}"] + target_extra + stats,
                                            commands, args.settle)
    options = (["--postcopy"] if args.postcopy else []) + (["--with-disks"] if args.with_disks else [])
    wait_listening(port)
    result = subprocess.run([binary, "vm", "migrate", "--api-socket", api, "--to", f"tcp:127.0.0.1:{port}",
                             "--json"] + options + args.strata_options.split(), capture_output=True, text=True,
                            check=True)
    progress = json.loads(result.stdout)
    time.sleep(args.settle)
    alive = destination_alive(destination)
    destination.finish()
    source.proc.wait(timeout=30)
    if args.breakdown:
        destination.proc.wait(timeout=30)
        time.sleep(0.2)  # the console reader's last lines
        print_breakdown(progress, destination.output, ticks)
    return (progress["total_ms"], longest_gap_ms(ticks), switchover_gap_ms(ticks, sides), progress["downtime_ms"],
            median_gap_ms(ticks), alive)


def qmp(path):
    client = socket.socket(socket.AF_UNIX)
    for _ in range(100):
        try:
            client.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    stream = client.makefile("rw")
    stream.readline()  # greeting

    def call(command, **arguments):
        stream.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        stream.flush()
        while True:
            reply = json.loads(stream.readline())
            if "return" in reply or "error" in reply:
                return reply

    call("qmp_capabilities")
    return call


def migrate_qemu(args, commands, directory):
    port = free_port()
    base = ["qemu-system-riscv64", "-M", "virt", "-nographic", "-m", args.mem, "-kernel", args.kernel,
            "-initrd", args.initrd, "-append", "console=ttyS0"]
    source_qmp, destination_qmp = os.path.join(directory, "source.qmp"), os.path.join(directory, "destination.qmp")
    source_disk, target_disk = make_disks(args, directory)

    def disk(path):
        return ["-drive", f"file={path},format=raw,if=none,id=d0", "-device", "virtio-blk-device,drive=d0"] if path else []
    source, destination, ticks, sides = start_pair(base + ["-qmp", f"unix:{source_qmp},server=on,wait=off"] + disk(source_disk),
                                            base + ["-incoming", f"tcp:127.0.0.1:{port}",
                                                    "-qmp", f"unix:{destination_qmp},server=on,wait=off"] + disk(target_disk),
                                            commands, args.settle)
    call = qmp(source_qmp)
    wait_listening(port)  # a loaded host may take QEMU longer than the settle time to get there
    if args.postcopy:
        capability = [{"capability": "postcopy-ram", "state": True}]
        qmp(destination_qmp)("migrate-set-capabilities", capabilities=capability)
        call("migrate-set-capabilities", capabilities=capability)
    if args.with_disks:
        call("migrate", uri=f"tcp:127.0.0.1:{port}", blk=True)
    else:
        call("migrate", uri=f"tcp:127.0.0.1:{port}")
    if args.postcopy:
        call("migrate-start-postcopy")
    deadline = time.monotonic() + args.qemu_limit
    while True:
        status = call("query-migrate")["return"]
        if status.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:  # at its defaults QEMU may never converge on a busy guest
            status = {"status": "unfinished", "error-desc": f"not done after {args.qemu_limit} s"}
            break
        time.sleep(0.05)
    completed = status["status"] == "completed"
    if completed:
        time.sleep(args.settle)
        alive = destination_alive(destination)
    else:
        print(f"QEMU migration {status['status']}: {status.get('error-desc', '')}; destination said: "
              f"{destination.output[-300:].decode(errors='replace')}", file=sys.stderr)
    destination.proc.kill()
    source.proc.kill()
    if not completed:
        return float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), "not moved"
    return (status["total-time"], longest_gap_ms(ticks), switchover_gap_ms(ticks, sides),
            status.get("downtime", float("nan")), median_gap_ms(ticks), alive)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="256M")
    parser.add_argument("--workloads", default="idle,dirty")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of ticks before and after the move")
    parser.add_argument("--qemu-limit", type=float, default=60, help="seconds QEMU gets to finish a migration")
    parser.add_argument("--strata-options", default="", help="extra `strata vm migrate` options, e.g. '--compress'")
    parser.add_argument("--postcopy", action="store_true", help="post-copy on both (QEMU: postcopy-ram)")
    parser.add_argument("--with-disks", action="store_true", help="no shared storage: copy a disk along (see above)")
    parser.add_argument("--breakdown", action="store_true",
                        help="print where strata's switch-over time went (destination with --stats)")
    parser.add_argument("--vmms", default="strata,qemu", help="which of strata,qemu to run")
    parser.add_argument("--disk-size", type=int, default=1024, help="MiB, with --with-disks")
    parser.add_argument("--disk-data", type=int, default=256, help="MiB of random data on the source disk")
    args = parser.parse_args()
    print(f"{'workload':8} {'VMM':7} {'total ms':>9} {'guest gap ms':>13} {'switch-over gap ms':>19} "
          f"{'VMM downtime ms':>16} {'median tick gap ms':>19}  destination lives on")
    for workload in args.workloads.split(","):
        rows = {}
        contenders = [("strata", migrate_strata), ("qemu", migrate_qemu)]
        if args.baseline:  # --baseline BINARY: e.g. main's build, measured in the same run
            contenders.insert(1, ("base", lambda *a: migrate_strata(*a, binary=args.baseline)))
        for name, migrate in contenders:
            if name not in args.vmms.split(",") + ["base"]:
                continue
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as directory:
                    total, gap, switchover, downtime, median, alive = migrate(args, WORKLOADS[workload], directory)
                rows.setdefault(name, []).append((total, gap, switchover))
                print(f"{workload:8} {name:7} {total:9.0f} {gap:13.0f} {switchover:19.0f} {downtime:16.0f} {median:19.0f}  {alive}")
        best = {name: min(runs) for name, runs in rows.items()}
        if "base" in best:
            print(f"{workload:8} strata/base: total {best['strata'][0] / best['base'][0]:.2f}x, "
                  f"guest gap {best['strata'][1] / best['base'][1]:.2f}x, "
                  f"switch-over gap {best['strata'][2] / best['base'][2]:.2f}x")
        if "qemu" not in best or "strata" not in best:
            continue
        print(f"{workload:8} strata/qemu: total {best['strata'][0] / best['qemu'][0]:.2f}x, "
              f"guest gap {best['strata'][1] / best['qemu'][1]:.2f}x, "
              f"switch-over gap {best['strata'][2] / best['qemu'][2]:.2f}x (below 1: strata better)")


if __name__ == "__main__":
    main()
