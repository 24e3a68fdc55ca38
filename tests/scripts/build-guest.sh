#!/usr/bin/env bash
# Builds a tiny Linux guest for the vhost-user end-to-end tests:
#   OUT/vmlinuz       Debian's kernel (virtio_net etc. are modules)
#   OUT/initramfs.gz  busybox + the virtio modules + iperf3 + an /init
#                     driven by the kernel command line:
#     fv.ip=CIDR fv.peer=IP fv.mode=MODE[,MODE...] with MODE one of
#     ping, iperf-server, iperf-client, idle (run in order)
#     fv.count=N (pings) fv.secs=N (iperf seconds)
# The guest prints "FV-RESULT ..." lines on ttyS0 and powers off.
# Everything comes from Debian packages (apt-get download, no install).
set -euo pipefail
OUT=${1:?usage: build-guest.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initramfs.gz" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)
[ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1); }
[ -n "$pkg" ] || { echo "build-guest.sh: no linux-image-6.1.0-*-amd64 package found" >&2; exit 1; }
apt-get download -qq "$pkg"
dpkg-deb -x ./*.deb kernel
cp kernel/boot/vmlinuz-* "$OUT/vmlinuz"
moddir=$(echo kernel/lib/modules/*)

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,lib/modules,lib64,lib/x86_64-linux-gnu,usr/bin}
cp /bin/busybox "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  f=$(find "$moddir" -name "$m.ko*" | head -1)
  [ -n "$f" ] || { echo "build-guest.sh: module $m not found" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done
# iperf3 and the libraries it links.
cp /usr/bin/iperf3 "$root/usr/bin/iperf3"
for lib in $(ldd /usr/bin/iperf3 | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
  cp -L "$lib" "$root$lib" 2>/dev/null || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
done

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^fv\.$1=//p" | tail -1; }
IP=$(arg ip); PEER=$(arg peer); MODE=$(arg mode); COUNT=$(arg count); SECS=$(arg secs)
COUNT=${COUNT:-3}; SECS=${SECS:-3}
ip link set lo up
for i in $(seq 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
if [ ! -e /sys/class/net/eth0 ]; then echo "FV-RESULT no-eth0"; poweroff -f; fi
ip addr add "$IP" dev eth0; ip link set eth0 up
echo "FV-RESULT up mac=$(cat /sys/class/net/eth0/address)"
for M in $(echo "$MODE" | tr ',' ' '); do
case "$M" in
  ping)
    ok=0
    for i in $(seq 60); do if ping -c 1 -W 1 "$PEER" >/dev/null 2>&1; then ok=1; break; fi; done
    if [ $ok = 1 ] && ping -c "$COUNT" -W 2 "$PEER" >/tmp/ping 2>&1; then echo "FV-RESULT ping-ok"; else echo "FV-RESULT ping-fail"; cat /tmp/ping; fi ;;
  iperf-server)
    echo "FV-RESULT iperf-server-ready"
    iperf3 -s -1 >/tmp/iperf 2>&1; echo "FV-RESULT iperf-server-done $?" ;;
  iperf-client)
    for i in $(seq 60); do ping -c 1 -W 1 "$PEER" >/dev/null 2>&1 && break; done
    sleep 2
    if iperf3 -c "$PEER" -t "$SECS" >/tmp/iperf 2>&1; then
      echo "FV-RESULT iperf-ok $(grep receiver /tmp/iperf | tail -1)"
    else echo "FV-RESULT iperf-fail"; cat /tmp/iperf; fi ;;
  idle)
    echo "FV-RESULT idle"
    while true; do sleep 1; done ;;
esac
done
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$OUT/initramfs.gz")
echo "guest ready in $OUT ($pkg)"
