#!/usr/bin/env bash
# Runs the switch: vswitchd on its embedded DB with a default bridge br0.
# Sockets go to $FERROVS_RUNDIR (default /run/ferrovs); the DB file to
# $FERROVS_DBDIR (default /var/lib/ferrovs). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export FERROVS_RUNDIR=${FERROVS_RUNDIR:-/run/ferrovs}
DBDIR=${FERROVS_DBDIR:-/var/lib/ferrovs}
BRIDGE=${FERROVS_BRIDGE:-br0}
# vswitchd creates the run directory itself (mode 0750).
mkdir -p "$DBDIR"

cargo build --release --bins --locked
bin=target/release

"$bin/vswitchd" --rundir "$FERROVS_RUNDIR" --db "$DBDIR/conf.db" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' INT TERM EXIT
for _ in $(seq 100); do [ -S "$FERROVS_RUNDIR/db.sock" ] && break; sleep 0.1; done
"$bin/vsctl" --may-exist add-br "$BRIDGE"
"$bin/vsctl" show
echo "vswitchd running (pid $pid); bridge $BRIDGE is up. Ctrl-C to stop."
wait $pid
