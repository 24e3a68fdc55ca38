#!/usr/bin/env bash
# VXLAN between two "hypervisors", ferrovs beside Open vSwitch's userspace
# datapath: iperf3 TCP goodput and 64 B UDP between two VM namespaces whose
# switches are joined by a VXLAN tunnel over an underlay veth, plus the same
# VMs on one ferrovs bridge without a tunnel (the unencapsulated figure).
#
# A stopgap until bench/run has a `tunnel` scenario (its harness runs one
# switch in the root namespace; this needs two, each in a namespace).
#
#   sudo flock /tmp/ferrovs-bench.lock flock /tmp/ferrovs-e2e.lock bench/tunnel-pair.sh [SECONDS]
#
# ferrovs binaries from $FERROVS_BIN_DIR or target/release.
set -euo pipefail

SECS=${1:-10}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERROVS_BIN_DIR:-$REPO/target/release}
P=btn
WORK=$(mktemp -d /tmp/$P-XXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for f in "$WORK"/*/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    sleep 0.5
    for ns in $P-a $P-b $P-av $P-bv; do ip netns del $ns 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

topology() { # $1: tx offload of the VMs (on|off)
    for ns in $P-a $P-b $P-av $P-bv; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; nsx $ns ip link set lo up; done
    ip link add $P-ua netns $P-a type veth peer name $P-ub netns $P-b
    nsx $P-a ip link set $P-ua up; nsx $P-b ip link set $P-ub up
    local n=1
    for s in a b; do
        nsx $P-$s ip link add $P-v$s type veth peer name eth0 netns $P-${s}v
        nsx $P-$s ip link set $P-v$s up
        nsx $P-${s}v ip addr add 192.168.78.$n/24 dev eth0
        nsx $P-${s}v ip link set eth0 mtu 1400 up
        nsx $P-${s}v ethtool -K eth0 tx "$1" >/dev/null
        n=$((n + 1))
    done
}

ferrovs_side() { # $1: side (a|b), $2: n, $3: peer n
    local s=$1 d
    d=$(mktemp -d "$WORK/f$1-XXXX")
    [ "$s" = a ] && RUNDIR_A=$d
    nsx $P-$s "$BIN/vswitchd" --rundir "$d" --db "$d/conf.db" >"$d/log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -S "$d/db.sock" ] && break; sleep 0.1; done
    local v="env FERROVS_RUNDIR=$d $BIN/vsctl"
    $v add-br $P-p$s
    $v add-port $P-p$s $P-u$s
    for _ in $(seq 50); do nsx $P-$s ip link show $P-p$s >/dev/null 2>&1 && break; sleep 0.1; done
    nsx $P-$s ip link set $P-p$s up
    nsx $P-$s ip addr add 10.98.0.$2/24 dev $P-p$s
    $v add-br $P-i$s
    $v add-port $P-i$s $P-v$s
    $v add-port $P-i$s $P-x$s -- set Interface $P-x$s type=vxlan options:remote_ip=10.98.0.$3 options:key=5
}

ovs_side() {
    local s=$1 d
    d=$(mktemp -d "$WORK/o$1-XXXX")
    export OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d
    ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$d/conf.db" --remote=punix:"$d/db.sock" --pidfile="$d/ovsdb-server.pid" --log-file="$d/ovsdb.log" --detach
    local v="ovs-vsctl --db=unix:$d/db.sock"
    $v --no-wait init
    nsx $P-$s ovs-vswitchd unix:"$d/db.sock" --pidfile="$d/ovs-vswitchd.pid" --log-file="$d/vswitchd.log" --detach
    $v add-br $P-p$s -- set bridge $P-p$s datapath_type=netdev
    $v add-port $P-p$s $P-u$s
    nsx $P-$s ip link set $P-p$s up
    nsx $P-$s ip addr add 10.98.0.$2/24 dev $P-p$s
    $v add-br $P-i$s -- set bridge $P-i$s datapath_type=netdev
    $v add-port $P-i$s $P-v$s
    $v add-port $P-i$s $P-x$s -- set Interface $P-x$s type=vxlan options:remote_ip=10.98.0.$3 options:key=5
    ovs-appctl -t "$d/ovs-vswitchd.$(cat "$d/ovs-vswitchd.pid").ctl" ovs/route/add 10.98.0.0/24 $P-p$s >/dev/null
    unset OVS_RUNDIR OVS_LOGDIR OVS_DBDIR
}

measure() { # $1: label
    for _ in $(seq 30); do nsx $P-av ping -c1 -W1 192.168.78.2 >/dev/null 2>&1 && break; done
    nsx $P-av ping -c3 -i0.2 -W1 192.168.78.2 >/dev/null || { echo "$1: no connectivity"; return; }
    nsx $P-bv iperf3 -s -D -p 5299 --pidfile "$WORK/iperf.pid"
    sleep 0.5
    local tcp udp
    tcp=$(nsx $P-av iperf3 -c 192.168.78.2 -p 5299 -t "$SECS" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,3))')
    udp=$(nsx $P-av iperf3 -c 192.168.78.2 -p 5299 -t "$SECS" -u -l 64 -b 0 -J | python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(round((s["packets"]-s["lost_packets"])/s["seconds"]/1e3,1), round(s["lost_percent"],1))')
    kill "$(cat "$WORK/iperf.pid")" 2>/dev/null || true
    echo "$1: TCP ${tcp} Gbit/s; UDP 64 B: ${udp% *} kpps received, ${udp#* }% loss"
}

echo "# tunnel-pair, $(date -u +%FT%TZ), ${SECS}s per figure, $(nproc) cores"
for tx in on off; do
    topology $tx
    ferrovs_side a 1 2; ferrovs_side b 2 1
    measure "ferrovs VXLAN, VM tx $tx"
    FERROVS_RUNDIR=$RUNDIR_A "$BIN/appctl" dpif-netdev/pmd-stats-show | grep -E "hits|upcalls|lost|recirc" | tr -s ' ' | paste -sd';' | sed 's/^/  side a: /'
    cleanup_pids=("${PIDS[@]}"); for p in "${cleanup_pids[@]}"; do kill "$p" 2>/dev/null || true; done; PIDS=(); sleep 1
done
topology off
ovs_side a 1 2; ovs_side b 2 1
measure "OVS userspace VXLAN, VM tx off"
for f in "$WORK"/o*/*.pid; do kill "$(cat "$f")" 2>/dev/null || true; done; sleep 1

# Unencapsulated: both VMs on one ferrovs bridge in hypervisor a.
topology on
nsx $P-b ip link set $P-vb netns $P-a
d=$WORK/fu; mkdir -p "$d"
nsx $P-a "$BIN/vswitchd" --rundir "$d" --db "$d/conf.db" >"$d/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$d/db.sock" ] && break; sleep 0.1; done
FERROVS_RUNDIR=$d "$BIN/vsctl" add-br $P-u0
FERROVS_RUNDIR=$d "$BIN/vsctl" add-port $P-u0 $P-va
FERROVS_RUNDIR=$d "$BIN/vsctl" add-port $P-u0 $P-vb
nsx $P-a ip link set $P-vb up
measure "ferrovs no tunnel, VM tx on"
