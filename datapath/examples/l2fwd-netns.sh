#!/bin/bash
# Runs ping and iperf3 (TCP, both directions) between two namespaces
# through the l2fwd example, as root.
#
#   datapath/examples/l2fwd-netns.sh BIN veth|tap [l2fwd options, e.g. --v3]
#
# BIN is the built example, e.g. target/release/examples/l2fwd. Creates
# namespaces dp-h1/dp-h2 and links dp-v1/dp-v2/dp-t2; removes them on exit.
set -u
BIN=$1; MODE=$2; shift 2
LOG=$(mktemp /tmp/dp-l2fwd.XXXXXX)
L2=
cleanup() {
  [ -n "$L2" ] && kill "$L2" 2>/dev/null && wait "$L2" 2>/dev/null
  ip netns del dp-h1 2>/dev/null; ip netns del dp-h2 2>/dev/null
  ip link del dp-v1 2>/dev/null; ip link del dp-v2 2>/dev/null
  rm -f "$LOG"
}
trap cleanup EXIT
ip netns add dp-h1; ip netns add dp-h2
ip link add dp-v1 type veth peer name eth0 netns dp-h1
ip -n dp-h1 addr add 10.232.0.1/24 dev eth0; ip -n dp-h1 link set eth0 up
if [ "$MODE" = veth ]; then
  ip link add dp-v2 type veth peer name eth0 netns dp-h2
  ip -n dp-h2 addr add 10.232.0.2/24 dev eth0; ip -n dp-h2 link set eth0 up
  "$BIN" --seconds 40 "$@" dp-v1 dp-v2 >"$LOG" 2>&1 & L2=$!
  sleep 1
else
  "$BIN" --seconds 40 "$@" dp-v1 tap:dp-t2 >"$LOG" 2>&1 & L2=$!
  sleep 1
  ip link set dp-t2 netns dp-h2
  ip -n dp-h2 addr add 10.232.0.2/24 dev dp-t2; ip -n dp-h2 link set dp-t2 up
fi
ip netns exec dp-h1 ping -c 20 -i 0.05 10.232.0.2 | tail -1
ip netns exec dp-h2 iperf3 -s -1 -D -B 10.232.0.2; sleep 0.5
echo "h1 -> h2:"; ip netns exec dp-h1 iperf3 -c 10.232.0.2 -t 8 | grep -E "sender|receiver"
ip netns exec dp-h1 iperf3 -s -1 -D -B 10.232.0.1; sleep 0.5
echo "h2 -> h1:"; ip netns exec dp-h2 iperf3 -c 10.232.0.1 -t 8 | grep -E "sender|receiver"
tail -3 "$LOG"
