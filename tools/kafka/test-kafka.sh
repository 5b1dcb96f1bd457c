#!/usr/bin/env bash
# test-kafka.sh — checks clinicmig-kafka with kcat, a real outside client.
#
# usage: test-kafka.sh PATH/TO/clinicmig-kafka
#
# NOTES
# Runs the tool as a coprocess (control commands on its stdin, replies on
# its stdout), produces and consumes with kcat, injects faults through the
# control channel and checks with the tool's own "watermarks" and "dropped"
# queries. Every wait has a deadline: reads use `read -t`, every kcat runs
# under `timeout`, process exits are polled against a clock. The last part
# overfills a one-partition topic to prove that "dropped" detects the
# mock's silent retention loss. The exit status decides.
set -euo pipefail

BIN=${1:?usage: test-kafka.sh PATH/TO/clinicmig-kafka}
WORK=$(mktemp -d)
KPID=
SPID=
REPLY_LINE=
REPLY_TEXT=
EXIT_RC=

cleanup() {
  local pid
  for pid in "$KPID" "$SPID"; do
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo "== $*"; }

fail() {
  echo "FAIL: $*" >&2
  if [[ -s $WORK/kafka.log ]]; then
    echo "-- last lines of the tool's stderr:" >&2
    tail -n 20 "$WORK/kafka.log" >&2
  fi
  exit 1
}

# cmd LINE: sends a control command; sets REPLY_LINE.
cmd() {
  echo "$1" >&"$KIN" || fail "could not send '$1'"
  read -r -t 30 -u "$KOUT" REPLY_LINE || fail "no reply to '$1' in 30 s"
}

