#!/bin/bash
# Builds strata's default riscv64 guest from Debian's own source packages:
#   kernel Image/vmlinux (linux-source-6.1, allnoconfig + guest/kernel.config),
#   static busybox (Debian `busybox` source package),
#   initramfs.cpio.gz and rootfs.ext4 (busybox + guest/init).
# Results are cached under ${STRATA_CACHE:-$HOME/.cache/strata}/guest/<hash>/,
# keyed by a hash of every input; out/guest/ in the repo points at them.
# Usage: guest/build.sh [--rebuild] [-j N]      (deps: sudo guest/install-deps.sh)
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$GUEST_DIR")
CACHE_ROOT=${STRATA_CACHE:-$HOME/.cache/strata}/guest
OUT_DIR=$REPO_ROOT/out/guest
CROSS=riscv64-linux-gnu-
KERNEL_PKG=linux-source-6.1
KERNEL_TARBALL=/usr/src/linux-source-6.1.tar.xz
ROOTFS_SIZE=64M
# Fixed timestamp so identical inputs give identical images.
EPOCH=1700000000
# Approximate log lengths of a full build; only used for the progress percentage.
KERNEL_LOG_LINES=1520
BUSYBOX_LOG_LINES=720

JOBS=$(nproc)
REBUILD=0
while (($#)); do
  case $1 in
    --rebuild) REBUILD=1 ;;
    -j) JOBS=$2; shift ;;
    -j*) JOBS=${1#-j} ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

TTY=0; [[ -t 1 ]] && TTY=1
BUILD_START=$SECONDS

# Background job of run_logged; stopped if the build is interrupted.
CHILD_PID=
trap '[[ -z $CHILD_PID ]] || kill "$CHILD_PID" 2>/dev/null; exit 130' INT TERM

say() { echo "==> $*"; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# Runs a command with all output in $log, showing a percentage estimated from
# the log length. On failure prints the log tail and exits.
run_logged() {
  # expected: approximate final log line count, 0 if unknown.
  local label=$1 expected=$2 log=$3; shift 3
  local start=$SECONDS lines pct shown=-10 rc=0 base
  base=$(wc -l <"$log")
  "$@" >>"$log" 2>&1 &
  local pid=$!
  CHILD_PID=$pid
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.25
    if ((expected > 0)); then
      lines=$(($(wc -l <"$log") - base))
      pct=$((lines * 100 / expected)); ((pct > 99)) && pct=99
    else
      pct=-1  # unknown: elapsed time only
    fi
    if ((TTY)); then
      if ((pct >= 0)); then
        printf '\r    %-22s %3d%%  %s ' "$label" "$pct" "$(elapsed "$start")"
      else
        printf '\r    %-22s ...   %s ' "$label" "$(elapsed "$start")"
      fi
    elif ((pct >= shown + 10)); then
      shown=$((pct / 10 * 10))
      printf '    %-22s %3d%%  %s\n' "$label" "$shown" "$(elapsed "$start")"
    fi
  done
  wait "$pid" || rc=$?
  CHILD_PID=
  ((TTY)) && printf '\r'
  if ((rc != 0)); then
    printf '    %-22s FAILED (exit %d) after %s; last lines of %s:\n' "$label" "$rc" "$(elapsed "$start")" "$log"
    tail -n 40 "$log" | sed 's/^/    | /'
    exit 1
  fi
  printf '    %-22s done  %s\n' "$label" "$(elapsed "$start")"
}

sha() { sha256sum | cut -c1-16; }

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }

# ---------------------------------------------------------------- preflight
missing=()
for tool in ${CROSS}gcc ${CROSS}readelf make gcc bc flex bison xz gzip tar \
            mke2fs debugfs dpkg-source apt-get flock sha256sum perl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -r $KERNEL_TARBALL ]] || missing+=("$KERNEL_TARBALL")
