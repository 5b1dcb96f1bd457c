#!/usr/bin/env bash
# setup.sh — installs what clinicmig needs to build, test and run its demo
# on Debian 12, and nothing that is already there. Run as root (or with
# sudo available). Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  librdkafka-dev libpq-dev libavro-dev libcjson-dev libphonenumber-dev
  libcmocka-dev libmicrohttpd-dev libcurl4-openssl-dev libssl-dev
  postgresql-15 postgresql-client-15 kcat valgrind openssl
  python3 python3-psycopg2 python3-confluent-kafka python3-jsonschema
  python3-avro
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm, for the benchmark's Node.js baseline (tools/bench):
# Debian's, unless a node and an npm are already there
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    exec sudo "$0" "$@"
  fi
  echo "setup.sh: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
