#!/usr/bin/env python3
"""Clones: snapshots the default guest (--mem, 256M by default), then starts
--clones `strata run --restore DIR --clone` processes at once and prints the
time from the first start until every clone answered a console command, and
the host memory they use together, --idle seconds after the last answer (a
restored guest's jit is still translating for a few seconds), against one
restored VM alone and one booted VM, each measured the same way. Targets: 20
clones of a 256 MiB guest within 2x the memory of one, all answering within 1 s.

Two ways to start the clones (--ways, both by default, one after the other):
- processes: each clone its own `strata run --restore DIR --clone` process;
- server: one clone server (`strata run --restore DIR --clone-server SOCKET`,
  started and warmed before the clock starts; it counts in the group's memory)
  forks every clone; this script asks for them itself over the server's
  protocol (src/vmm/clone_server.h), passing pipes as the clone's stdio, as
  the daemon would, rather than starting a `strata run --clone-server` client
  process per clone (--ways server-cli measures that too).

Host memory, three ways:
- memory cgroup: each group of VMs runs in its own memory cgroup and the
  figure is what it is charged (anonymous memory, page cache it brought in,
  including the kernel's read-around of the memory file, kernel memory); the
  snapshot's memory file is dropped from the page cache first, so its pages
  are charged to the group that reads them. Pages cached before (the strata
  binary and its libraries) are not charged. Needs root.
- Pss + page tables: per process, the sum of Pss from /proc/PID/smaps_rollup
  (a page shared by n processes counts 1/n in each, so the snapshot's page
  cache the clones share counts once, not 20 times as summed RSS would) plus
  its page tables (VmPTE, kernel memory no smaps figure has). Cached file
  pages count once mapped, and the kernel maps cached neighbours of a faulting
  page too (fault-around), so this moves with what the cache held at start.
- per clone, private: private dirty memory (anonymous pages only this process
  maps: for a clone forked by the server, not the pages it still shares with
  it copy-on-write) + page tables, and the part of it in the guest RAM mapping
  (pages the guest wrote since the restore, each copied out of the shared
  snapshot): what each further clone costs at least.
"""
import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest_bench import USERSPACE_UP, Guest, add_guest_arguments  # noqa: E402
from density_bench import MemoryCgroup  # noqa: E402
from restore_bench import answer, strata_snapshot  # noqa: E402

MIB = 1 << 20