[[ -e /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
[[ -e /usr/include/gelf.h ]] || missing+=(libelf-dev)
((${#missing[@]} == 0)) || die "missing: ${missing[*]}; run: sudo $GUEST_DIR/install-deps.sh"

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock -n 9 || { say "another guest build holds $CACHE_ROOT/.lock; waiting"; flock 9; }
# Leftovers of interrupted builds (results are only renamed into place when complete).
rm -rf "$CACHE_ROOT"/*.tmp "$CACHE_ROOT"/stages/*.tmp "$CACHE_ROOT"/src/*.tmp "$CACHE_ROOT"/src/*.dl

# Which busybox source version apt would fetch (highest in the deb-src index).
busybox_version() {
  local v best=
  if [[ -n ${BUSYBOX_VERSION:-} ]]; then echo "$BUSYBOX_VERSION"; return; fi
  for v in $(apt-cache showsrc busybox 2>/dev/null | awk '/^Package: busybox$/{p=1} /^Package:/&&!/busybox$/{p=0} p&&/^Version:/{print $2}'); do
    if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done
  if [[ -z $best ]]; then
    # Offline fallback: a source tree fetched by an earlier run.
    best=$(ls -d "$CACHE_ROOT"/src/busybox-*/.complete 2>/dev/null | sed -E 's|.*/busybox-(.*)/\.complete|\1|' | sort -V | tail -n1)
    best=${best//_/:}
  fi
  [[ -n $best ]] || die "no busybox source package known to apt (no deb-src entry?); run: sudo $GUEST_DIR/install-deps.sh"
  echo "$best"
}

# ---------------------------------------------------------------- kernel
# Every line of the fragment must survive merge + olddefconfig unchanged.
verify_kernel_config() {
  local config=$1 bad=() line sym
  while IFS= read -r line; do
    if [[ $line =~ ^CONFIG_[A-Za-z0-9_]+= ]]; then
      grep -qxF -- "$line" "$config" || bad+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$config" || echo absent))")
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set ]]; then
      sym=${BASH_REMATCH[1]}
      ! grep -qE "^$sym=" "$config" || bad+=("$line (got: $(grep -E "^$sym=" "$config"))")
    fi
  done <"$GUEST_DIR/kernel.config"
  if ((${#bad[@]})); then
    echo "build.sh: kernel config lost required settings:" >&2
    printf '    %s\n' "${bad[@]}" >&2
    return 1
  fi
}

build_kernel() {
  local t0=$SECONDS log=$LOG_DIR/kernel-$KERNEL_HASH.log
  local tree=$SRC_DIR/linux-source-6.1-$KERNEL_VERSION
  local tmp=$KERNEL_OUT.tmp obj=$KERNEL_OUT.tmp/obj
  say "kernel: building ($KERNEL_PKG $KERNEL_VERSION), log: $log"
  : >"$log"
  if [[ ! -e $tree/.complete ]]; then
    rm -rf "$tree" "$tree.tmp"; mkdir -p "$tree.tmp"
    run_logged "extract source" 0 "$log" tar -xf "$KERNEL_TARBALL" -C "$tree.tmp" --strip-components=1
    touch "$tree.tmp/.complete"; mv "$tree.tmp" "$tree"
  fi
  rm -rf "$tmp"; mkdir -p "$obj"
  local kmake=(make -C "$tree" O="$obj" ARCH=riscv CROSS_COMPILE=$CROSS
               KBUILD_BUILD_TIMESTAMP="@$EPOCH" KBUILD_BUILD_USER=strata KBUILD_BUILD_HOST=strata)
  run_logged "configure" 0 "$log" bash -c '
    set -e
    "$@" allnoconfig
    cd "'"$obj"'" && "'"$tree"'/scripts/kconfig/merge_config.sh" -m -O . .config "'"$GUEST_DIR"'/kernel.config"
    "$@" olddefconfig' _ "${kmake[@]}"
  verify_kernel_config "$obj/.config" || { echo "    (merge log: $log)" >&2; exit 1; }
  echo "    config verified: every setting in guest/kernel.config is in .config"
  run_logged "compile Image" $KERNEL_LOG_LINES "$log" "${kmake[@]}" -j"$JOBS" Image vmlinux
  [[ -x $obj/usr/gen_init_cpio ]] || run_logged "gen_init_cpio" 0 "$log" "${kmake[@]}" usr/gen_init_cpio
  cp "$obj/arch/riscv/boot/Image" "$obj/vmlinux" "$obj/usr/gen_init_cpio" "$tmp/"
  cp "$obj/.config" "$tmp/kernel.config.full"
  cp "$obj/include/config/kernel.release" "$tmp/kernel.release"
  rm -rf "$obj"
  mv "$tmp" "$KERNEL_OUT"
  say "kernel: done in $(elapsed $t0)"
}

# ---------------------------------------------------------------- busybox
fetch_busybox_source() {
  local dir=$SRC_DIR/busybox-${BUSYBOX_SRC_VERSION//:/_} log=$1
  if [[ ! -e $dir/.complete ]]; then
    rm -rf "$dir" "$dir.dl"; mkdir -p "$dir.dl"
    run_logged "apt-get source" 0 "$log" bash -c 'cd "$1" && apt-get source --download-only "busybox=$2"' _ "$dir.dl" "$BUSYBOX_SRC_VERSION"
    run_logged "unpack + patch" 0 "$log" bash -c 'cd "$1" && dpkg-source -x ./*.dsc src' _ "$dir.dl"
    mv "$dir.dl/src" "$dir"; rm -rf "$dir.dl"; touch "$dir/.complete"
  fi
  BUSYBOX_TREE=$dir
}

build_busybox() {
  local t0=$SECONDS log=$LOG_DIR/busybox-$BUSYBOX_HASH.log
  local tmp=$BUSYBOX_OUT.tmp obj=$BUSYBOX_OUT.tmp/obj
  say "busybox: building (source package busybox $BUSYBOX_SRC_VERSION), log: $log"
  : >"$log"
  fetch_busybox_source "$log"
  rm -rf "$tmp"; mkdir -p "$obj"
  # Fixed build date in the banner, as Debian's own busybox build does.
  local bmake=(env SOURCE_DATE_EPOCH=$EPOCH KCONFIG_NOTIMESTAMP=1
               make -C "$BUSYBOX_TREE" O="$obj" CROSS_COMPILE=$CROSS)
  run_logged "configure" 0 "$log" bash -c '
    set -e
    "$@" defconfig
    cd "'"$obj"'"
    sed -i -e "s/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/" .config
    yes "" | "$@" oldconfig' _ "${bmake[@]}"
  grep -qx CONFIG_STATIC=y "$obj/.config" || die "busybox: CONFIG_STATIC=y did not stick"
  run_logged "compile busybox" $BUSYBOX_LOG_LINES "$log" "${bmake[@]}" -j"$JOBS" busybox busybox.links
  local headers
  headers=$(${CROSS}readelf -l "$obj/busybox")
  [[ $headers != *INTERP* ]] || die "busybox: binary is dynamically linked"
  cp "$obj/busybox" "$obj/busybox.links" "$obj/.config" "$tmp/"
  mv "$tmp/.config" "$tmp/busybox.config"
  rm -rf "$obj"
  mv "$tmp" "$BUSYBOX_OUT"
  say "busybox: done in $(elapsed $t0)"
}

# ---------------------------------------------------------------- root tree, images
# The common userspace tree: busybox with its applet links, init, shutdown.
make_tree() {
  local tree=$1 link dir
  mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,mnt,run,var}
  install -m 0755 "$BUSYBOX_OUT/busybox" "$tree/bin/busybox"
  # busybox.links lists each applet's install path, e.g. /usr/bin/wc.
  while IFS= read -r link; do
    [[ $link == /bin/busybox || $link == /linuxrc || -z $link ]] && continue
    dir=$(dirname "$link")
    case $dir in
      /bin) ln -sf busybox "$tree$link" ;;
      /sbin) ln -sf ../bin/busybox "$tree$link" ;;
      /usr/bin) ln -sf ../../bin/busybox "$tree$link" ;;
      /usr/sbin) ln -sf ../../bin/busybox "$tree$link" ;;
      *) die "busybox: unexpected applet path $link" ;;
    esac
  done <"$BUSYBOX_OUT/busybox.links"
  rm -f "$tree/linuxrc"
  install -m 0755 "$GUEST_DIR/init" "$tree/init"
  ln -sf ../init "$tree/sbin/init"
  install -m 0755 "$GUEST_DIR/shutdown" "$tree/sbin/strata-shutdown"
  for link in poweroff reboot halt; do
    rm -f "$tree/sbin/$link" "$tree/bin/$link" "$tree/usr/sbin/$link" "$tree/usr/bin/$link"
    ln -s strata-shutdown "$tree/sbin/$link"
  done
  chmod 0700 "$tree/root"; chmod 1777 "$tree/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tree/etc/passwd"
  printf 'root:x:0:\n' >"$tree/etc/group"
  printf 'strata\n' >"$tree/etc/hostname"
  find "$tree" -exec touch -h -d "@$EPOCH" {} +
}

