#!/bin/bash
# Installs (as root) the Debian packages guest/build.sh needs, and makes the
# Debian source archive reachable for `apt-get source busybox`.
# Idempotent: adds a deb-src entry only if none exists, and runs apt-get update
# only when it added that entry, source indexes are missing, or a package is
# missing.
set -euo pipefail

PACKAGES=(
  linux-source-6.1
  gcc-riscv64-linux-gnu
  libc6-dev-riscv64-cross
  build-essential
  make
  bc
  flex
  bison
  libssl-dev
  libelf-dev
  cpio
  gzip
  xz-utils
  rsync
  e2fsprogs
  dpkg-dev
  ca-certificates
)

SRC_LIST=/etc/apt/sources.list.d/strata-deb-src.sources

log() { echo "install-deps: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: must run as root (try: sudo $0)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

has_deb_src() {
  # Any enabled deb-src entry, one-line or deb822 style.
  grep -rqsE '^[[:space:]]*deb-src[[:space:]]|^[[:space:]]*Types:.*\bdeb-src\b' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

# Emits deb-src counterparts of every enabled `deb` entry in the machine's
# apt sources (deb822 *.sources stanzas and one-line sources.list entries).
derive_deb_src() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f && $f != "$SRC_LIST" ]] || continue
    # Paragraph mode: a stanza is a block separated by blank lines. Drop
    # comments, keep the fields apt needs, rewrite Types to deb-src.
    awk -v RS= -v ORS='\n\n' '
      {
        n = split($0, lines, "\n"); out = ""; isdeb = 0; enabled = 1
        for (i = 1; i <= n; i++) {
          l = lines[i]
          if (l ~ /^[ \t]*#/) continue
          if (l ~ /^Types:/) { if (l ~ /[ \t]deb([ \t]|$)/) isdeb = 1; l = "Types: deb-src" }
          if (l ~ /^Enabled:[ \t]*no/) enabled = 0
          out = out l "\n"
        }
        if (isdeb && enabled) printf "%s\n", out
      }' "$f"
  done
  local legacy=()
  [[ -f /etc/apt/sources.list ]] && legacy+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list; do [[ -f $f ]] && legacy+=("$f"); done
  if ((${#legacy[@]})); then
    local lines
    lines=$(sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "${legacy[@]}")
    if [[ -n $lines ]]; then
      # One-line entries go into a .list file alongside.
      printf '%s\n' "$lines" > "${SRC_LIST%.sources}.list"
    fi
  fi
}

need_update=0

if has_deb_src; then
  log "deb-src entry already present"
else
  log "adding deb-src entries ($SRC_LIST)"
  content=$(derive_deb_src)
  if [[ -n $content ]]; then
    { echo "# Added by strata guest/install-deps.sh: source packages for the guest build."
      printf '%s\n' "$content"; } > "$SRC_LIST"
  fi
  if ! has_deb_src; then
    echo "install-deps: could not derive a deb-src entry from the apt sources" >&2
    exit 1
  fi
  need_update=1
fi

# Source indexes present? (deb-src may have been added without an update.)
if ! compgen -G '/var/lib/apt/lists/*_source_Sources*' >/dev/null; then
  need_update=1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
((${#missing[@]})) && need_update=1

if ((need_update)); then
  log "apt-get update"
  apt-get update -q
fi

if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "all packages already installed"
fi
log "done"