# expect_ok LINE: the reply must be "ok [...]"; sets REPLY_TEXT.
expect_ok() {
  cmd "$1"
  [[ $REPLY_LINE == ok || $REPLY_LINE == "ok "* ]] ||
    fail "'$1' replied '$REPLY_LINE'"
  REPLY_TEXT=${REPLY_LINE#ok}
  REPLY_TEXT=${REPLY_TEXT# }
}

# expect_error LINE: the reply must be "error <reason>".
expect_error() {
  cmd "$1"
  [[ $REPLY_LINE == "error "?* ]] || fail "'$1' replied '$REPLY_LINE'"
}

# produce TOPIC FILE: one message per line, "key:value"; fails on error.
produce() {
  timeout 60 kcat -P -b "$BOOT" -t "$1" -K: -X message.timeout.ms=30000 \
    <"$2"
}

# total TOPIC: prints the sum of HIGH-LOW over the topic's partitions.
total() {
  local entry sum=0 low high
  expect_ok "watermarks $1"
  for entry in $REPLY_TEXT; do
    IFS=: read -r _ low high <<<"$entry"
    sum=$((sum + high - low))
  done
  echo "$sum"
}

# wait_exit PID SECONDS: waits for PID's exit; sets EXIT_RC. Not in a
# subshell: only the parent can wait for its child.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "pid $pid still running after $2 s"
    sleep 0.1
  done
  EXIT_RC=0
  wait "$pid" || EXIT_RC=$?
}

# produce_checked TOPIC FILE COUNT: produces, retrying until a deadline,
# and checks the topic grew by exactly COUNT on the successful attempt.
produce_checked() {
  local deadline=$((SECONDS + 90)) before after
  while :; do
    before=$(total "$1")
    if produce "$1" "$2"; then
      after=$(total "$1")
      ((after == before + $3)) ||
        fail "$1 grew by $((after - before)), not $3"
      return 0
    fi
    ((SECONDS < deadline)) || fail "could not produce to $1 in 90 s"
    echo "   produce failed; retrying"
    sleep 1
  done
}

# -------------------------------------------------------------------------
step "bad flags exit 2 with one line on stderr"
for args in "--bogus" "--brokers 0" "--brokers x" "--topic nocount" \
  "--topic a:0" "--topic bad/name:1" "--replication 4" \
  "--topic a:1 --topic a:2" "--brokers"; do
  rc=0
  # shellcheck disable=SC2086 # word splitting wanted
  timeout 10 "$BIN" $args >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
  [[ $rc == 2 ]] || fail "'$args' exited $rc, not 2"
  [[ $(wc -l <"$WORK/bad.err") == 1 ]] || fail "'$args': stderr not one line"
  [[ ! -s $WORK/bad.out ]] || fail "'$args' wrote to stdout"
done
timeout 10 "$BIN" --help >"$WORK/help.out" || fail "--help failed"
for word in --brokers --topic --replication topic broker-down broker-up \
  rtt request-errors clear-errors watermarks dropped ping quit "5 MiB"; do
  grep -q -- "$word" "$WORK/help.out" || fail "--help does not mention $word"
done

# -------------------------------------------------------------------------
step "start: 3 brokers, topics events:4 and other:2"
coproc KAFKA { exec "$BIN" --topic events:4 --topic other:2 \
  2>"$WORK/kafka.log"; }
KPID=$KAFKA_PID
# keep our own copies: bash closes the coproc's fds when it exits
exec {KIN}>&"${KAFKA[1]}" {KOUT}<&"${KAFKA[0]}"
read -r -t 15 -u "$KOUT" BOOT || fail "no bootstrap line in 15 s"
[[ $BOOT =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]] ||
  fail "bootstrap line is '$BOOT'"
echo "   bootstrap $BOOT"
expect_ok ping

step "metadata through kcat -L"
timeout 30 kcat -L -b "$BOOT" -J >"$WORK/md.json" || fail "kcat -L failed"
[[ $(jq '.brokers | length' "$WORK/md.json") == 3 ]] || fail "not 3 brokers"
[[ $(jq '[.topics[] | select(.topic == "events") | .partitions[]] | length' \
  "$WORK/md.json") == 4 ]] || fail "events has not 4 partitions"
[[ $(jq '[.topics[] | select(.topic == "other") | .partitions[]] | length' \
  "$WORK/md.json") == 2 ]] || fail "other has not 2 partitions"

step "produce 100 keyed messages, consume them back"
for i in $(seq 1 100); do printf 'key%03d:value-%03d\n' "$i" "$i"; done \
  >"$WORK/msgs.txt"
produce events "$WORK/msgs.txt" || fail "kcat -P failed"
timeout 60 kcat -C -b "$BOOT" -t events -e -J -q -o beginning \
  >"$WORK/out.json" || fail "kcat -C failed"
[[ $(wc -l <"$WORK/out.json") == 100 ]] || fail "consumed not 100 messages"
jq -r '"\(.key):\(.payload)"' "$WORK/out.json" | sort >"$WORK/got.txt"
sort "$WORK/msgs.txt" | diff -u - "$WORK/got.txt" ||
  fail "consumed messages differ from produced ones"
[[ $(jq -r '"\(.key) \(.partition)"' "$WORK/out.json" | sort -u |
  wc -l) == 100 ]] || fail "a key was seen on two partitions"

step "watermarks and dropped"
expect_ok "watermarks events"
[[ $REPLY_TEXT =~ ^0:0:[0-9]+\ 1:0:[0-9]+\ 2:0:[0-9]+\ 3:0:[0-9]+$ ]] ||
  fail "watermarks events: '$REPLY_TEXT'"
[[ $(total events) == 100 ]] || fail "events does not hold 100 messages"
expect_ok "watermarks other"
[[ $REPLY_TEXT == "0:0:0 1:0:0" ]] || fail "watermarks other: '$REPLY_TEXT'"
expect_ok "dropped events"
[[ $REPLY_TEXT == 0 ]] || fail "dropped events: '$REPLY_TEXT'"

step "control errors"
expect_error "watermarks nosuch"
expect_error "dropped nosuch"
expect_error "topic events 2"
expect_error "topic bad/name 2"
expect_error "topic x 0"
expect_error "broker-down 9"
expect_error "rtt 1 -5"
expect_error "request-errors 0 x"
expect_error "request-errors 0"
expect_error "bogus"
expect_error "ping extra"
expect_ok "topic created 3"
expect_ok "watermarks created"
[[ $REPLY_TEXT == "0:0:0 1:0:0 2:0:0" ]] || fail "created: '$REPLY_TEXT'"

step "broker 1 down, then up"
for i in $(seq 1 10); do printf 'down%02d:after-up-%02d\n' "$i" "$i"; done \
  >"$WORK/ten.txt"
led=$(jq '[.topics[] | select(.topic == "events") | .partitions[] |
  select(.leader == 1)] | length' "$WORK/md.json")
expect_ok "broker-down 1"
# the mock does not move leaders: partitions led by 1 are unreachable
cmd "watermarks events"
echo "   broker 1 leads $led of 4 partitions; watermarks: $REPLY_LINE"
if ((led > 0)); then
  [[ $REPLY_LINE == "error "*"leader 1 is down" ]] ||
    fail "broker 1 leads $led partitions, watermarks said '$REPLY_LINE'"
else
  [[ $REPLY_LINE == "ok "* ]] || fail "watermarks while down: '$REPLY_LINE'"
fi
expect_ok "broker-up 1"
produce_checked events "$WORK/ten.txt" 10
timeout 60 kcat -C -b "$BOOT" -t events -e -q -o beginning -f '%k\n' \
  >"$WORK/keys.txt" || fail "kcat -C after broker-up failed"
[[ $(wc -l <"$WORK/keys.txt") == 110 ]] || fail "not 110 messages after up"

step "rtt 1 50"
expect_ok "rtt 1 50"
produce_checked events "$WORK/ten.txt" 10
expect_ok "rtt 1 0"

step "request-errors 0 6 6 (Produce: NOT_LEADER_OR_FOLLOWER, retriable)"
expect_ok "request-errors 0 6 6"
produce_checked events "$WORK/ten.txt" 10
expect_ok "clear-errors 0"
expect_ok "dropped events"
[[ $REPLY_TEXT == 0 ]] || fail "dropped events: '$REPLY_TEXT'"

step "dropped detects loss: 7000 x 1 KiB into a 1-partition topic"
expect_ok "topic big 1"
awk 'BEGIN { pad = sprintf("%1017s", ""); gsub(/ /, "x", pad);
  for (i = 0; i < 7000; i++) printf "k%05d:%s\n", i, pad }' >"$WORK/big.txt"
