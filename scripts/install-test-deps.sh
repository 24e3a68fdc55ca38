#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail

APT_PKGS=(
  iproute2 iputils-ping iperf3 ethtool tcpdump procps psmisc
  openvswitch-switch openvswitch-common openvswitch-switch-dpdk
  qemu-system-x86 busybox-static
  dpdk-dev librte-net-virtio23 librte-net-vhost23 librte-mempool-ring23
  python3-pip
)
PIP_PKGS=(ovs==4.0.0 os-ken==4.2.2 scapy matplotlib)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_missing=()
for p in "${PIP_PKGS[@]}"; do
  name=${p%%==*}; want=${p#*==}
  have=$(python3 -m pip show "$name" 2>/dev/null | awk '/^Version:/{print $2}')
  if [ "$want" = "$p" ]; then [ -n "$have" ] || pip_missing+=("$p"); else [ "$have" = "$want" ] || pip_missing+=("$p"); fi
done
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "== installing Python packages: ${pip_missing[*]}"
  python3 -m pip install -q --root-user-action=ignore "${pip_missing[@]}"
fi

# The datapath and vhost tests like hugepages when present; they work without.
echo 512 > /proc/sys/vm/nr_hugepages 2>/dev/null || true
echo "== test dependencies ready"
