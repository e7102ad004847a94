#!/usr/bin/env python3
"""Live migration over loopback TCP, strata against qemu-system-riscv64 (both at
their defaults), same kernel and initramfs. For each workload the source guest
prints a tick about every 10 ms ("idle": only that; "dirty": plus a loop
rewriting 32 MiB of page cache as fast as it can), is migrated to a
destination waiting on 127.0.0.1, and the bench reports the total migration
time (the VMM's own figure) and the downtime seen from the guest's side: the
longest gap between consecutive ticks arriving on the host, across the source's
console and then the destination's. Short runs: --runs 1 by default.
With --postcopy both switch over early and fetch the rest on fault: strata
`--postcopy`, QEMU the postcopy-ram capability (on both sides) and
migrate-start-postcopy right after migrate.
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
WORKLOADS = {"idle": [TICKER], "dirty": [DIRTIER, TICKER]}


class TickWatcher:
    """Reads a guest's console on a thread, noting when each tick line arrived."""

    def __init__(self, guest, ticks):
        self.guest, self.ticks = guest, ticks
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


def longest_gap_ms(ticks):
    numbers = sorted(ticks)
    gaps = [ticks[b] - ticks[a] for a, b in zip(numbers, numbers[1:]) if b == a + 1]
    return max(gaps) * 1000 if gaps else float("nan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_pair(source_argv, destination_argv, commands, settle):
    """Boots the source, starts the workload, starts the destination; both consoles' ticks go into one dict."""
    source = Guest(source_argv)
    source.wait_for(USERSPACE_UP, 180)
    source.send("stty -echo")
    for command in commands:
        source.send(command)
    destination = Guest(destination_argv)
    ticks = {}
    TickWatcher(source, ticks)
    TickWatcher(destination, ticks)
    time.sleep(settle)
    return source, destination, ticks


def migrate_strata(args, commands, directory):
    port, api = free_port(), os.path.join(directory, "api.sock")
    base = [args.strata, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--mem", args.mem]
    source, destination, ticks = start_pair(base + ["--api-socket", api], base + ["--incoming", f"tcp:127.0.0.1:{port}"],
                                            commands, args.settle)
    postcopy = ["--postcopy"] if args.postcopy else []
    result = subprocess.run([args.strata, "vm", "migrate", "--api-socket", api, "--to", f"tcp:127.0.0.1:{port}",
                             "--json"] + postcopy + args.strata_options.split(), capture_output=True, text=True,
                            check=True)
    progress = json.loads(result.stdout)
    time.sleep(args.settle)
    destination.finish()
    source.proc.wait(timeout=30)
    return progress["total_ms"], longest_gap_ms(ticks), progress["downtime_ms"]


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
    source, destination, ticks = start_pair(base + ["-qmp", f"unix:{source_qmp},server=on,wait=off"],
                                            base + ["-incoming", f"tcp:127.0.0.1:{port}",
                                                    "-qmp", f"unix:{destination_qmp},server=on,wait=off"],
                                            commands, args.settle)
    call = qmp(source_qmp)
    if args.postcopy:
        capability = [{"capability": "postcopy-ram", "state": True}]
        qmp(destination_qmp)("migrate-set-capabilities", capabilities=capability)
        call("migrate-set-capabilities", capabilities=capability)
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
    else:
        print(f"QEMU migration {status['status']}: {status.get('error-desc', '')}", file=sys.stderr)
    destination.proc.kill()
    source.proc.kill()
    if not completed:
        return float("nan"), float("nan"), float("nan")
    return status["total-time"], longest_gap_ms(ticks), status.get("downtime", float("nan"))


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
    args = parser.parse_args()
    print(f"{'workload':8} {'VMM':7} {'total ms':>9} {'guest gap ms':>13} {'VMM downtime ms':>16}")
    for workload in args.workloads.split(","):
        rows = {}
        for name, migrate in (("strata", migrate_strata), ("qemu", migrate_qemu)):
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as directory:
                    total, gap, downtime = migrate(args, WORKLOADS[workload], directory)
                rows.setdefault(name, []).append((total, gap))
                print(f"{workload:8} {name:7} {total:9.0f} {gap:13.0f} {downtime:16.0f}")
        best = {name: min(runs) for name, runs in rows.items()}
        print(f"{workload:8} strata/qemu: total {best['strata'][0] / best['qemu'][0]:.2f}x, "
              f"guest gap {best['strata'][1] / best['qemu'][1]:.2f}x (below 1: strata better)")


if __name__ == "__main__":
    main()
