#!/bin/sh
# test-options.sh — clinicmig-decode's decoding options: a bad value is
# bad usage (exit status 2, one line naming the option on stderr).
#
# Usage: test-options.sh TOOL
set -eu

tool=$1
err=$(mktemp)
trap 'rm -f "$err"' EXIT

bad() { # needle, options...
  needle=$1
  shift
  if "$tool" "$@" </dev/null >/dev/null 2>"$err"; then
    echo "clinicmig-decode $*: exit 0" >&2
    exit 1
  else
    status=$?
  fi
  if [ "$status" -ne 2 ] || ! grep -q -- "$needle" "$err"; then
    echo "clinicmig-decode $*: exit $status, stderr:" >&2
    cat "$err" >&2
    exit 1
  fi
}

bad '--time-precision-mode: expected adaptive' --time-precision-mode weekly
bad '--legacy-column-types: Patient.birthDate: not a timestamp column' \
  --legacy-column-types 'Patient.birthDate=timestamp(3)'
bad '--legacy-column-types: Doctor: not a legacy table' \
  --legacy-column-types 'Doctor.*=timestamp'
"$tool" --help | grep -q -- '--time-precision-mode MODE'
"$tool" --time-precision-mode connect --legacy-column-types '*.*=timestamp(3)' \
  </dev/null
echo "ok: decoding options checked"
