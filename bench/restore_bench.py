#!/usr/bin/env python3
"""Snapshot and restore, strata against QEMU 7.2, same guest, for each --mem size.

strata: boots the default guest with --api-socket, snapshots it (`strata vm
snapshot`), stops it, then starts `strata run --restore DIR --stats` --runs
times; "strata-z" is the same with `strata vm snapshot --compress` (a zstd
memory file, which a restore inflates instead of mapping). QEMU: boots the same kernel and initramfs, saves it with `migrate
"exec:cat > FILE"` from its monitor (QEMU 7.2 has no file: URI), quits, then
starts `-incoming "exec:cat FILE"` --runs times.

Printed per VMM: snapshot size on disk (allocated bytes) and the time to take
it; process start (the VMM's exec, stamped by bench/exec_stamp.c, a static
launcher built here: Python's own spawn takes ~2 ms before it, shown as
"harness spawn") to vCPUs running (strata: the CLOCK_MONOTONIC stamp `--stats`
prints for the first restored hart; QEMU: its monitor first answering `info
status` with "running"); process start to the guest answering a console command
(strata: the command is sent at once and waits in the console pipe; QEMU: it
is sent once running, since input reaching the UART during the incoming
migration is overwritten). Medians, and the fastest run in brackets.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import ROOT, USERSPACE_UP, Guest, add_guest_arguments  # noqa: E402

RUNNING_STAMP = re.compile(rb"restore: vCPUs running at CLOCK_MONOTONIC (\d+) ns")
EXEC_STAMP = re.compile(rb"exec at CLOCK_MONOTONIC (\d+) ns")


def build_exec_stamp(directory):
    launcher = os.path.join(directory, "exec_stamp")
    subprocess.run(["gcc", "-O2", "-static", "-o", launcher, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                          "exec_stamp.c")], check=True)
    return launcher


def exec_start(guest):
    """When the VMM the launcher started was exec'd (CLOCK_MONOTONIC, s): the launcher's first line."""
    guest.wait_for(b" ns\n", 30)
    return int(EXEC_STAMP.search(guest.output).group(1)) / 1e9


def allocated_bytes(path):
    paths = [os.path.join(path, name) for name in os.listdir(path)] if os.path.isdir(path) else [path]
    return sum(os.stat(p).st_blocks * 512 for p in paths)


def answer(guest, run, timeout=60):
    guest.send(f"echo @@R$(({run}+1000))@@")
    return guest.wait_for(f"@@R{run + 1000}@@".encode(), timeout)


# ---- strata ------------------------------------------------------------------

def strata_snapshot(args, mem, directory, compress=False):
    sock = os.path.join(directory, "api.sock")
    snap = os.path.join(directory, "strata-snap-zst" if compress else "strata-snap")
    guest = Guest([args.strata, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--mem", mem,
                   "--api-socket", sock])
    guest.wait_for(USERSPACE_UP, 300)
    guest.send("stty -echo")
    time.sleep(args.settle)
    began = time.monotonic()
    subprocess.run([args.strata, "vm", "snapshot", "--api-socket", sock, snap] + (["--compress"] if compress else []),
                   check=True, stdout=subprocess.DEVNULL)
    taken = time.monotonic() - began
    subprocess.run([args.strata, "vm", "shutdown", "--api-socket", sock], check=True, stdout=subprocess.DEVNULL)
    guest.proc.wait(timeout=60)
    return snap, taken


def strata_restore(args, snap, run):
    guest = Guest([args.launcher, args.strata, "run", "--restore", snap, "--stats"])
    answered = answer(guest, run)
    started = exec_start(guest)
    guest.finish()
    guest.output += guest.proc.stdout.read()
    stamp = RUNNING_STAMP.search(guest.output)
    if not stamp:
        raise RuntimeError("no 'restore: vCPUs running' line from --stats")
    return int(stamp.group(1)) / 1e9 - started, answered - started, started - guest.start


# ---- QEMU ----------------------------------------------------------------------

class Monitor:
    """QEMU's human monitor on a UNIX socket."""

    def __init__(self, path, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)
        self.read_prompt()

    def read_prompt(self):
        data = b""
        while not data.endswith(b"(qemu) "):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    def command(self, line):
        self.sock.sendall(line.encode() + b"\n")
        return self.read_prompt()


def qemu_argv(args, mem, monitor):
    return ["qemu-system-riscv64", "-M", "virt", "-display", "none", "-serial", "stdio", "-m", mem,
            "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0",
            "-monitor", f"unix:{monitor},server=on,wait=off"]


def qemu_snapshot(args, mem, directory):
    monitor_path = os.path.join(directory, "qemu-save.mon")
    state = os.path.join(directory, "qemu-state")
    guest = Guest(qemu_argv(args, mem, monitor_path))
    guest.wait_for(USERSPACE_UP, 600)
    guest.send("stty -echo")
    time.sleep(args.settle)
    monitor = Monitor(monitor_path, 30)
    began = time.monotonic()
    monitor.command(f'migrate "exec:cat > {state}"')
    while "Migration status: completed" not in monitor.command("info migrate"):
        time.sleep(0.001)
    taken = time.monotonic() - began
    monitor.command("quit")
    guest.proc.wait(timeout=60)
    return state, taken


def qemu_restore(args, mem, state, directory, run):
    monitor_path = os.path.join(directory, f"qemu-{run}.mon")
    guest = Guest([args.launcher] + qemu_argv(args, mem, monitor_path) + ["-incoming", f"exec:cat {state}"])
    started = exec_start(guest)
    monitor = Monitor(monitor_path, 30)
    while "running" not in monitor.command("info status"):
        time.sleep(0.0005)
    running = time.monotonic()
    answered = answer(guest, run)
    monitor.command("quit")
    guest.proc.wait(timeout=60)
    return running - started, answered - started, started - guest.start


def summary(values):
    return f"{statistics.median(values) * 1000:9.1f} ({min(values) * 1000:.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", nargs="+", default=["256M", "2G"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before the snapshot")
    parser.add_argument("--no-qemu", action="store_true", help="strata only")
    args = parser.parse_args()
    print(f"{'mem':5} {'VMM':7} {'snapshot MiB':>12} {'snapshot ms':>11} {'start->running ms':>20} "
          f"{'start->answer ms':>20} {'harness spawn ms':>20}")
    for mem in args.mem:
        with tempfile.TemporaryDirectory() as directory:
            args.launcher = build_exec_stamp(directory)
            for name, compress in (("strata", False), ("strata-z", True)):
                snap, taken = strata_snapshot(args, mem, directory, compress)
                runs = [strata_restore(args, snap, run) for run in range(args.runs)]
                print(f"{mem:5} {name:7} {allocated_bytes(snap) / 2**20:12.1f} {taken * 1000:11.1f} "
                      f"{summary([r[0] for r in runs]):>20} {summary([r[1] for r in runs]):>20} "
                      f"{summary([r[2] for r in runs]):>20}", flush=True)
            if args.no_qemu:
                continue
            state, taken = qemu_snapshot(args, mem, directory)
            runs = [qemu_restore(args, mem, state, directory, run) for run in range(args.runs)]
            print(f"{mem:5} {'qemu':7} {allocated_bytes(state) / 2**20:12.1f} {taken * 1000:11.1f} "
                  f"{summary([r[0] for r in runs]):>20} {summary([r[1] for r in runs]):>20} "
                  f"{summary([r[2] for r in runs]):>20}", flush=True)


if __name__ == "__main__":
    main()
