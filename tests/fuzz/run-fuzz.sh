#!/bin/sh
# run-fuzz.sh — builds the decoder's fuzz target with clang and runs it.
#
# Usage: tests/fuzz/run-fuzz.sh SECONDS [BUILD_DIR]
#
# Configures BUILD_DIR (default /tmp/build-fuzz) with CC=clang CXX=clang++
# -DCM_FUZZ=ON, builds only fuzz_decode, seeds a corpus from the fixtures
# in tests/data/decode (key, newline, value; and value alone), the JSON
# shapes of tests/data/decode-shapes and the Avro messages of
# tests/data/decode-avro (0xFF, key length in two bytes, key, value: see
# fuzz_decode.c), and runs
# libFuzzer for SECONDS. Exits non-zero on any crash, leak or sanitizer
# report; the log is BUILD_DIR/fuzz.log, crash inputs land in BUILD_DIR.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 SECONDS [BUILD_DIR]" >&2
  exit 2
fi
secs=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-/tmp/build-fuzz}
corpus=$build/fuzz-corpus
log=$build/fuzz.log

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCM_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_decode

mkdir -p "$corpus"
for value in "$root"/tests/data/decode/*.json; do
  case $value in *.key.json) continue ;; esac
  base=${value%.json}
  name=$(basename "$base")
  # JSON keeps no raw newline inside strings: dropping them all leaves the
  # same document on one line.
  {
    if [ -f "$base.key.json" ]; then tr -d '\n' <"$base.key.json"; fi
    printf '\n'
    tr -d '\n' <"$value"
  } >"$corpus/seed-$name"
  tr -d '\n' <"$value" >"$corpus/seed-$name-nokey"
done

python3 - "$root/tests/data/decode-avro" "$corpus" <<'EOF'
import base64, glob, json, os, sys
src, corpus = sys.argv[1], sys.argv[2]
# the JSON envelope shapes of tests/data/decode-shapes, key and value
shapes = os.path.join(src, "..", "decode-shapes")
for path in sorted(glob.glob(f"{shapes}/*.jsonl") +
                   glob.glob(f"{shapes}/modes/*.jsonl")):
    if path.endswith(".avro.jsonl"):
        continue
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            m = json.loads(line)
            name = os.path.basename(path).split(".")[0]
            with open(f"{corpus}/seed-shapes-{name}-{n}", "wb") as out:
                out.write((m.get("key") or "").encode() + b"\n" +
                          (m.get("payload") or "").encode())
for name in ("changes.avro.jsonl", "faults.avro.jsonl",
             "replay.avro.jsonl", "replay-faults.avro.jsonl"):
    with open(f"{src}/{name}", encoding="utf-8") as f:
        for n, line in enumerate(f):
            m = json.loads(line)
            key = (base64.b64decode(m["key_b64"]) if "key_b64" in m
                   else (m.get("key") or "").encode())
            val = base64.b64decode(m.get("payload_b64") or "")
            with open(f"{corpus}/seed-avro-{name.split('.')[0]}-{n}",
                      "wb") as out:
                out.write(b"\xff" + len(key).to_bytes(2, "big") + key + val)
EOF

set +e
(cd "$build" && "$build/tests/fuzz_decode" -max_total_time="$secs" \
  -rss_limit_mb=2048 -print_final_stats=1 \
  -dict="$root/tests/fuzz/decode.dict" "$corpus") >"$log" 2>&1
rc=$?
set -e
grep -E '^(#[0-9]+.*DONE|Done |stat::(number_of_executed_units|average_exec))' \
  "$log" || true
bad='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: '
if [ $rc -ne 0 ] || grep -qE "$bad" "$log"; then
  tail -n 40 "$log" >&2
  echo "run-fuzz.sh: fuzz_decode found a problem (exit $rc), see $log" >&2
  exit 1
fi
echo "run-fuzz.sh: clean after $secs seconds"
