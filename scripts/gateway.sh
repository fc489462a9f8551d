#!/usr/bin/env bash
# oxswan gateway quick start: builds oxswan, makes a road-warrior gateway with `oxswan setup gateway`
# and a user with `oxswan client add` on a host in a network namespace, starts its daemon, connects an
# oxswan client (a second host, behind a router) from the profile `client add` wrote, pings through the
# tunnel, and shows both sides' status and the profiles made for iOS/macOS, Android, Windows and Linux.
# Needs root (namespaces, TUN) and a Debian-like system; installs iproute2 and iputils-ping if missing.
# Everything it creates is removed on exit.
#
#   sudo scripts/gateway.sh            # or: PREFIX=gw2 scripts/gateway.sh to run beside another
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PREFIX:-oxgq}
G=${P}-gw C=${P}-client
RUN=$(mktemp -d /tmp/oxswan-gateway.XXXXXX)

[ "$(id -u)" = 0 ] || { echo "gateway: run as root (network namespaces and a TUN device need it)" >&2; exit 1; }
need=()
# protoc: the etcd client crate (oxswan-cluster) generates its gRPC code at build time.
for tool in ip:iproute2 ping:iputils-ping protoc:protobuf-compiler; do
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
  for ns in $G $C; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null; done
  sleep 0.5
  for ns in $G $C; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$RUN" "/etc/netns/$C"
}
trap cleanup EXIT

echo "== the gateway $G (192.0.2.2, serving 10.2.0.1) and a client $C (198.51.100.10, routed to it)"
for ns in $G $C; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add ${P}g0 netns $G type veth peer name ${P}c0 netns $C
ip -n $G addr add 192.0.2.2/24 dev ${P}g0; ip -n $G link set ${P}g0 up; ip -n $G addr add 10.2.0.1/32 dev lo
ip -n $G addr add 198.51.100.1/24 dev ${P}g0
ip -n $C addr add 198.51.100.10/24 dev ${P}c0; ip -n $C link set ${P}c0 up
ip -n $C route add default via 198.51.100.1
# The client applies the DNS server the gateway sends: `ip netns exec` gives it a resolv.conf of its own.
mkdir -p "/etc/netns/$C" && cp /etc/resolv.conf "/etc/netns/$C/resolv.conf"

echo "== oxswan setup gateway --name vpn.example.com --address 192.0.2.2 --dir $RUN/etc"
ip netns exec $G "$OX" setup gateway --name vpn.example.com --address 192.0.2.2 --dns 10.2.0.1 --dir "$RUN/etc"

echo "== oxswan client add alice"
ip netns exec $G "$OX" --socket "$RUN/gw.sock" client add alice --dir "$RUN/etc"

echo "== starting the gateway (log in $RUN/gw.log)"
ip netns exec $G "$OX" --socket "$RUN/gw.sock" daemon --config "$RUN/etc/oxswan.toml" 2>"$RUN/gw.log" &
for _ in $(seq 50); do [ -S "$RUN/gw.sock" ] && break; sleep 0.1; done

echo "== the client: oxswan daemon --config clients/alice/alice.toml (log in $RUN/client.log)"
ip netns exec $C "$OX" --socket "$RUN/client.sock" daemon --config "$RUN/etc/clients/alice/alice.toml" 2>"$RUN/client.log" &
for _ in $(seq 100); do
  ip netns exec $C "$OX" --socket "$RUN/client.sock" status 2>/dev/null | grep -q "local virtual IPs" && break
  sleep 0.1
done
VIP=$(ip netns exec $C "$OX" --socket "$RUN/client.sock" status | awk '/local virtual IPs/ { print $4; exit }')
[ -n "$VIP" ] || { echo "gateway: the client got no virtual IP"; cat "$RUN/client.log" "$RUN/gw.log"; exit 1; }

echo "== ping from the client's virtual IP $VIP to 10.2.0.1 through the tunnel"
ip netns exec $C ping -c 3 -i 0.2 -I "$VIP" 10.2.0.1

echo "== oxswan status (gateway)"
ip netns exec $G "$OX" --socket "$RUN/gw.sock" status

echo "== oxswan client list, and alice's profiles"
"$OX" client list --dir "$RUN/etc"
ls -l "$RUN/etc/clients/alice"
echo "gateway: done"
