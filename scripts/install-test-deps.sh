#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are skipped quickly.
#
# FERROVS_PYTHON names the Python interpreter that gets the Python packages
# (default: python3 on the PATH, which is what the tests run). CI points it
# at a fresh virtualenv once per run to prove the install path works on a
# machine that has none of them.
set -euo pipefail

PYTHON=${FERROVS_PYTHON:-python3}

APT_PKGS=(
  iproute2 iputils-ping iperf3 ethtool tcpdump procps psmisc
  openvswitch-switch openvswitch-common openvswitch-switch-dpdk
  ovn-host ovn-central prometheus nfdump
  qemu-system-x86 qemu-utils busybox-static
  dpdk-dev librte-net-virtio23 librte-net-vhost23 librte-mempool-ring23
  python3-pip python3-venv
  curl tftpd-hpa
)
# NAME==VERSION pins a version; a bare NAME accepts any installed version.
PIP_PKGS=(ovs==4.0.0 os-ken==4.2.2 scapy matplotlib pyftpdlib)

# Prints the listed Debian packages that are not installed, one line.
apt_missing() {
  local p out=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[*]}"
}

# Two passes: installing one package can remove another that was there (on a
# fresh machine of this kind, Debian's qemu-system-x86 7.2 removes the
# preinstalled backports qemu-utils 10.0), and the second pass puts back
# Debian's matching version.
updated=0
for _pass in 1 2; do
  read -r -a missing <<<"$(apt_missing)"
  [ ${#missing[@]} -eq 0 ] && break
  echo "== installing Debian packages: ${missing[*]}"
  if [ "$updated" -eq 0 ]; then
    # Wait for another apt (unattended upgrades, a parallel setup) instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
done
read -r -a missing <<<"$(apt_missing)"
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-deps: still not installed after two passes: ${missing[*]}" >&2
  exit 1
fi

# Prints the requirements from the arguments that $PYTHON does not satisfy,
# on one line. Asks the interpreter itself (importlib.metadata): `pip show`
# exits 1 for a missing package, which would stop this script under
# `set -e -o pipefail` before anything got installed.
pip_missing() {
  "$PYTHON" - "$@" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

missing = []
for req in sys.argv[1:]:
    name, _, want = req.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have is None or (want and have != want):
        missing.append(req)
print(" ".join(missing))
EOF
}

# (A command substitution, not `< <(…)`, so that a broken interpreter stops
# the script here.)
need_list=$(pip_missing "${PIP_PKGS[@]}")
read -ra need <<< "$need_list"
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Python packages for $PYTHON: ${need[*]}"
  # Debian 12 marks its Python as externally managed (PEP 668): pip refuses
  # to install into it unless told to. A virtualenv ignores the setting.
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$PYTHON" -m pip install -q "${need[@]}"
  still=$(pip_missing "${PIP_PKGS[@]}")
  if [ -n "$still" ]; then
    echo "install-test-deps: $PYTHON still lacks $still after pip install" >&2
    exit 1
  fi
fi

# Rust: the toolchain itself is the developer's (rustup); the test script
# also needs its clippy and rustfmt components.
if ! command -v cargo >/dev/null; then
  echo "install-test-deps: cargo is not on the PATH; install Rust >= 1.85 with rustup" >&2
  exit 1
fi
for comp in clippy rustfmt; do
  sub=${comp/rustfmt/fmt}
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    echo "== adding Rust component $comp"
    rustup component add "$comp"
  fi
done

# The datapath and vhost tests like hugepages when present; they work without.
echo 512 > /proc/sys/vm/nr_hugepages 2>/dev/null || true
echo "== test dependencies ready"
