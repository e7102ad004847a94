#!/usr/bin/env bash
# Configures and builds strata into build/ (pass extra CMake options as arguments,
# e.g. -DSTRATA_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
ninja -C build
