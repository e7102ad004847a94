#!/usr/bin/env python3
"""VM-to-VM TCP throughput: two strata guests on a `strata switch` against two
`qemu-system-riscv64 -M virt` guests joined by QEMU's own socket networking
(`-netdev socket,listen=` / `connect=`), same kernel and initramfs. In each
pair the sender pipes --mib MiB of zeros into busybox `nc`, the receiver's `nc`
discards them; the time between the sender's console markers around the
transfer gives MiB/s. Prints both and strata's ratio to QEMU (above 1.00x is
faster). Runs alternate strata/QEMU; the median of --runs is reported.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from guest_bench import USERSPACE_UP, Guest, add_guest_arguments, strata_command

SENDER_IP, RECEIVER_IP = "10.99.0.1", "10.99.0.2"
PORT = 5001


def setup_network(guest, ip):
    guest.send(f"ip link set eth0 up; ip addr add {ip}/24 dev eth0")


def transfer(sender, receiver, mib, timeout):
    """Returns the sender's wall time for pushing mib MiB through TCP to the receiver."""
    # </dev/null: nc would otherwise read the console (and our later lines) as data to send.
    receiver.send(f"nc -l -p {PORT} </dev/null > /dev/null; echo @@DONE$((1+0))@@")
    sender.send(f"until ping -c 1 -w 2 {RECEIVER_IP} >/dev/null 2>&1; do :; done; echo @@UP$((1+0))@@")
    sender.wait_for(b"@@UP1@@", timeout)
    time.sleep(1)  # the receiver's nc is listening by now: its shell took the line before the ping loop ended
    sender.send(f"echo @@B$((1+0))@@; dd if=/dev/zero bs=65536 count={mib * 16} 2>/dev/null | nc {RECEIVER_IP} {PORT};"
                f" echo @@E$((1+0))@@")
    began = sender.wait_for(b"@@B1@@", timeout)
    ended = sender.wait_for(b"@@E1@@", timeout)
    receiver.wait_for(b"@@DONE1@@", timeout)
    return ended - began


def run_pair(argv_receiver, argv_sender, mib, timeout):
    receiver = Guest(argv_receiver)
    try:
        receiver.wait_for(USERSPACE_UP, timeout)
        sender = Guest(argv_sender)
        try:
            sender.wait_for(USERSPACE_UP, timeout)
            setup_network(receiver, RECEIVER_IP)
            setup_network(sender, SENDER_IP)
            return mib / transfer(sender, receiver, mib, timeout)
        finally:
            sender.finish()
    finally:
        receiver.finish()


def measure_strata(args, base):
    run_dir = tempfile.mkdtemp(prefix="strata-net-bench-")
    env = dict(os.environ, STRATA_RUN_DIR=run_dir)
    name = f"bench{os.getpid()}"
    switch = subprocess.Popen([args.strata, "switch", name], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    try:
        control = os.path.join(run_dir, f"switch-{name}.ctl")
        for _ in range(100):
            if os.path.exists(control):
                break
            time.sleep(0.1)
        os.environ["STRATA_RUN_DIR"] = run_dir  # the guests find the switch through it
        vm = lambda mac: base + ["--net", f"switch={name},mac={mac}"]
        return run_pair(vm("52:54:00:99:00:02"), vm("52:54:00:99:00:01"), args.mib, args.timeout)
    finally:
        switch.terminate()
        switch.wait(timeout=30)
        shutil.rmtree(run_dir, ignore_errors=True)


def measure_qemu(args, base):
    port = 20000 + os.getpid() % 20000
    nic = lambda mode, mac: ["-netdev", f"socket,id=n0,{mode}=127.0.0.1:{port}",
                             "-device", f"virtio-net-device,netdev=n0,mac={mac}"]
    # The listening side starts first (its Guest boots while the connecting one is started).
    return run_pair(base + nic("listen", "52:54:00:99:01:02"), base + nic("connect", "52:54:00:99:01:01"),
                    args.mib, args.timeout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--engine", default="jit", help="strata CPU engine")
    parser.add_argument("--mem", default="256M")
    parser.add_argument("--mib", type=int, default=64, help="MiB sent per transfer")
    parser.add_argument("--runs", type=int, default=1, help="runs per VMM; the median is reported")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    strata = strata_command(args) + ["--engine", args.engine]
    qemu = ["qemu-system-riscv64", "-M", "virt", "-nographic", "-m", args.mem, "-kernel", args.kernel,
            "-initrd", args.initrd, "-append", "console=ttyS0"]
    results = {"strata": [], "qemu": []}
    for run in range(args.runs):
        results["strata"].append(measure_strata(args, strata))
        results["qemu"].append(measure_qemu(args, qemu))
        print(f"run {run + 1}: strata {results['strata'][-1]:.1f} MiB/s, qemu {results['qemu'][-1]:.1f} MiB/s",
              file=sys.stderr)
    strata_rate, qemu_rate = statistics.median(results["strata"]), statistics.median(results["qemu"])
    print(f"{'VM-to-VM TCP, ' + str(args.mib) + ' MiB':32} {'strata':>10} {'qemu':>10} {'strata/qemu':>12}")
    print(f"{'throughput (MiB/s)':32} {strata_rate:10.1f} {qemu_rate:10.1f} {strata_rate / qemu_rate:11.2f}x")


if __name__ == "__main__":
    main()
