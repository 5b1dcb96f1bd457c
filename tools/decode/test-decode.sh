#!/bin/sh
# test-decode.sh — runs clinicmig-decode on a kcat -J fixture and compares
# its output, line by line, with the expected output.
#
# Usage: test-decode.sh TOOL INPUT EXPECTED [TOOL OPTION...]
set -eu

if [ $# -lt 3 ]; then
  echo "usage: $0 TOOL INPUT EXPECTED [TOOL OPTION...]" >&2
  exit 2
fi
tool=$1
input=$2
expected=$3
shift 3
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$tool" --help | grep -q 'kcat -C -J -e -b BROKER -t clinicmig.dlq'
"$tool" "$@" <"$input" >"$out"
if ! diff -u "$expected" "$out"; then
  echo "clinicmig-decode output differs from $expected" >&2
  exit 1
fi
# an unreadable standard input is exit status 1
if "$tool" <&- >/dev/null 2>&1; then
  echo "clinicmig-decode: exit 0 with standard input closed" >&2
  exit 1
fi
echo "ok: $(wc -l <"$expected") lines as expected"
