#!/usr/bin/env bash
# Throughput through an IPsec tunnel on one topology, in one run: iperf3 TCP (SECONDS, default 10) over
#   1. the bare veth link (192.0.2.1 -> 192.0.2.2),
#   2. an oxswan <-> oxswan tunnel (examples/left.toml, examples/right.toml),
#   3. a strongSwan <-> strongSwan tunnel with its user-space data plane, kernel-libipsec
#      (examples/strongswan/*.swanctl.conf),
# all AES-256-GCM-16, and prints Gbit/s and the ratios. Root; installs iperf3 and strongSwan (Debian)
# when missing. Everything it creates is removed on exit.
#
#   scripts/bench-throughput.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-10}
P=${PREFIX:-oxbt}
L=${P}-left R=${P}-right
RUN=$(mktemp -d /tmp/oxswan-bench.XXXXXX)
[ "$(id -u)" = 0 ] || { echo "bench-throughput: run as root" >&2; exit 1; }
pkgs=()
command -v iperf3 >/dev/null || pkgs+=(iperf3)
[ -e /usr/lib/ipsec/plugins/libstrongswan-gcm.so ] || pkgs+=(strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins)
if [ ${#pkgs[@]} -gt 0 ]; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
fi
cargo build --release -q -p oxswan
OX=$PWD/target/release/oxswan

cleanup() {
  set +e
  for ns in $L $R; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null; done
  sleep 0.5
  for ns in $L $R; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns del "$ns" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT

hosts() {
  for ns in $L $R; do
    { ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns del "$ns" 2>/dev/null; } || true
  done
  sleep 0.3
  for ns in $L $R; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  ip link add ${P}l0 netns $L type veth peer name ${P}r0 netns $R
  ip -n $L addr add 192.0.2.1/24 dev ${P}l0; ip -n $L link set ${P}l0 up; ip -n $L addr add 10.1.0.1/32 dev lo
  ip -n $R addr add 192.0.2.2/24 dev ${P}r0; ip -n $R link set ${P}r0 up; ip -n $R addr add 10.2.0.1/32 dev lo
}

# iperf3 from left to right between two addresses; prints Gbit/s.
measure() {
  ip netns exec $R iperf3 -s -1 -B "$2" >/dev/null 2>&1 &
  sleep 0.5
  ip netns exec $L iperf3 -c "$2" -B "$1" -t "$T" -J | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  wait
}

charon() { # charon.sh's approach: a private /run and strongswan.conf per instance, TUN via kernel-libipsec
  local ns=$1 dir=$2
  mkdir -p "$dir"/{conf.d,x509,x509ca,private}
  cat > "$dir/strongswan.conf" <<CONF
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm curve25519 pem pkcs1 pkcs8 pubkey kdf kernel-libipsec kernel-netlink socket-default vici updown
  filelog { stderr { default = 0 } }
  plugins { vici { socket = unix:///run/charon.vici } }
}
swanctl { socket = unix:///run/charon.vici }
CONF
  ip netns exec "$ns" unshare -m sh -c "mount --make-rprivate /; mount -t tmpfs tmpfs /run; mount --bind '$dir' /etc/swanctl;
    STRONGSWAN_CONF='$dir/strongswan.conf' /usr/lib/ipsec/charon & sleep 1;
    swanctl --load-all >/dev/null; $3; wait" >"$dir/charon.log" 2>&1 &
}

echo "== bare link, iperf3 ${T}s"
hosts
bare=$(measure 192.0.2.1 192.0.2.2)

echo "== oxswan <-> oxswan"
ip netns exec $R "$OX" --socket "$RUN/r.sock" daemon --config examples/right.toml 2>"$RUN/right.log" &
oxr=$!
ip netns exec $L "$OX" --socket "$RUN/l.sock" daemon --config examples/left.toml 2>"$RUN/left.log" &
oxl=$!
for s in l r; do for _ in $(seq 50); do [ -S "$RUN/$s.sock" ] && break; sleep 0.1; done; done
ip netns exec $L "$OX" --socket "$RUN/l.sock" up site >/dev/null
ox=$(measure 10.1.0.1 10.2.0.1)
kill -TERM $oxl $oxr; wait $oxl $oxr 2>/dev/null || true

echo "== strongSwan <-> strongSwan (kernel-libipsec)"
hosts
cp examples/strongswan/right.swanctl.conf "$RUN/sr/swanctl.conf" 2>/dev/null || { mkdir -p "$RUN/sr" "$RUN/sl"; cp examples/strongswan/right.swanctl.conf "$RUN/sr/swanctl.conf"; }
cp examples/strongswan/left.swanctl.conf "$RUN/sl/swanctl.conf"
charon $R "$RUN/sr" "true"
sleep 1.5
charon $L "$RUN/sl" "swanctl --initiate --child net >/dev/null"
for _ in $(seq 100); do ip netns exec $L ping -c1 -W1 -I 10.1.0.1 10.2.0.1 >/dev/null 2>&1 && break; sleep 0.2; done
sw=$(measure 10.1.0.1 10.2.0.1)

echo
echo "iperf3 TCP ${T}s, AES-256-GCM-16, one veth link between two network namespaces:"
printf "  %-34s %6s Gbit/s\n" "bare link" "$bare" "oxswan <-> oxswan" "$ox" "strongSwan <-> strongSwan (libipsec)" "$sw"
python3 -c "print('  oxswan / strongSwan = %.2f    oxswan / bare link = %.3f' % ($ox/$sw, $ox/$bare))"
