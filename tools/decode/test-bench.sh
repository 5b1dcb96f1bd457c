#!/bin/sh
# test-bench.sh BENCH DATA_DIR — clinicmig-decode-bench on the JSON and the
# Avro form of the same changes: it must read every message, decode them
# all without a dead letter, and report a positive rate.
set -eu
bench=$1
data=$2
for f in json avro; do
  out=$("$bench" --seconds 0.2 --schema-dir "$data/schemas" \
    "$data/changes.$f.jsonl")
  echo "$out"
  msgs=$(wc -l <"$data/changes.$f.jsonl")
  echo "$out" | grep -q "\"messages\":$msgs," ||
    { echo "FAIL: $f: expected $msgs messages" >&2; exit 1; }
  echo "$out" | grep -q '"dead_letters":0,' ||
    { echo "FAIL: $f: dead letters" >&2; exit 1; }
  echo "$out" | grep -Eq '"events_per_cpu_second":[1-9][0-9]*}' ||
    { echo "FAIL: $f: no rate" >&2; exit 1; }
done
# bad usage and an unreadable file are refused
if "$bench" --seconds 0 x 2>/dev/null; then
  echo "FAIL: --seconds 0 accepted" >&2; exit 1
fi
if "$bench" /nonexistent 2>/dev/null; then
  echo "FAIL: missing file accepted" >&2; exit 1
fi
echo PASS
