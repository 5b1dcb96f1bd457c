#!/usr/bin/env bash
# demo.sh — the whole migration on one machine, from a fresh Debian 12:
# installs what is missing, builds, starts a private PostgreSQL (legacy
# and target databases) and the local Kafka cluster, loads the seed-sized
# legacy data set, backfills it through the replay topic (clinicmig-replay
# db) while live changes flow and two workers apply both, waits until the
# topics are drained, checks the result with the oracle, starts the
# reconciler and ends with clinicmig-watch's migration report (its status
# is the demo's: every entity in sync). Everything it starts is stopped and removed at the
# end (CM_DEMO_KEEP=1 keeps the database running and prints how to reach
# it).
#
# demo.sh --avro: the same with the live changes in Avro, as Debezium's
# AvroConverter writes them (clinicmig-gen --format avro), their writer
# schemas registered in a schema registry the demo starts
# (tools/lib/cmregistry.py, basic auth), which the workers are given
# (schema.registry.url, README.md "Running against a schema registry");
# the backfill (clinicmig-replay), the workers' progress events and the
# reconciler's events are written in Avro too, and clinicmig-watch reads
# them with the same registry.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${CM_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

avro=0
for arg in "$@"; do
  case $arg in
    --avro) avro=1 ;;
    -h | --help)
      echo "usage: $0 [--avro]   (--avro: live changes in Avro through a schema registry)"
      exit 0
      ;;
    *)
      echo "usage: $0 [--avro]" >&2
      exit 2
      ;;
  esac
done

say() { printf '\n== %s\n' "$*"; }

"$root/tools/scripts/setup.sh"
say "building"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs" >/dev/null

work=$(mktemp -d /tmp/clinicmig-demo.XXXXXX)
chmod 755 "$work"
bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$bin/initdb" ] || bin=/usr/lib/postgresql/15/bin
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$work"
  as_pg=(runuser -u postgres --)
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
workers=()
reconciler=
kafka_pid=
registry_pid=

cleanup() {
  set +e
  [ -n "$reconciler" ] && kill -TERM "$reconciler" 2>/dev/null
  for w in "${workers[@]}"; do kill -TERM "$w" 2>/dev/null; done
  for w in "${workers[@]}"; do wait "$w" 2>/dev/null; done
  if [ -n "$registry_pid" ]; then
    kill -TERM "$registry_pid" 2>/dev/null
    wait "$registry_pid" 2>/dev/null
  fi
  if [ -n "$kafka_pid" ]; then
    echo quit >&"${KAFKA[1]}" 2>/dev/null
    wait "$kafka_pid" 2>/dev/null
  fi
  if [ "${CM_DEMO_KEEP:-0}" = 1 ]; then
    echo "PostgreSQL left running: psql 'host=127.0.0.1 port=$port user=postgres dbname=target'"
    echo "stop it with: ${as_pg[*]} $bin/pg_ctl -D $work/pg stop; logs in $work"
    return
  fi
  "${as_pg[@]}" "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

say "starting a private PostgreSQL on port $port"
"${as_pg[@]}" "$bin/initdb" -D "$work/pg" -U postgres --auth=trust \
  -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
cat >>"$work/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
fsync = off
CONF
"${as_pg[@]}" "$bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
pg="host=127.0.0.1 port=$port user=postgres"
psql -q "$pg dbname=postgres" -c "CREATE DATABASE legacy" \
  -c "CREATE DATABASE target"
legacy="$pg dbname=legacy"
target="$pg dbname=target"

say "starting the local Kafka cluster"
coproc KAFKA {
  exec "$build/tools/kafka/clinicmig-kafka" --brokers 3 \
    --topic legacy.public.User:3 --topic legacy.public.Patient:3 \
    --topic legacy.public.Appointment:3 --topic clinicmig.replay:2 \
    --topic clinicmig.dlq:1 --topic clinicmig.progress:1 \
    --topic clinicmig.reconciliation:1 2>"$work/kafka.log"
}
kafka_pid=$KAFKA_PID
read -r -t 30 bootstrap <&"${KAFKA[0]}"
echo "bootstrap: $bootstrap"
reply=
kafka() { # one control command; its reply in $reply (no subshell: the
  # coprocess's pipes exist only in this shell)
  echo "$*" >&"${KAFKA[1]}"
  read -r -t 30 reply <&"${KAFKA[0]}"
  case $reply in
    ok*) ;;
    *) echo "demo: clinicmig-kafka: $* -> $reply" >&2; exit 1 ;;
  esac
}

