#!/usr/bin/env bash
# The main job: installs what is needed, builds strata and the default guest,
# and boots it on this terminal. Ctrl-A x quits. Extra arguments go to `strata run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash guest/build.sh
exec build/strata run "$@"
