#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds strata and the default
# guest, then runs every unit, integration and conformance test with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash guest/build.sh
cd build
ctest --output-on-failure -j2 --timeout 600
