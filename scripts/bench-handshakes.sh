#!/usr/bin/env bash
# Handshakes per second, setup time, responder CPU and memory per SA: oxswan's daemon and strongSwan
# 5.9.8's charon (with its user-space data plane, kernel-libipsec) as the same road-warrior gateway,
# driven by the same generator, `oxswan load`, in one run.
#
#   scripts/bench-handshakes.sh [SIZES] [IN_FLIGHT]
#
# SIZES (default "1000 10000"): numbers of clients, each run against a fresh gateway; IN_FLIGHT
# (default "1 64"): handshakes in flight. Sizes above CHARON_MAX (default 10000) run against oxswan
# alone: charon slows down as it holds more SAs (see docs/benchmarks.md). The gateway lives in a
# network namespace of its own; the clients come from 64 addresses in another, over one veth link.
# Each client: PSK, its own identity, `aes256gcm16-prfsha256-x25519`, ESP `aes256gcm16`, a virtual IP
# from 10.96.0.0/14, everything through the tunnel (0.0.0.0/0). The clients are not deleted before
# the gateway's memory is read: "KiB/SA" is the gateway's growth in resident memory over the run
# divided by the SAs it then holds (IKE SA + CHILD SA + route + lease). Root; installs strongSwan
# (Debian) when it is missing. Everything it creates is removed on exit. OXSWAN_BIN runs that binary
# as the oxswan gateway (another build, to compare) with this tree's as the generator.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-1000 10000}
FLIGHTS=${2:-1 64}
CHARON_MAX=${CHARON_MAX:-10000}
P=${PREFIX:-oxbh}
GW=${P}-gw CL=${P}-cl
RUN=$(mktemp -d /tmp/oxswan-bench-hs.XXXXXX)
[ "$(id -u)" = 0 ] || { echo "bench-handshakes: run as root" >&2; exit 1; }
if [ ! -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ]; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins >/dev/null
fi
cargo build --release -q -p oxswan
OX=$PWD/target/release/oxswan
GWBIN=$OX
[ -z "${OXSWAN_BIN:-}" ] || GWBIN=$(realpath "$OXSWAN_BIN")
PSK="handshake benchmark pre-shared key"
printf '%s\n' "$PSK" >"$RUN/psk"

cleanup() {
  set +e
  for ns in $GW $CL; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns del "$ns" 2>/dev/null; done
  rm -rf "$RUN"
}
trap cleanup EXIT