# gen_init_cpio list: everything owned by root, plus /dev/console, which the
# kernel opens for /init before anything could mount devtmpfs.
cpio_list() {
  local tree=$1 type rel mode target
  (cd "$tree" && find . -mindepth 1 -printf '%y %m %P %l\n' | LC_ALL=C sort -k3,3) |
  while read -r type mode rel target; do
    case $type in
      l) echo "slink /$rel $target 777 0 0" ;;
      d) echo "dir /$rel $mode 0 0" ;;
      f) echo "file /$rel $tree/$rel $mode 0 0" ;;
      *) die "initramfs: unsupported file type '$type' for /$rel" ;;
    esac
  done
  echo "nod /dev/console 0600 0 0 c 5 1"  # after `dir /dev`
}

build_images() {
  local t0=$SECONDS tmp=$GUEST_OUT.tmp log=$LOG_DIR/images-$GUEST_HASH.log
  say "images: initramfs + rootfs, log: $log"
  : >"$log"
  rm -rf "$tmp"; mkdir -p "$tmp"
  make_tree "$tmp/tree"

  # initramfs = tree + marker telling init it runs from the initramfs.
  cp -a "$tmp/tree" "$tmp/initramfs-tree"
  : >"$tmp/initramfs-tree/.strata-initramfs"
  touch -d "@$EPOCH" "$tmp/initramfs-tree/.strata-initramfs" "$tmp/initramfs-tree"
  cpio_list "$tmp/initramfs-tree" >"$tmp/initramfs.list"
  run_logged "initramfs.cpio.gz" 0 "$log" bash -c \
    '"$1" -t '"$EPOCH"' "$2" | gzip -9 -n >"$3"' _ "$KERNEL_OUT/gen_init_cpio" "$tmp/initramfs.list" "$tmp/initramfs.cpio.gz"

  # rootfs: same tree; /dev stays empty (the kernel or init mounts devtmpfs).
  run_logged "rootfs.ext4" 0 "$log" env E2FSPROGS_FAKE_TIME=$EPOCH \
    mke2fs -q -F -t ext4 -L strata-root -U 5a7a0000-0000-4000-8000-00000000f00d -E root_owner=0:0,hash_seed=5a7a0000-0000-4000-8000-000000000000 \
    -d "$tmp/tree" "$tmp/rootfs.ext4" $ROOTFS_SIZE
  # mke2fs -d keeps the builder's uid/gid; a non-root build must hand the
  # files to root inside the image.
  if [[ $(id -u) != 0 ]]; then
    (cd "$tmp/tree" && find . -mindepth 1) | sed 's|^\.||' | while IFS= read -r p; do
      printf 'sif "%s" uid 0\nsif "%s" gid 0\n' "$p" "$p"
    done >"$tmp/chown.debugfs"
    run_logged "rootfs ownership" 0 "$log" debugfs -w -f "$tmp/chown.debugfs" "$tmp/rootfs.ext4"
  fi
  run_logged "rootfs fsck" 0 "$log" e2fsck -fn "$tmp/rootfs.ext4"
  chmod 0444 "$tmp/rootfs.ext4"

  cp "$KERNEL_OUT/Image" "$KERNEL_OUT/vmlinux" "$KERNEL_OUT/kernel.config.full" "$tmp/"
  cp "$BUSYBOX_OUT/busybox.config" "$tmp/"
  {
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $KERNEL_PKG $KERNEL_VERSION ($(cat "$KERNEL_OUT/kernel.release" 2>/dev/null || true))"
    echo "busybox: source package busybox $BUSYBOX_SRC_VERSION, static"
    echo "toolchain: $TOOLCHAIN_ID"
    echo "kernel stage: $KERNEL_OUT"
    echo "busybox stage: $BUSYBOX_OUT"
    echo "cmdline: console=ttyS0 [root=/dev/vda]"
  } >"$tmp/build-info.txt"
  rm -rf "$tmp/tree" "$tmp/initramfs-tree"
  rm -rf "$GUEST_OUT"; mv "$tmp" "$GUEST_OUT"
  say "images: done in $(elapsed $t0)"
}

