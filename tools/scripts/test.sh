#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh machine: installs what is
# missing, builds, and runs every test three ways:
#   1. the normal build: unit, tool and integration tests (ctest);
#   2. the sanitizer build (ASan + UBSan): the same tests again;
#   3. the decoder's fuzz target for CM_FUZZ_SECONDS (default 60) seconds.
# Build trees: build/ and build-asan/ under the repository (override with
# CM_BUILD_ROOT). Exit status is non-zero if any part fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${CM_BUILD_ROOT:-$root}
jobs=$(nproc 2>/dev/null || echo 2)

"$root/tools/scripts/setup.sh"

build() { # dir, extra cmake args...
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
}

status=0
echo "== build and test (normal build)"
build "$out/build"
(cd "$out/build" && ctest -j 2 --output-on-failure --timeout 900) || status=1

echo "== build and test (ASan + UBSan)"
build "$out/build-asan" -DCM_SANITIZE=ON
(cd "$out/build-asan" &&
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -j 2 --output-on-failure --timeout 900) || status=1

echo "== fuzz the decoder for ${CM_FUZZ_SECONDS:-60} s"
"$root/tests/fuzz/run-fuzz.sh" "${CM_FUZZ_SECONDS:-60}" "$out/build-fuzz" ||
  status=1

if [ $status -eq 0 ]; then
  echo "all test suites passed"
else
  echo "some tests FAILED" >&2
fi
exit $status