def kib_field(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {name} in {path}")


def pss_and_page_tables(guests):
    """Bytes: the sum over the processes of Pss plus page tables."""
    return 1024 * sum(kib_field(f"/proc/{g.proc.pid}/smaps_rollup", "Pss")
                      + kib_field(f"/proc/{g.proc.pid}/status", "VmPTE") for g in guests)


def private_bytes(guest):
    """(private dirty memory + page tables, the part of it in the guest RAM mapping: pages the guest wrote) of a VM."""
    pid = guest.proc.pid
    anonymous = kib_field(f"/proc/{pid}/smaps_rollup", "Private_Dirty") + kib_field(f"/proc/{pid}/status", "VmPTE")
    guest_written, in_ram = 0, False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
                in_ram = fields[-1].endswith("/memory")
            elif in_ram and fields[0] == "Anonymous:":
                guest_written += int(fields[1])
    return 1024 * anonymous, 1024 * guest_written


class ServedProcess:
    """What Guest needs of a process, for a clone the server forked: its pid, its console's pipes, and
    its end as the server reports it on the request's connection."""

    def __init__(self, connection, pid, stdin, stdout):
        self.connection, self.pid, self.stdin, self.stdout = connection, pid, stdin, stdout
        self.returncode = None

    def _read_end(self):
        reply = self.connection.recv(1024).decode()
        self.returncode = int(reply.split()[1]) if reply.startswith("exited ") else -1

    def poll(self):
        if self.returncode is None and select.select([self.connection], [], [], 0)[0]:
            self._read_end()
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            if not select.select([self.connection], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired("clone", timeout)
            self._read_end()
        return self.returncode

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)


class ServedClone(Guest):
    """A clone requested from a clone server: `strata run` arguments, its stdin, stdout, stderr and working
    directory sent (SCM_RIGHTS) in one SOCK_SEQPACKET message."""

    def __init__(self, server_socket, snap):  # pylint: disable=super-init-not-called
        self.start = time.monotonic()
        to_guest, from_guest = os.pipe(), os.pipe()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        connection.connect(server_socket)
        args = ["--restore", snap, "--clone", "--clone-server", server_socket]
        payload = b"strata-clone 1\0" + b"".join(arg.encode() + b"\0" for arg in args)
        directory = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        socket.send_fds(connection, [payload], [to_guest[0], from_guest[1], from_guest[1], directory])
        for fd in (to_guest[0], from_guest[1], directory):
            os.close(fd)
        reply = connection.recv(1024).decode()
        if not reply.startswith("started "):
            raise RuntimeError(f"clone server: {reply}")
        self.proc = ServedProcess(connection, int(reply.split()[1]), os.fdopen(to_guest[1], "wb"),
                                  os.fdopen(from_guest[0], "rb"))
        self.output = b""


def drop_cached(path):
    """Evicts a file's clean pages from the page cache, so the next reader is charged for them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class Group:
    """VMs started together in one memory cgroup (when there is one), measured after idling."""

    def __init__(self, name, use_cgroup):
        self.cgroup = MemoryCgroup(f"strata-clone-{name}-{os.getpid()}", 16 << 30) if use_cgroup else None
        self.guests = []
        self.server = None  # a clone server, measured with the group

    def start(self, argv):
        self.guests.append(Guest(argv, preexec_fn=self.cgroup.enter if self.cgroup else None))
        return self.guests[-1]

    def start_server(self, argv):
        """Starts a clone server in the group's cgroup and waits until it serves; the seconds that took."""
        self.server = Guest(argv, preexec_fn=self.cgroup.enter if self.cgroup else None)
        return self.server.wait_for(b"clone server on", 120) - self.server.start

    def measure(self, idle):
        """(Pss + page tables, cgroup charge or None, each VM's private_bytes, the server's private_bytes or None),
        after `idle` seconds."""
        time.sleep(idle)
        everyone = self.guests + ([self.server] if self.server else [])
        return (pss_and_page_tables(everyone), self.cgroup.usage() if self.cgroup else None,
                [private_bytes(guest) for guest in self.guests], private_bytes(self.server) if self.server else None)

    def finish(self):
        for guest in self.guests:
            guest.finish()
        if self.server:
            self.server.proc.terminate()
            self.server.proc.wait(timeout=60)
        if self.cgroup:
            self.cgroup.remove()


def cgroup_available():
    try:
        MemoryCgroup(f"strata-clone-probe-{os.getpid()}", 1 << 30).remove()
        return True
    except OSError as error:
        print(f"memory cgroup figures skipped: {error} (needs root and a memory cgroup controller)")
        return False


def ratio_line(title, clones, alone, booted, count):
    return (f"  {title}: {count} clones {clones / MIB:.1f} MiB, one restored VM {alone / MIB:.1f} MiB "
            f"({clones / alone:.2f}x, target <= 2x), one booted VM {booted / MIB:.1f} MiB ({clones / booted:.2f}x); "
            f"each clone after the first adds {(clones - alone) / (count - 1) / MIB:.2f} MiB")


def start_clones(way, group, args, snap, server_socket):
    """Starts --clones clones the given way; returns the seconds until all answered, from the first start."""
    began = time.monotonic()
    for _ in range(args.clones):
        if way == "processes":
            group.start([args.strata, "run", "--restore", snap, "--clone"])
        elif way == "server-cli":
            group.start([args.strata, "run", "--restore", snap, "--clone", "--clone-server", server_socket])
        else:
            group.guests.append(ServedClone(server_socket, snap))
    for index, clone in enumerate(group.guests):
        answer(clone, 100 + index)
    return time.monotonic() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_guest_arguments(parser)
    parser.add_argument("--mem", default="256M")
    parser.add_argument("--clones", type=int, default=20)
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before the snapshot")
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds after answering, before measuring")
    parser.add_argument("--ways", nargs="+", default=["processes", "server"], choices=["processes", "server", "server-cli"])
    args = parser.parse_args()
    use_cgroup = cgroup_available()
    results = []
    with tempfile.TemporaryDirectory() as directory:
        booted = Group("booted", use_cgroup)
        guest = booted.start([args.strata, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--mem", args.mem])
        guest.wait_for(USERSPACE_UP, 300)
        answer(guest, 0)
        booted_memory = booted.measure(args.idle)
        booted.finish()

        snap, _ = strata_snapshot(args, args.mem, directory)
        memory_file = os.path.join(snap, "memory")
        drop_cached(memory_file)
        alone = Group("alone", use_cgroup)
        answer(alone.start([args.strata, "run", "--restore", snap]), 1)
        alone_memory = alone.measure(args.idle)
        alone.finish()

        for way in args.ways:
            drop_cached(memory_file)
            clones = Group("clones", use_cgroup)
            server_socket = os.path.join(directory, "clones.sock")
            warm_up = None
            if way != "processes":
                warm_up = clones.start_server([args.strata, "run", "--restore", snap, "--clone-server", server_socket])
            all_answered = start_clones(way, clones, args, snap, server_socket)
            load = os.getloadavg()[0]
            results.append((way, warm_up, all_answered, load, clones.measure(args.idle)))
            clones.finish()
    for way, warm_up, all_answered, load, clones_memory in results:
        server = f" (the server restored and warmed the snapshot in {warm_up * 1000:.0f} ms before)" if warm_up else ""
        print(f"{args.clones} clones of a {args.mem} guest, {way}: all answering {all_answered * 1000:.0f} ms after the "
              f"first start (target < 1000){server}; load average {load:.1f}; memory {args.idle:g} s after:")
        if use_cgroup:
            print(ratio_line("memory cgroup", clones_memory[1], alone_memory[1], booted_memory[1], args.clones))
        print(ratio_line("Pss + page tables", clones_memory[0], alone_memory[0], booted_memory[0], args.clones))
        private = clones_memory[2]
        print(f"  per clone, private (private dirty + page tables): mean {sum(p for p, _ in private) / len(private) / MIB:.2f} "
              f"MiB, max {max(p for p, _ in private) / MIB:.2f} MiB; of it guest RAM the guest wrote (copied on write): "
              f"mean {sum(w for _, w in private) / len(private) / MIB:.2f} MiB")
        if clones_memory[3]:
            print(f"  the clone server itself, private: {clones_memory[3][0] / MIB:.2f} MiB")


if __name__ == "__main__":
    main()
