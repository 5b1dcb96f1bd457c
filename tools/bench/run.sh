#!/usr/bin/env bash
# run.sh — the benchmark in one command (docs/performance.md):
#
#   ./tools/bench/run.sh [--events N] [--repeat R] [--variant mixed|insert|both]
#                        [--scaling] [--out FILE] [clinicmig-bench options...]
#
# Installs what is missing (tools/scripts/setup.sh: Debian's packages,
# Node.js and npm among them; kafkajs and pg into tools/bench/node with
# `npm ci`, from its package-lock.json), builds the build directory
# ($CM_BUILD_DIR, default build/) if it is not built or not current, and
# runs tools/bench/clinicmig-bench with the arguments given
# (`clinicmig-bench --help` lists them all). Its exit status is the
# benchmark's: 0 only if every result passed its check.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${CM_BUILD_DIR:-$root/build}

"$root/tools/scripts/setup.sh"
if [ ! -f "$here/node/node_modules/kafkajs/package.json" ] ||
  [ ! -f "$here/node/node_modules/pg/package.json" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
exec /usr/bin/python3 "$here/clinicmig-bench" --build "$build" "$@"