# ---------------------------------------------------------------- input hashes
KERNEL_VERSION=$(pkg_version $KERNEL_PKG)
BUSYBOX_SRC_VERSION=$(busybox_version)
TOOLCHAIN_ID="$(${CROSS}gcc --version | head -n1) gcc=$(pkg_version gcc-12-riscv64-linux-gnu) binutils=$(pkg_version binutils-riscv64-linux-gnu) libc=$(pkg_version libc6-dev-riscv64-cross)"
SCRIPT_SUM=$(sha <"${BASH_SOURCE[0]}")

# Kernel and busybox are cached per stage, keyed by their own inputs and the
# text of their recipe functions, so editing the image recipe or init does not
# recompile them. The final <hash> covers everything, build.sh included.
KERNEL_HASH=$( { printf '%s\n' "$KERNEL_VERSION" "$TOOLCHAIN_ID" "$CROSS" "$EPOCH"
                 cat "$GUEST_DIR/kernel.config"; declare -f build_kernel verify_kernel_config; } | sha)
BUSYBOX_HASH=$( { printf '%s\n' "$BUSYBOX_SRC_VERSION" "$TOOLCHAIN_ID" "$CROSS"
                  declare -f build_busybox fetch_busybox_source; } | sha)
GUEST_HASH=$(printf '%s\n' "$KERNEL_HASH" "$BUSYBOX_HASH" "$SCRIPT_SUM" "$ROOTFS_SIZE" \
               "$(cat "$GUEST_DIR/init" "$GUEST_DIR/shutdown" | sha)" | sha)

