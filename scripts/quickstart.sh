#!/usr/bin/env bash
# oxswan quick start: builds oxswan, starts two hosts in network namespaces, each with an oxswan daemon
# (examples/left.toml, examples/right.toml), brings the tunnel up, pings across it, runs a short iperf3
# and prints what it did. Needs root (namespaces, TUN) and a Debian-like system; installs iproute2,
# iputils-ping and iperf3 if they are missing. Everything it creates is removed on exit.
#
#   sudo scripts/quickstart.sh            # or: PREFIX=qs2 scripts/quickstart.sh to run beside another
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PREFIX:-oxqs}
L=${P}-left R=${P}-right
RUN=$(mktemp -d /tmp/oxswan-quickstart.XXXXXX)

[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (network namespaces and a TUN device need it)" >&2; exit 1; }
need=()
# protoc: the etcd client crate (oxswan-cluster) generates its gRPC code at build time.
for tool in ip:iproute2 ping:iputils-ping iperf3:iperf3 protoc:protobuf-compiler; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
# ... and the well-known types its .proto files import (libprotobuf-dev, which protoc only recommends).
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

echo "== building oxswan (release)"
cargo build --release -q -p oxswan
OX=$PWD/target/release/oxswan

cleanup() {
  set +e
  for ns in $L $R; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null
  done
  sleep 0.5
  for ns in $L $R; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT

echo "== two hosts: $L (192.0.2.1, protects 10.1.0.1) and $R (192.0.2.2, protects 10.2.0.1)"
for ns in $L $R; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add ${P}l0 netns $L type veth peer name ${P}r0 netns $R
ip -n $L addr add 192.0.2.1/24 dev ${P}l0; ip -n $L link set ${P}l0 up; ip -n $L addr add 10.1.0.1/32 dev lo
ip -n $R addr add 192.0.2.2/24 dev ${P}r0; ip -n $R link set ${P}r0 up; ip -n $R addr add 10.2.0.1/32 dev lo

echo "== starting the daemons (logs in $RUN)"
ip netns exec $R "$OX" --socket "$RUN/right.sock" daemon --config examples/right.toml 2>"$RUN/right.log" &
ip netns exec $L "$OX" --socket "$RUN/left.sock" daemon --config examples/left.toml 2>"$RUN/left.log" &
for s in left right; do
  for _ in $(seq 50); do [ -S "$RUN/$s.sock" ] && break; sleep 0.1; done
done

echo "== oxswan up site"
ip netns exec $L "$OX" --socket "$RUN/left.sock" up site

echo "== ping 10.1.0.1 -> 10.2.0.1 through the tunnel"
ip netns exec $L ping -c 3 -i 0.2 -I 10.1.0.1 10.2.0.1

echo "== iperf3, 3 seconds, 10.1.0.1 -> 10.2.0.1 (TCP through ESP in UDP, AES-256-GCM)"
ip netns exec $R iperf3 -s -1 -B 10.2.0.1 >/dev/null 2>&1 &
sleep 0.5
ip netns exec $L iperf3 -c 10.2.0.1 -B 10.1.0.1 -t 3 | tail -4

echo "== oxswan status (left)"
ip netns exec $L "$OX" --socket "$RUN/left.sock" status

echo "== oxswan down site"
ip netns exec $L "$OX" --socket "$RUN/left.sock" down site
echo "quickstart: done"
