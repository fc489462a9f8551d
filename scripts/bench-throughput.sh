#!/usr/bin/env bash
# Throughput and latency through an IPsec tunnel on one topology, in one run, over
#   1. the bare veth link (192.0.2.1 -> 192.0.2.2),
#   2. an oxswan <-> oxswan tunnel (examples/left.toml, examples/right.toml),
#   2b. the same with per-resource CHILD SAs (RFC 9611, `per_cpu_sas = true` on both children): a
#      pair for each data-plane worker besides the fallback,
#   3. a strongSwan <-> strongSwan tunnel with its user-space data plane, kernel-libipsec
#      (examples/strongswan/*.swanctl.conf),
# all AES-256-GCM-16, each for SECONDS (default 10):
#   - iperf3 TCP, one flow and four (-P 4: what several TUN queues and workers can spread), Gbit/s;
#   - iperf3 UDP, 200-octet datagrams as fast as they go (-u -l 200 -b 0), datagrams per second the
#     receiving side got;
#   - ping (every 10 ms) through the path while one TCP flow saturates it: RTT p50 and p99.
# Prints the figures side by side and the ratios. Root; installs iperf3, ping and strongSwan (Debian) when
# missing. Everything it creates (namespaces, their processes, the run directory) is removed on exit.
#
#   scripts/bench-throughput.sh [SECONDS]
# PREFIX names the namespaces and links (default oxbt); OXSWAN_BIN measures that binary instead of
# building this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-10}
P=${PREFIX:-oxbt}
L=${P}-left R=${P}-right
RUN=$(mktemp -d /tmp/oxswan-bench.XXXXXX)
[ "$(id -u)" = 0 ] || { echo "bench-throughput: run as root" >&2; exit 1; }
pkgs=()
command -v iperf3 >/dev/null || pkgs+=(iperf3)
command -v ping >/dev/null || pkgs+=(iputils-ping)
[ -e /usr/lib/ipsec/plugins/libstrongswan-gcm.so ] || pkgs+=(strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins)
if [ ${#pkgs[@]} -gt 0 ]; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
fi
if [ -n "${OXSWAN_BIN:-}" ]; then # another build's binary, e.g. of an earlier revision, to compare
  OX=$(realpath "$OXSWAN_BIN")
else
  cargo build --release -q -p oxswan
  OX=${CARGO_TARGET_DIR:-$PWD/target}/release/oxswan
fi

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

# One iperf3 test from left ($1) to right ($2), the rest of the arguments iperf3's; prints the JSON.
iperf() {
  local src=$1 dst=$2; shift 2
  ip netns exec $R iperf3 -s -1 -B "$dst" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.5
  ip netns exec $L iperf3 -c "$dst" -B "$src" -t "$T" -J "$@" || true
  wait $srv || true
}

# TCP Gbit/s as received, the rest of the arguments iperf3's (-P 4).
tcp() {
  iperf "$@" | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}

# 200-octet UDP datagrams per second that reached the receiving side (its own count, not the sender's).
udp() {
  iperf "$1" "$2" -u -l 200 -b 0 | python3 -c '
import json, sys
s = json.load(sys.stdin)["end"]["sum_received"]
print("%.0f" % (s["bytes"] / 200 / s["seconds"]))'
}

# Ping RTT p50 and p99 in ms (and the share of pings lost) while one TCP flow saturates the path.
loaded_ping() {
  local src=$1 dst=$2 n=$(( (T - 2) * 100 ))
  ip netns exec $R iperf3 -s -1 -B "$dst" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.5
  ip netns exec $L iperf3 -c "$dst" -B "$src" -t "$T" >/dev/null 2>&1 &
  local cli=$!
  sleep 1
  ip netns exec $L ping -n -i 0.01 -W 1 -c "$n" -I "$src" "$dst" >"$RUN/ping.txt" 2>&1 || true
  wait $cli $srv || true
  python3 - "$n" "$RUN/ping.txt" <<'PY'
import re, sys
n, path = int(sys.argv[1]), sys.argv[2]
rtt = sorted(float(m) for m in re.findall(r"time=([0-9.]+) ms", open(path).read()))
q = lambda p: rtt[min(len(rtt) - 1, int(p * len(rtt)))] if rtt else float("nan")
print("%.3f %.3f %.1f" % (q(0.50), q(0.99), 100.0 * (n - len(rtt)) / n))
PY
}

# All four measurements between two addresses: "tcp1 tcp4 udp p50 p99 loss".
measure() {
  echo "   TCP, one flow" >&2; local t1; t1=$(tcp "$1" "$2")
  echo "   TCP, four flows" >&2; local t4; t4=$(tcp "$1" "$2" -P 4)
  echo "   UDP, 200-octet datagrams" >&2; local u; u=$(udp "$1" "$2")
  echo "   ping under TCP load" >&2; local p; p=$(loaded_ping "$1" "$2")
  echo "$t1 $t4 $u $p"
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

echo "== bare link, ${T}s per test"
hosts
bare=$(measure 192.0.2.1 192.0.2.2)

# Both oxswan daemons from configurations $1 (left) and $2 (right), the tunnel up; then measure.
oxswan_pair() {
  ip netns exec $R "$OX" --socket "$RUN/r.sock" daemon --config "$2" 2>"$RUN/right.log" &
  local oxr=$!
  ip netns exec $L "$OX" --socket "$RUN/l.sock" daemon --config "$1" 2>"$RUN/left.log" &
  local oxl=$!
  for s in l r; do for _ in $(seq 50); do [ -S "$RUN/$s.sock" ] && break; sleep 0.1; done; done
  ip netns exec $L "$OX" --socket "$RUN/l.sock" up site >/dev/null
  sleep 0.5 # the per-resource pairs follow the first in CREATE_CHILD_SA exchanges
  local pairs; pairs=$(ip netns exec $L "$OX" --socket "$RUN/l.sock" status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["ike_sas"][0]["children"]))')
  echo "   $pairs CHILD SA pair(s)" >&2
  measure 10.1.0.1 10.2.0.1
  kill -TERM $oxl $oxr; wait $oxl $oxr 2>/dev/null || true
  rm -f "$RUN/l.sock" "$RUN/r.sock"
}

echo "== oxswan <-> oxswan"
ox=$(oxswan_pair examples/left.toml examples/right.toml)

echo "== oxswan <-> oxswan, per-resource CHILD SAs (per_cpu_sas)"
for s in left right; do
  sed 's/^esp_proposals = \(.*\)$/esp_proposals = \1\nper_cpu_sas = true/' "examples/$s.toml" >"$RUN/$s-pc.toml"
  grep -q '^per_cpu_sas = true' "$RUN/$s-pc.toml" || { echo "bench-throughput: no child in examples/$s.toml" >&2; exit 1; }
done
pc=$(oxswan_pair "$RUN/left-pc.toml" "$RUN/right-pc.toml")

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
python3 - "$T" "$bare" "$ox" "$pc" "$sw" <<'PY'
import sys
t = sys.argv[1]
rows = [r.split() for r in sys.argv[2:]]
b, o, p, s = [[float(x) for x in r] for r in rows]
print("%ss each, AES-256-GCM-16, one veth link between two network namespaces:" % t)
print("  %-36s %10s %10s %10s %12s %8s %8s %8s" % ("", "bare link", "oxswan", "ox per-CPU", "strongSwan", "ox/sw", "pc/sw", "ox/bare"))
names = ["TCP, 1 flow, Gbit/s", "TCP, 4 flows (-P 4), Gbit/s", "UDP 200 B, datagrams/s received",
         "ping under TCP load, p50 ms", "ping under TCP load, p99 ms", "ping under TCP load, % lost"]
for i, name in enumerate(names):
    fmt = "%10.0f" if i == 2 else "%10.2f" if i < 2 else "%10.3f" if i < 5 else "%10.1f"
    ratio = lambda a, c: ("%8.2f" % (a / c)) if c else "%8s" % "-"
    print("  %-36s " % name + fmt % b[i] + " " + fmt % o[i] + " " + fmt % p[i] + "  " + fmt % s[i] + " "
          + ratio(o[i], s[i]) + " " + ratio(p[i], s[i]) + " " + ratio(o[i], b[i]))
PY
