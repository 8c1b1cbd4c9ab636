#!/usr/bin/env bash
# Runs a command on a busy machine: both cores loaded and a disk busy writing and
# fsyncing beside it (stress-ng, from Debian's packages), as a shared CI machine or a
# laptop in the middle of a build would be. The load stops when the command ends.
#
#   bench/busy.sh make test
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 command [args...]" >&2; exit 2; }
command -v stress-ng >/dev/null || { echo "stress-ng is missing: make deps-busy" >&2; exit 1; }

# On the disk the tests write to (their temp dirs and the build), not a tmpfs.
base="${BUSY_DIR:-${CARGO_TARGET_DIR:-$PWD/target}}"
mkdir -p "$base"
scratch="$(mktemp -d "$base/busy.XXXXXX")"
stress-ng --cpu "${BUSY_CPUS:-2}" --hdd 1 --hdd-bytes 1g --hdd-opts wr-seq,fsync \
  --temp-path "$scratch" --quiet &
load=$!
stop() { kill "$load" 2>/dev/null || true; wait "$load" 2>/dev/null || true; rm -rf "$scratch"; }
trap stop EXIT
trap 'exit 130' INT TERM

echo "busy.sh: stress-ng (pid $load) loads ${BUSY_CPUS:-2} cores and writes with fsync in $scratch"
started=$(date +%s)
status=0
"$@" || status=$?
echo "busy.sh: '$*' exited with $status after $(( $(date +%s) - started )) s beside the load"
exit "$status"