# The options of each program in Avro mode: the live changes, the backfill,
# the progress and the reconciliation streams all in Avro.
worker_avro=()
gen_avro=()
replay_avro=()
reconcile_avro=()
watch_avro=()
if [ $avro = 1 ]; then
  say "starting a schema registry"
  secret=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  /usr/bin/python3 "$root/tools/lib/cmregistry.py" --user-info "demo:$secret" \
    >"$work/registry.url" 2>"$work/registry.log" &
  registry_pid=$!
  for _ in $(seq 100); do
    [ -s "$work/registry.url" ] && break
    sleep 0.1
  done
  registry=$(head -n 1 "$work/registry.url")
  if [ -z "$registry" ]; then
    echo "demo: the schema registry did not start" >&2
    cat "$work/registry.log" >&2
    exit 1
  fi
  echo "schema registry: $registry"
  worker_avro=(--schema-registry-url "$registry"
    -X "schema.registry.basic.auth.user.info=demo:$secret")
  worker_avro+=(-X topic.progress.format=avro)
  gen_avro=(--format avro --schema-registry-url "$registry"
    --schema-registry-basic-auth-user-info "demo:$secret")
  # the backfill, the progress and the reconciliation streams in Avro too,
  # their schemas registered under <topic>-value
  registry_flags=(--schema-registry-url "$registry"
    --schema-registry-basic-auth-user-info "demo:$secret")
  replay_avro=(--output-format avro "${registry_flags[@]}")
  reconcile_avro=(--output-format avro "${registry_flags[@]}")
  watch_avro=("${registry_flags[@]}")
fi

say "loading the legacy data set"
"$root/tools/gen/clinicmig-gen" seed --db "$legacy"

say "starting two workers"
for n in 1 2; do
  "$build/worker/clinicmig-worker" --db-conninfo "$target" \
    --bootstrap-servers "$bootstrap" --worker-id "worker-$n" \
    --progress-interval-ms 1000 \
    -X kafka.session.timeout.ms=6000 \
    -X kafka.topic.metadata.refresh.interval.ms=1000 \
    "${worker_avro[@]}" \
    2>"$work/worker-$n.log" &
  workers+=($!)
done

say "backfill through the replay topic, while live changes flow"
"$build/tools/replay/clinicmig-replay" db --legacy-conninfo "$legacy" \
  --bootstrap-servers "$bootstrap" "${replay_avro[@]}" &
replay=$!
"$root/tools/gen/clinicmig-gen" history --db "$legacy" --seed 7 --steps 60 \
  --updates-only --out "$work/live.jsonl" "${gen_avro[@]}"
"$root/tools/publish/clinicmig-publish" -b "$bootstrap" "$work/live.jsonl"
wait "$replay"

say "waiting until the workers have applied everything"
topics=(legacy.public.User legacy.public.Patient legacy.public.Appointment
  clinicmig.replay)
deadline=$((SECONDS + 180))
while :; do
  want=0
  for t in "${topics[@]}"; do
    kafka watermarks "$t"
    for p in ${reply#ok}; do
      want=$((want + ${p##*:}))
    done
  done
  have=$(psql -tAq "$target" -c \
    "SELECT coalesce(sum(next_offset), 0) FROM clinicmig.consumer_offset
     WHERE topic LIKE 'legacy.public.%' OR topic = 'clinicmig.replay'" \
    2>/dev/null || echo 0)
  [ "$want" -gt 0 ] && [ "$have" = "$want" ] && break
  if [ $SECONDS -ge $deadline ]; then
    echo "demo: the workers did not drain the topics ($have of $want)" >&2
    tail -n 20 "$work"/worker-*.log >&2
    exit 1
  fi
  sleep 0.5
done
echo "applied offsets: $have of $want messages"
for t in "${topics[@]}"; do
  kafka dropped "$t"
  if [ "$reply" != "ok 0" ]; then
    echo "demo: the local cluster dropped messages of $t ($reply)" >&2
    exit 1
  fi
done
echo "no message dropped by the local cluster"
if [ $avro = 1 ]; then
  in_avro=$(grep -c '"payload_b64"' "$work/live.jsonl" || true)
  psql -tAq "$target" -F ' ' -c \
    "SELECT coalesce(sum(applied), 0), coalesce(sum(stale), 0),
            coalesce(sum(skipped), 0), coalesce(sum(dead_lettered), 0)
     FROM clinicmig.partition_stats WHERE topic LIKE 'legacy.public.%'" |
    {
      read -r applied stale skipped dead
      echo "live changes: $in_avro messages in Avro; the workers applied" \
        "$applied, $stale stale, $skipped skipped, $dead dead-lettered"
    }
fi

say "oracle: f computed from the legacy tables vs. the new schema"
"$build/tools/oracle/clinicmig-oracle" --legacy "$legacy" --target "$target"

say "reconciler: legacy, mirror and new schema compared, pass after pass"
"$build/tools/reconcile/clinicmig-reconcile" --db-conninfo "$target" \
  --legacy-conninfo "$legacy" --bootstrap-servers "$bootstrap" \
  --interval-ms 1000 --hold-ms 2000 \
  "${reconcile_avro[@]}" 2>"$work/reconciler.log" &
reconciler=$!

say "migration report (clinicmig-watch --report)"
"$build/tools/watch/clinicmig-watch" -b "$bootstrap" --report --timeout 120 \
  "${watch_avro[@]}" || status=$?
if [ $avro = 1 ]; then
  # the subjects of the live topics' schemas and of clinicmig's own streams
  /usr/bin/python3 - "$registry" "demo:$secret" <<'EOF'
import base64, json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/subjects", headers={
    "Authorization": "Basic " + base64.b64encode(sys.argv[2].encode()).decode()})
print("registered subjects:", " ".join(json.load(urllib.request.urlopen(req))))
EOF
fi
exit "${status:-0}"