hosts() {
  for ns in $GW $CL; do { ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns"; } 2>/dev/null || true; done
  sleep 0.2
  for ns in $GW $CL; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  ip link add ${P}g0 netns $GW type veth peer name ${P}c0 netns $CL
  ip -n $GW addr add 10.88.0.1/16 dev ${P}g0; ip -n $GW link set ${P}g0 up
  ip -n $CL addr add 10.88.0.2/16 dev ${P}c0; ip -n $CL link set ${P}c0 up
  for i in $(seq 1 64); do echo "addr add 10.88.1.$i/16 dev ${P}c0"; done | ip -n $CL -batch -
}

# CPU seconds (user + system) of PID so far.
cpu() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
# Resident memory of PID in KiB.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

oxswan_gw() {
  cat >"$RUN/gw.toml" <<EOF
[daemon]
socket = "$RUN/gw.sock"
tun = "${P}tun"
log = "warn"

[pools.rw]
addrs = "10.96.0.0/14"

[connections.rw]
local_addrs = ["10.88.0.1"]
proposals   = ["aes256gcm16-prfsha256-x25519"]
pools       = ["rw"]
unique      = "never"

[connections.rw.local]
auth = "psk"
id   = "gw.bench"

[connections.rw.remote]
auth = "psk"

[connections.rw.children.net]
local_ts      = ["0.0.0.0/0"]
remote_ts     = ["dynamic"]
esp_proposals = ["aes256gcm16"]

[[secrets.ike]]
ids    = ["gw.bench"]
secret = "$PSK"
EOF
  rm -f "$RUN/gw.sock"
  ip netns exec $GW "$GWBIN" daemon --config "$RUN/gw.toml" 2>"$RUN/gw.log" &
  GWPID=$!
  for _ in $(seq 100); do [ -S "$RUN/gw.sock" ] && return 0; sleep 0.1; done
  echo "oxswan gateway did not start:" >&2; cat "$RUN/gw.log" >&2; exit 1
}

charon_gw() {
  local dir=$RUN/charon
  rm -rf "$dir"; mkdir -p "$dir"/{conf.d,x509,x509ca,private}
  # Logging off (as oxswan's "warn"): a log line per SA would be charon's bottleneck, not IKE.
  cat >"$dir/strongswan.conf" <<CONF
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm curve25519 pem pkcs1 pkcs8 pubkey kdf attr kernel-libipsec kernel-netlink socket-default vici
  filelog { stderr { default = 0 } }
  plugins { vici { socket = unix:///run/charon.vici } }
}
swanctl { socket = unix:///run/charon.vici }
CONF
  # swanctl.conf: a value runs to the end of its line, so every brace is on a line of its own.
  cat >"$dir/swanctl.conf" <<CONF
connections {
  rw {
    version = 2
    local_addrs = 10.88.0.1
    proposals = aes256gcm16-prfsha256-x25519
    pools = rw
    unique = never
    local {
      auth = psk
      id = gw.bench
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = 0.0.0.0/0
        esp_proposals = aes256gcm16
      }
    }
  }
}
pools {
  rw {
    addrs = 10.96.0.0/14
  }
}
secrets {
  ike-1 {
    # No id: charon looks the key up before it has taken its own identity from the connection
    # (the clients send no IDr), so a key bound to gw.bench is not found.
    secret = "$PSK"
  }
}
CONF
  ip netns exec $GW unshare -m sh -c "mount --make-rprivate /; mount -t tmpfs tmpfs /run; mount --bind '$dir' /etc/swanctl;
    STRONGSWAN_CONF='$dir/strongswan.conf' exec /usr/lib/ipsec/charon" >"$dir/charon.log" 2>&1 &
  GWPID=
  for _ in $(seq 100); do
    for p in $(pgrep -x charon || true); do [ "$(ip netns identify "$p")" = "$GW" ] && GWPID=$p; done
    [ -n "$GWPID" ] && nsenter -t "$GWPID" -m -n test -S /run/charon.vici && break
    sleep 0.1
  done
  [ -n "$GWPID" ] || { echo "charon did not start" >&2; exit 1; }
  nsenter -t "$GWPID" -m -n swanctl --load-all >/dev/null 2>&1
}

# run IMPL N K: one fresh gateway, N clients, K in flight; appends a JSON line to $RUN/results.
run() {
  local impl=$1 n=$2 k=$3
  hosts
  if [ "$impl" = oxswan ]; then oxswan_gw; else charon_gw; fi
  # The gateway learns the 64 sources' link-layer address before the clock starts (and they its),
  # as on a network that carried traffic before: otherwise the first handshakes from each source
  # wait for neighbour resolution, for both gateways alike.
  local pings=()
  for i in $(seq 1 64); do ip netns exec $GW ping -q -c 1 -W 1 -I 10.88.0.1 "10.88.1.$i" >/dev/null 2>&1 & pings+=($!); done
  wait "${pings[@]}" || true
  sleep 0.5
  local rss0 cpu0 rss1 cpu1
  rss0=$(rss "$GWPID"); cpu0=$(cpu "$GWPID")
  ip netns exec $CL "$OX" load 10.88.0.1 --source 10.88.1.1-10.88.1.64 -n "$n" -k "$k" --psk-file "$RUN/psk" \
    --id 'load{n}.bench' --no-delete --timeout 60 --max-time 1200 --json --quiet >"$RUN/load.json" || true
  rss1=$(rss "$GWPID"); cpu1=$(cpu "$GWPID")
  kill -9 "$GWPID" 2>/dev/null; wait 2>/dev/null || true
  python3 - "$impl" "$n" "$k" "$rss0" "$rss1" "$cpu0" "$cpu1" "$RUN/load.json" >>"$RUN/results" <<'PY'
import json, sys
impl, n, k, rss0, rss1, cpu0, cpu1, path = sys.argv[1:]
r = json.load(open(path))
up = max(r["established"], 1)
print(json.dumps({"impl": impl, "n": int(n), "k": int(k), "rate": r["rate"], "p50": r["setup_ms"]["p50"],
    "p99": r["setup_ms"]["p99"], "first": (r["tenths"] or {}).get("first"), "last": (r["tenths"] or {}).get("last"),
    "established": r["established"], "failed": r["failed"], "failures": r["failures"],
    "cpu": float(cpu1) - float(cpu0), "kib_per_sa": (int(rss1) - int(rss0)) / up}))
PY
  tail -1 "$RUN/results" >&2
}

for n in $SIZES; do
  for k in $FLIGHTS; do
    # One at a time is a latency figure: 1,000 handshakes tell it as well as more.
    [ "$k" = 1 ] && [ "$n" -gt 1000 ] && continue
    run oxswan "$n" "$k"
    [ "$n" -le "$CHARON_MAX" ] && run charon "$n" "$k"
  done
done

python3 - "$RUN/results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["impl"], r["n"], r["k"]): r for r in rows}
f = lambda v, fmt: "-" if v is None else fmt % v
print()
print("Handshakes against one gateway (PSK, aes256gcm16-prfsha256-x25519, ESP aes256gcm16, a virtual IP each, 64 source addresses):")
print("| clients | in flight | oxswan /s | charon /s | ratio | oxswan p50 / p99 ms | charon p50 / p99 ms | oxswan first→last tenth /s | charon first→last tenth /s | oxswan CPU s | charon CPU s | oxswan KiB/SA | charon KiB/SA | failed (ox / charon) |")
print("|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|---:|---|")
for (impl, n, k), o in sorted((key, r) for key, r in by.items() if key[0] == "oxswan"):
    c = by.get(("charon", n, k))
    g = lambda key, fmt: f(c[key], fmt) if c else "-"
    ratio = "%.2f" % (o["rate"] / c["rate"]) if c and c["rate"] else "-"
    print("| %d | %d | %.0f | %s | %s | %.1f / %.1f | %s | %s → %s | %s | %.1f | %s | %.1f | %s | %d / %s |" % (
        n, k, o["rate"], g("rate", "%.0f"), ratio, o["p50"], o["p99"],
        (g("p50", "%.1f") + " / " + g("p99", "%.1f")) if c else "-",
        f(o["first"], "%.0f"), f(o["last"], "%.0f"),
        (g("first", "%.0f") + " → " + g("last", "%.0f")) if c else "-",
        o["cpu"], g("cpu", "%.1f"), o["kib_per_sa"], g("kib_per_sa", "%.1f"), o["failed"], g("failed", "%d")))
for r in rows:
    if r["failures"]:
        print("  %s n=%d k=%d failures: %s" % (r["impl"], r["n"], r["k"], r["failures"]))
PY
