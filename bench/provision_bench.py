#!/usr/bin/env python3
"""Provisioning through `strata daemon`: the time from the create request
(define a linked clone of a template + start) to the VM's first console line
and to its first userspace line, for one VM and for ten created in parallel
(target: ten within 2 s on this 2-core machine); then the same from the
template's snapshot (the VMs resume as clones instead of booting), timed to
the VM's answer to a command typed on its console; the API's latency
(p50/p99) for list and info under 50 concurrent clients; and the daemon's own memory.
With --density N: N idle VMs started through the daemon, booted and then resumed
from the template's snapshot, each VM process's proportional memory (PSS) once
they settle, and how many such VMs the host's memory would hold beside the daemon
(extrapolated from those N, not filled).

The template is the default guest's root disk; each VM boots the default
kernel straight from its clone (no initrd). No peer: QEMU has no daemon.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USERSPACE_UP = b"strata-guest: userspace up"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class Daemon:
    def __init__(self, strata, data_dir):
        self.socket = os.path.join(data_dir, "daemon.sock")
        self.log = open(data_dir + ".log", "w")
        self.proc = subprocess.Popen([strata, "daemon", "--data-dir", data_dir, "--socket", self.socket],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(data_dir, "admin.token")) or not os.path.exists(self.socket):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit(f"the daemon did not come up; see {data_dir}.log")
            time.sleep(0.05)
        with open(os.path.join(data_dir, "admin.token")) as token:
            self.token = token.read().strip()

    def call(self, method, path, body=None, connection=None):
        conn = connection or UnixConnection(self.socket)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        reply = conn.getresponse()
        data = json.loads(reply.read() or b"null")
        if connection is None:
            conn.close()
        return reply.status, data

    def memory_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        for vm in self.call("GET", "/vms")[1]:
            if vm["state"] != "stopped":
                self.call("POST", f"/vms/{vm['name']}/destroy")
        self.proc.terminate()
        self.proc.wait()


def wait_for_console(path, marker, deadline):
    """Seconds (monotonic) when the console file first holds marker, or None."""
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as console:
                if marker in console.read():
                    return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    return None


def provision(daemon, name, kernel, results):
    start = time.monotonic()
    status, vm = daemon.call("POST", "/vms", {"name": name, "template": "rootfs", "kernel": kernel,
                                              "append": "console=ttyS0 root=/dev/vda rw"})
    if status != 201:
        sys.exit(f"define {name}: HTTP {status}: {vm}")
    status, vm = daemon.call("POST", f"/vms/{name}/start")
    if status != 200:
        sys.exit(f"start {name}: HTTP {status}: {vm}")
    deadline = start + 120
    first_line = wait_for_console(vm["console"], b"\n", deadline)
    userspace = wait_for_console(vm["console"], USERSPACE_UP, deadline)
    results[name] = (first_line - start if first_line else None, userspace - start if userspace else None)


def console_answer(vm, deadline):
    """Seconds (monotonic) when the VM answers a command typed on its console socket, or None."""
    tty = os.path.join(os.path.dirname(vm["console"]), "tty.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as console:
        while True:  # the console socket may come up just after the API socket
            try:
                console.connect(tty)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.005)
        typed = 0
        while time.monotonic() < deadline:
            if time.monotonic() - typed > 0.5:  # the guest may not read its console yet
                console.sendall(b"echo up-$((6*7))\n")
                typed = time.monotonic()
            with open(vm["console"], "rb") as output:
                if b"up-42" in output.read():
                    return time.monotonic()
            time.sleep(0.005)
    return None


def provision_resumed(daemon, name, results):
    start = time.monotonic()
    status, vm = daemon.call("POST", "/vms", {"name": name, "template": "rootfs"})
    if status != 201:
        sys.exit(f"define {name}: HTTP {status}: {vm}")
    status, vm = daemon.call("POST", f"/vms/{name}/start")
    if status != 200:
        sys.exit(f"start {name}: HTTP {status}: {vm}")
    answered = console_answer(vm, start + 120)
    results[name] = (answered - start if answered else None,)


def provision_parallel(names, provision_one):
    """provision_one(name, results) for each name at once; (seconds, results)."""
    results = {}
    threads = [threading.Thread(target=provision_one, args=(name, results)) for name in names]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - start, results


def take_template_snapshot(daemon, kernel):
    begin = time.monotonic()
    status, started = daemon.call("POST", "/templates/rootfs/snapshot",
                                  {"kernel": kernel, "append": "console=ttyS0 root=/dev/vda rw"})
    if status != 202:
        sys.exit(f"template snapshot: HTTP {status}: {started}")
    while (operation := daemon.call("GET", "/operations/" + started["operation"]["id"])[1])["state"] == "running":
        time.sleep(0.05)
    if operation["state"] != "succeeded":
        sys.exit(f"template snapshot: {operation}")
    print(f"template snapshot taken in {time.monotonic() - begin:.3f} s (boot, shell answers, snapshot)")


def latency(daemon, path, clients, seconds):
    samples, lock = [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def client():
        conn = UnixConnection(daemon.socket)
        mine = []
        while time.monotonic() < stop_at:
            begin = time.perf_counter()
            status, _ = daemon.call("GET", path, connection=conn)
            mine.append(time.perf_counter() - begin)
            if status != 200:
                sys.exit(f"GET {path}: HTTP {status}")
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], len(samples) / seconds


def memory_field_kib(path, field):
    with open(path) as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def density(daemon, label, names, provision_one, settle):
    """Starts the VMs, lets them idle, then prints their memory and the host's extrapolated capacity."""
    _, results = provision_parallel(names, provision_one)
    came_up = [name for name in names if all(t is not None for t in results[name])]
    time.sleep(settle)
    pss, rss = [], []
    for vm in daemon.call("GET", "/vms")[1]:
        if vm["name"] in came_up and vm["state"] == "running":
            pss.append(memory_field_kib(f"/proc/{vm['pid']}/smaps_rollup", "Pss") / 1024)
            rss.append(memory_field_kib(f"/proc/{vm['pid']}/status", "VmRSS") / 1024)
    host_mib = memory_field_kib("/proc/meminfo", "MemTotal") / 1024
    daemon_mib = daemon.memory_kib() / 1024
    per_vm = statistics.mean(pss)
    print(f"density, {label}: {len(pss)}/{len(names)} idle VMs measured after {settle:.0f} s: PSS per VM mean "
          f"{per_vm:.1f} MiB (min {min(pss):.1f}, max {max(pss):.1f}), RSS mean {statistics.mean(rss):.1f} MiB; "
          f"daemon RSS {daemon_mib:.1f} MiB; host {host_mib / 1024:.1f} GiB holds ~{int((host_mib - daemon_mib) // per_vm)} "
          f"such VMs (extrapolated from PSS)")
    for name in names:
        daemon.call("POST", f"/vms/{name}/destroy")
        daemon.call("DELETE", f"/vms/{name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strata", default=os.path.join(ROOT, "build", "strata"))
    parser.add_argument("--guest", default=os.path.join(ROOT, "out", "guest"))
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5, help="duration of each latency run")
    parser.add_argument("--density", type=int, default=0, metavar="N",
                        help="also measure N idle VMs' memory, booted and resumed (0: skip)")
    parser.add_argument("--density-only", action="store_true", help="only the --density runs")
    parser.add_argument("--settle", type=float, default=10, help="seconds the density VMs idle before measuring")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="strata-provision-")
    daemon = Daemon(args.strata, data_dir)
    try:
        idle_kib = daemon.memory_kib()
        status, started = daemon.call("POST", "/templates", {"name": "rootfs",
                                                             "path": os.path.realpath(os.path.join(args.guest, "rootfs.ext4"))})
        if status != 202:
            sys.exit(f"template import: HTTP {status}: {started}")
        while daemon.call("GET", "/operations/" + started["operation"]["id"])[1]["state"] == "running":
            time.sleep(0.05)
        kernel = os.path.realpath(os.path.join(args.guest, "Image"))

        booted = lambda name, results: provision(daemon, name, kernel, results)
        resumed = lambda name, results: provision_resumed(daemon, name, results)
        if args.density:
            density(daemon, "booted", [f"d{i}" for i in range(args.density)], booted, args.settle)
        if args.density_only:
            take_template_snapshot(daemon, kernel)
            density(daemon, "resumed from the template snapshot", [f"e{i}" for i in range(args.density)], resumed,
                    args.settle)
            return
        _, one = provision_parallel(["one"], booted)
        print(f"one VM:    first console line {one['one'][0]:.3f} s, userspace up {one['one'][1]:.3f} s")
        daemon.call("POST", "/vms/one/destroy")
        names = [f"p{i}" for i in range(args.parallel)]
        _, many = provision_parallel(names, booted)
        firsts = [many[name][0] for name in names if many[name][0] is not None]
        ups = [many[name][1] for name in names if many[name][1] is not None]
        print(f"{args.parallel} VMs:    all first console lines {max(firsts):.3f} s "
              f"(median {statistics.median(firsts):.3f} s), all userspace up {max(ups):.3f} s "
              f"({len(ups)}/{args.parallel} came up)")
        print(f"daemon memory: {idle_kib / 1024:.1f} MiB idle, {daemon.memory_kib() / 1024:.1f} MiB with "
              f"{args.parallel} VMs")
        for path in ("/vms", "/vms/p0"):
            p50, p99, rate = latency(daemon, path, args.clients, args.seconds)
            print(f"GET {path:8} {args.clients} clients: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
                  f"{rate:.0f} requests/s")
        print(f"daemon memory after the latency runs: {daemon.memory_kib() / 1024:.1f} MiB")

        for vm in daemon.call("GET", "/vms")[1]:
            daemon.call("POST", f"/vms/{vm['name']}/destroy")
        take_template_snapshot(daemon, kernel)
        _, one = provision_parallel(["resumed"], resumed)
        print(f"one VM resumed:  console answers {one['resumed'][0]:.3f} s")
        names = [f"r{i}" for i in range(args.parallel)]
        _, many = provision_parallel(names, resumed)
        answers = [many[name][0] for name in names if many[name][0] is not None]
        print(f"{args.parallel} VMs resumed: all consoles answer {max(answers):.3f} s "
              f"(median {statistics.median(answers):.3f} s, {len(answers)}/{args.parallel} answered)")
        for name in names:
            daemon.call("POST", f"/vms/{name}/destroy")
        if args.density:
            density(daemon, "resumed from the template snapshot", [f"e{i}" for i in range(args.density)], resumed,
                    args.settle)
    finally:
        daemon.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
