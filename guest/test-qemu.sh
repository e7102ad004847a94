#!/bin/bash
# Boots out/guest/ under QEMU's `virt` board (a reference peer, not strata)
# and checks the guest contract: first userspace line, piped shell commands,
# poweroff, virtio devices, switch_root onto rootfs.ext4 with persistent
# writes, direct disk boot without initramfs, and a visible kernel panic.
# Usage: guest/test-qemu.sh            (after guest/build.sh)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GUEST=$REPO_ROOT/out/guest
TIMEOUT=${TIMEOUT:-120}
WORK=$(mktemp -d /tmp/strata-guest-test.XXXXXX)
MARKER='strata-guest: userspace up'
FAILED=0
trap 'rm -rf "$WORK"' EXIT

for f in Image initramfs.cpio.gz rootfs.ext4; do
  [[ -e $GUEST/$f ]] || { echo "missing $GUEST/$f; run guest/build.sh" >&2; exit 1; }
done

pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; FAILED=1; }
expect() { # name log pattern (grep -E)
  if grep -qE -- "$3" "$2"; then pass "$1"; else fail "$1 (no /$3/ in $2)"; fi
}

# boot NAME INPUT QEMU-ARGS...: starts QEMU with the console on a fifo, waits
# for the first userspace line, then types INPUT. Sending input only once
# userspace is up matters: bytes that reach the UART before Linux opens the
# port are discarded by the 8250 driver's FIFO reset.
boot() {
  local name=$1 input=$2; shift 2
  local log=$WORK/$name.log fifo=$WORK/$name.in fd pid waited=0
  mkfifo "$fifo"
  timeout "$TIMEOUT" qemu-system-riscv64 -M virt -nographic -smp 2 -m 256M \
    -kernel "$GUEST/Image" "$@" <"$fifo" >"$log" 2>&1 &
  pid=$!
  exec {fd}>"$fifo"
  while ! grep -qF "$MARKER" "$log" && kill -0 "$pid" 2>/dev/null && ((waited < TIMEOUT * 10)); do
    sleep 0.1; waited=$((waited + 1))
  done
  printf '%b' "$input" >&"$fd"
  BOOT_RC=0
  wait "$pid" || BOOT_RC=$?
  exec {fd}>&-
  BOOT_LOG=$log
  cp "$log" "/tmp/strata-guest-test-$name.log"
}

first_userspace_line() { # the first line after "Run /init" that is not a kernel message
  awk '/Run [^ ]*init as init process/ { on = 1; next }
       on && !/^\[ *[0-9.]+\]/ { sub(/\r$/, ""); print; exit }' "$1"
}

echo "== initramfs boot, piped commands, virtio devices"
boot initramfs 'uname -a\ncat /proc/cpuinfo | grep -c processor\ncat /sys/class/misc/hw_random/rng_current\nip -o link show eth0\nsleep 2 & [ "$(cut -d" " -f5 /proc/$!/stat)" = "$!" ] && echo job-control-1; wait\npoweroff\n' \
  -initrd "$GUEST/initramfs.cpio.gz" -append console=ttyS0 \
  -device virtio-rng-device -netdev user,id=n0 -device virtio-net-device,netdev=n0 \
  -device virtio-serial-device -device virtconsole,chardev=c0 -chardev null,id=c0
[[ $BOOT_RC == 0 ]] && pass "powered off by itself" || fail "QEMU exit $BOOT_RC"
line=$(first_userspace_line "$BOOT_LOG")
[[ $line == "$MARKER" ]] && pass "first userspace line is '$MARKER'" || fail "first userspace line: '$line'"
expect "uname" "$BOOT_LOG" '^Linux strata 6\.1\.[0-9]+-strata .* riscv64'
expect "2 CPUs" "$BOOT_LOG" '^2'
expect "virtio-rng driver" "$BOOT_LOG" '^virtio_rng\.0'
expect "virtio-net eth0" "$BOOT_LOG" 'eth0: <BROADCAST,MULTICAST>'
expect "job control on" "$BOOT_LOG" '^job-control-1'
expect "SBI SRST poweroff" "$BOOT_LOG" 'reboot: Power down'
if grep -qE 'can.t access tty|job control turned off' "$BOOT_LOG"; then fail "shell has no job control"; fi

echo "== root disk via switch_root (root=/dev/vda)"
cp --sparse=always "$GUEST/rootfs.ext4" "$WORK/disk.ext4"
token=persist-$$-$RANDOM
boot switchroot "grep ' / ' /proc/mounts\necho $token > /root/persist.txt\ncat /root/persist.txt\npoweroff\n" \
  -initrd "$GUEST/initramfs.cpio.gz" -append "console=ttyS0 root=/dev/vda" \
  -drive file="$WORK/disk.ext4",format=raw,if=none,id=d0 -device virtio-blk-device,drive=d0
[[ $BOOT_RC == 0 ]] && pass "powered off by itself" || fail "QEMU exit $BOOT_RC"
expect "root is /dev/vda ext4 rw" "$BOOT_LOG" '^/dev/vda / ext4 rw'
[[ $(grep -cF "$MARKER" "$BOOT_LOG") == 1 ]] && pass "marker printed once" || fail "marker count != 1"
got=$(debugfs -R 'cat /root/persist.txt' "$WORK/disk.ext4" 2>/dev/null)
[[ $got == "$token" ]] && pass "write persisted (debugfs: $got)" || fail "persisted file: '$got'"
e2fsck -fn "$WORK/disk.ext4" >/dev/null 2>&1 && pass "disk clean after poweroff" || fail "e2fsck reports problems"

echo "== root disk without initramfs"
boot diskonly "grep ' / ' /proc/mounts\necho second > /root/second.txt\nreboot\n" \
  -append "console=ttyS0 root=/dev/vda" -no-reboot \
  -drive file="$WORK/disk.ext4",format=raw,if=none,id=d0 -device virtio-blk-device,drive=d0
[[ $BOOT_RC == 0 ]] && pass "reboot ended QEMU (-no-reboot)" || fail "QEMU exit $BOOT_RC"
line=$(first_userspace_line "$BOOT_LOG")
[[ $line == "$MARKER" ]] && pass "first userspace line is '$MARKER'" || fail "first userspace line: '$line'"
expect "root remounted rw" "$BOOT_LOG" '^/dev/root / ext4 rw'
expect "SBI SRST reboot" "$BOOT_LOG" 'reboot: Restarting system'
got=$(debugfs -R 'cat /root/second.txt' "$WORK/disk.ext4" 2>/dev/null)
[[ $got == second ]] && pass "write persisted" || fail "persisted file: '$got'"

echo "== kernel panic"
TIMEOUT=30 boot panic 'echo c > /proc/sysrq-trigger\n' -initrd "$GUEST/initramfs.cpio.gz" -append console=ttyS0
expect "panic visible" "$BOOT_LOG" 'Kernel panic - not syncing: sysrq triggered crash'

echo "== pvpanic-mmio driver present (QEMU's virt has no such device)"
symbols=$(riscv64-linux-gnu-nm "$GUEST/vmlinux")
if [[ $symbols == *pvpanic_mmio_driver_init* ]]; then pass "pvpanic_mmio in vmlinux"; else fail "pvpanic_mmio missing"; fi

echo "logs: /tmp/strata-guest-test-*.log"
if ((FAILED)); then echo "SOME CHECKS FAILED"; exit 1; fi
echo "all checks passed"