produce big "$WORK/big.txt" || fail "kcat -P of 7000 messages failed"
expect_ok "watermarks big"
IFS=: read -r _ low high <<<"$REPLY_TEXT"
[[ $high == 7000 ]] || fail "big: high watermark $high, not 7000"
expect_ok "dropped big"
[[ $REPLY_TEXT == "$low" ]] || fail "dropped big '$REPLY_TEXT' != low $low"
((REPLY_TEXT > 0)) || fail "dropped big is 0 after 7 MiB into 5 MiB"
echo "   the mock kept $((high - low)) of 7000; dropped reports $REPLY_TEXT"

step "quit exits 0"
expect_ok quit
wait_exit "$KPID" 20
[[ $EXIT_RC == 0 ]] || fail "quit: exit status $EXIT_RC"
KPID=

step "EOF on stdin keeps it running; SIGTERM exits 0"
"$BIN" --brokers 1 --topic s:1 </dev/null >"$WORK/sig.out" \
  2>"$WORK/sig.err" &
SPID=$!
deadline=$((SECONDS + 15))
until [[ -s $WORK/sig.out ]]; do
  ((SECONDS < deadline)) || fail "no bootstrap line from the background run"
  sleep 0.1
done
boot2=$(head -n 1 "$WORK/sig.out")
sleep 0.5 # past EOF
kill -0 "$SPID" 2>/dev/null || fail "exited on EOF"
timeout 30 kcat -L -b "$boot2" -t s >/dev/null || fail "kcat -L after EOF"
kill -TERM "$SPID"
wait_exit "$SPID" 20
[[ $EXIT_RC == 0 ]] || fail "SIGTERM: exit status $EXIT_RC"
SPID=
[[ $(wc -l <"$WORK/sig.out") == 1 ]] || fail "stdout is not one line"

echo "tool.kafka: all checks passed"
