#!/usr/bin/env bash
# Installs the Debian packages strata needs to build, test and build its
# default guest. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  cmake ninja-build g++ pkg-config
  libfdt-dev liburing-dev libcli11-dev libfmt-dev libisal-dev zlib1g-dev libgnutls28-dev
  nettle-dev  # its static archive: the daemon's token hashes and WebSocket keys (GnuTLS is in the TLS module)
  libxbyak-dev  # the CPU translator's x86-64 assembler (header-only)
  libcapstone-dev  # disassembles the translator's code for --engine-trace
  libcpp-httplib-dev nlohmann-json3-dev  # the per-VM control API: HTTP on a UNIX socket, JSON bodies
  libsqlite3-dev  # the management daemon's store (src/control)
  libzstd-dev  # live migration's page compression
  libssl-dev  # cpp-httplib is built with OpenSSL; base/http_module.cpp settles its start-up defaults
  curl openssl  # the daemon tests' real HTTP client (event stream, TLS) and their test certificate
  # tests and benchmarks: QEMU is the peer we measure against and test with, never a dependency
  libgtest-dev libgmock-dev libbenchmark-dev
  qemu-system-misc qemu-utils libnbd-bin e2fsprogs iproute2 iputils-ping hyperfine python3 opensbi qemu-user
  gnutls-bin  # certtool and psktool make the NBD TLS tests' keys
  openvswitch-common  # ovs-ofctl drives the switch's OpenFlow 1.3 listener in the integration tests
  node-xterm  # xterm.js for the daemon's web dashboard console (served from /usr/share/nodejs/xterm)
  chromium python3-websocket  # the dashboard's browser test: headless Chromium driven over the DevTools protocol
  gdb-multiarch  # attaches to `strata run --gdb` in the integration tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash guest/install-deps.sh