KERNEL_OUT=$CACHE_ROOT/stages/kernel-$KERNEL_HASH
BUSYBOX_OUT=$CACHE_ROOT/stages/busybox-$BUSYBOX_HASH
GUEST_OUT=$CACHE_ROOT/$GUEST_HASH
SRC_DIR=$CACHE_ROOT/src
LOG_DIR=$CACHE_ROOT/logs
mkdir -p "$SRC_DIR" "$LOG_DIR" "$CACHE_ROOT/stages"

say "strata guest build (kernel $KERNEL_PKG $KERNEL_VERSION, busybox $BUSYBOX_SRC_VERSION, -j$JOBS)"
say "cache: $GUEST_OUT"
if ((REBUILD)); then
  rm -rf "$KERNEL_OUT" "$BUSYBOX_OUT" "$GUEST_OUT"
fi

# ---------------------------------------------------------------- main
if [[ -e $KERNEL_OUT/Image ]]; then say "kernel: cached ($KERNEL_OUT)"; else build_kernel; fi
if [[ -e $BUSYBOX_OUT/busybox ]]; then say "busybox: cached ($BUSYBOX_OUT)"; else build_busybox; fi
if [[ -e $GUEST_OUT/rootfs.ext4 ]]; then say "images: cached"; else build_images; fi

# out/guest: symlinks into the cache; rootfs.ext4 is a writable copy so the
# guest can modify it without touching the cached image.
rm -rf "$OUT_DIR"; mkdir -p "$OUT_DIR"
for f in Image vmlinux initramfs.cpio.gz build-info.txt; do
  ln -s "$GUEST_OUT/$f" "$OUT_DIR/$f"
done
cp --sparse=always "$GUEST_OUT/rootfs.ext4" "$OUT_DIR/rootfs.ext4"
chmod 0644 "$OUT_DIR/rootfs.ext4"

say "guest ready in $(elapsed $BUILD_START):"
for f in Image initramfs.cpio.gz rootfs.ext4 vmlinux; do
  printf '    %-40s %s\n' "$OUT_DIR/$f" "$(du -hL --apparent-size "$OUT_DIR/$f" | cut -f1)"
done
echo "    boot: -kernel Image -initrd initramfs.cpio.gz -append 'console=ttyS0'  (add root=/dev/vda with rootfs.ext4 on virtio-blk)"
