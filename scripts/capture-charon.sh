#!/usr/bin/env bash
# Captures a real IKEv2 exchange between two strongSwan charons, with the initiator's key material.
#
#   scripts/capture-charon.sh OUTDIR [KEYDIR]
#
# Starts two test hosts in network namespaces (/work/shared/interop/hosts.sh, prefix $OXCAP_PREFIX,
# default "oxcap"), one charon in each with the examples/psk-left|psk-right configurations and a
# strongswan.conf that logs ike/enc/chd at level 4 (key material as %B hex dumps), captures UDP 500/4500
# on the left host's veth, initiates CHILD_SA "net" from the left, sends one UDP datagram each way
# through the tunnel (ESP in UDP), deletes the IKE SA, stops everything, and then writes:
#
#   OUTDIR/charon-psk.pcap            the capture
#   OUTDIR/charon-psk-<exchange>-<req|resp>.bin   each IKE message (the UDP payload, non-ESP marker removed)
#   OUTDIR/charon-psk-esp-<n>-<i2r|r2i>.bin       each ESP packet (UDP-encapsulated, RFC 3948), UDP header removed
#   OUTDIR/charon-psk-*.sk-plain.bin             the decrypted content of each SK payload, from charon's log
#   OUTDIR/charon-psk-index.txt                  one line per file: direction, ports, length, header summary
#   OUTDIR/README.md                             what the files are
#   KEYDIR/charon-left.log                       the initiator's charon log
#   KEYDIR/charon-psk-x25519-aes256gcm.txt       "name = hex" lines parsed from the left log
#
# The extraction fails if a message is missing or repeated (a retransmission or a second attempt), or if a
# logged value disagrees with the capture or with a recomputation (HMAC-SHA-256) of the key derivation.
#
# KEYDIR defaults to OUTDIR. Run as root. A trap stops both charons and tcpdump and removes the
# namespaces on every exit path.
set -euo pipefail

OUT=${1:?usage: capture-charon.sh OUTDIR [KEYDIR]}
KEYS=${2:-$OUT}
P=${OXCAP_PREFIX:-oxcap}
KIT=${OXSWAN_INTEROP:-/work/shared/interop}
L=${P}left R=${P}right

[ "$(id -u)" = 0 ] || { echo "capture-charon.sh: run as root" >&2; exit 1; }
for ns in $L $R; do
  if ip netns list | grep -qw "$ns"; then
    echo "capture-charon.sh: namespace $ns exists already (another run?); set OXCAP_PREFIX" >&2
    exit 1
  fi
done
mkdir -p "$OUT" "$KEYS"
OUT=$(readlink -f "$OUT") KEYS=$(readlink -f "$KEYS")

TMP=$(mktemp -d /tmp/oxcap.XXXXXX)
LEFT_PID= RIGHT_PID= DUMP_PID= ECHO_PID= HOSTS_UP=

stop_pid() { # stop one process we started, by its id
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  stop_pid "$ECHO_PID"
  stop_pid "$DUMP_PID"
  stop_pid "$LEFT_PID"
  stop_pid "$RIGHT_PID"
  [ -n "$HOSTS_UP" ] && "$KIT/hosts.sh" down "$P"
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_charon() { # NETNS CONFDIR EXAMPLE -> sets REPLY to charon's pid
  local ns=$1 dir=$2 example=$3 pid i
  for d in conf.d x509 x509ca x509aa x509ac x509crl x509ocsp private pubkey rsa ecdsa bliss pkcs8 pkcs12; do
    mkdir -p "$dir/$d"
  done
  cp "$KIT/examples/$example/swanctl.conf" "$dir/swanctl.conf"
  # As charon.sh writes it, but with the key material logged: ike/chd = 4 print SKEYSEED, SK_* and KEYMAT
  # as %B hex dumps, enc = 4 the payload parsing and generating. One setting per line: a value runs to
  # the end of its line, so "default = 1 ike = 4" on one line would set only default (to "1 ike = 4").
  cat > "$dir/strongswan.conf" <<CONF
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm chapoly curve25519 x509 pem pkcs1 pkcs8 pubkey kdf constraints revocation eap-identity eap-md5 eap-mschapv2 eap-tls kernel-libipsec kernel-netlink socket-default vici updown
  filelog {
    stderr {
      default = 1
      ike = 4
      enc = 4
      cfg = 2
      chd = 4
      net = 2
    }
  }
  plugins { vici { socket = unix:///run/charon.vici } }
}
swanctl { socket = unix:///run/charon.vici }
CONF
  # ip netns exec, unshare (without --fork) and sh all exec, so $! ends up being charon itself.
  ip netns exec "$ns" unshare -m sh -c "
    mount --make-rprivate /; mount -t tmpfs tmpfs /run
    mount --bind '$dir' /etc/swanctl
    STRONGSWAN_CONF='$dir/strongswan.conf' exec /usr/lib/ipsec/charon" >"$dir/charon.log" 2>&1 &
  pid=$!
  REPLY=$pid
  for i in $(seq 100); do
    if [ "$(cat /proc/$pid/comm 2>/dev/null)" = charon ] && nsenter -t "$pid" -m -n test -S /run/charon.vici; then
      nsenter -t "$pid" -m -n swanctl --load-all >/dev/null
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "charon in $ns did not start; its log:" >&2
  cat "$dir/charon.log" >&2
  return 1
}

swanctl_in() { local pid=$1; shift; nsenter -t "$pid" -m -n swanctl "$@"; }

HOSTS_UP=1
"$KIT/hosts.sh" up "$P"

mkdir -p "$TMP/left" "$TMP/right"
start_charon "$L" "$TMP/left" psk-left; LEFT_PID=$REPLY
start_charon "$R" "$TMP/right" psk-right; RIGHT_PID=$REPLY

# --immediate-mode: otherwise libpcap batches packets in its ring buffer for up to a block timeout, and
# stopping tcpdump loses them ("8 packets received by filter, 0 packets captured").
ip netns exec "$L" tcpdump -i "${P}l0" --immediate-mode -n -U -s 0 -w "$TMP/capture.pcap" 'udp port 500 or udp port 4500' \
  2>"$TMP/tcpdump.log" &
DUMP_PID=$!
for _ in $(seq 50); do grep -q "listening on" "$TMP/tcpdump.log" && break; sleep 0.1; done
grep -q "listening on" "$TMP/tcpdump.log" || { cat "$TMP/tcpdump.log" >&2; exit 1; }

swanctl_in "$LEFT_PID" --initiate --child net --timeout 20 >"$TMP/initiate.log"
# One UDP datagram each way through the tunnel (there is no ping here): ESP in UDP 4500, for tests of
# the CHILD SA keys. The right host echoes one datagram on 10.2.0.1:7777.
ip netns exec "$R" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.2.0.1", 7777)); s.settimeout(10)
d, a = s.recvfrom(2048); s.sendto(d, a)' &
ECHO_PID=$!
for _ in $(seq 50); do ip netns exec "$R" ss -Hlun 'sport = :7777' | grep -q . && break; sleep 0.1; done
ip netns exec "$L" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.1.0.1", 7777)); s.settimeout(5)
s.sendto(b"oxswan capture\n", ("10.2.0.1", 7777)); assert s.recv(2048) == b"oxswan capture\n"'
wait "$ECHO_PID"; ECHO_PID=
swanctl_in "$LEFT_PID" --list-sas >"$TMP/list-sas.txt"
swanctl_in "$LEFT_PID" --terminate --ike net --timeout 20 >"$TMP/terminate.log"
sleep 0.5
stop_pid "$DUMP_PID"; DUMP_PID=
stop_pid "$LEFT_PID"; LEFT_PID=
stop_pid "$RIGHT_PID"; RIGHT_PID=

cp "$TMP/capture.pcap" "$OUT/charon-psk.pcap"
cp "$TMP/left/charon.log" "$KEYS/charon-left.log"
python3 - "$OUT/charon-psk.pcap" "$OUT" "$KEYS/charon-left.log" "$KEYS/charon-psk-x25519-aes256gcm.txt" \
  "$TMP/right/charon.log" <<'PY'
"""Splits the capture into one file per IKE message / ESP packet and parses the left charon's log."""
import re
import struct
import sys

pcap_path, out_dir, left_log, key_path, right_log = sys.argv[1:6]
EXCHANGES = {34: "ike_sa_init", 35: "ike_auth", 36: "create_child_sa", 37: "informational"}


def die(msg):
    sys.exit("capture-charon.sh: " + msg)


# --- pcap: classic libpcap format, Ethernet or Linux cooked, IPv4, UDP -------------------------------
def udp_datagrams(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        die("not a classic pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _sec, _frac, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if incl != orig:
            die("truncated frame in capture")
        if linktype == 1:
            ethertype, l3 = struct.unpack(">H", frame[12:14])[0], frame[14:]
        elif linktype == 113:
            ethertype, l3 = struct.unpack(">H", frame[14:16])[0], frame[16:]
        else:
            die("unexpected link type %d" % linktype)
        if ethertype != 0x0800 or l3[9] != 17:
            continue
        ihl = (l3[0] & 0x0F) * 4
        total = struct.unpack(">H", l3[2:4])[0]
        src, dst = ".".join(map(str, l3[12:16])), ".".join(map(str, l3[16:20]))
        udp = l3[ihl:total]
        sport, dport, ulen = struct.unpack(">HHH", udp[:6])
        yield src, sport, dst, dport, udp[8:ulen]


def payload_chain(msg):
    """(type, body) of each payload of an IKE message; the SK payload ends the chain."""
    nxt, off, out = msg[16], 28, []
    while nxt != 0:
        ty = nxt
        nxt, length = msg[off], struct.unpack(">H", msg[off + 2:off + 4])[0]
        out.append((ty, nxt, msg[off + 4:off + length]))
        off += length
        if ty == 46:
            break
    if off != len(msg):
        die("payload chain does not cover the message")
    return out


index, messages, seen, esp_n = [], {}, set(), 0
for src, sport, dst, dport, payload in udp_datagrams(pcap_path):
    where = "%s:%d -> %s:%d" % (src, sport, dst, dport)
    if 4500 in (sport, dport):
        if payload == b"\xff":
            index.append("(NAT-T keepalive)  %s" % where)
            continue
        if payload[:4] != b"\0\0\0\0":
            esp_n += 1
            spi, seq = struct.unpack(">II", payload[:8])
            name = "charon-psk-esp-%d-%s.bin" % (esp_n, "i2r" if src == "192.0.2.1" else "r2i")
            open("%s/%s" % (out_dir, name), "wb").write(payload)
            index.append("%s  %s  ESP-in-UDP  %d octets  SPI %08x seq %d" % (name, where, len(payload), spi, seq))
            continue
        payload, marker = payload[4:], "non-ESP marker stripped"
    else:
        marker = "no marker"
    if len(payload) < 28 or struct.unpack(">I", payload[24:28])[0] != len(payload):
        die("bad IKE message in capture: %s" % where)
    xchg, flags, mid = payload[18], payload[19], struct.unpack(">I", payload[20:24])[0]
    kind = "resp" if flags & 0x20 else "req"
    key = (xchg, mid, kind)
    if key in seen:
        die("retransmitted or repeated message %r: not a clean capture" % (key,))
    seen.add(key)
    name = "charon-psk-%s-%s.bin" % (EXCHANGES.get(xchg, "x%d" % xchg), kind)
    open("%s/%s" % (out_dir, name), "wb").write(payload)
    messages[(xchg, kind)] = payload
    index.append("%s  %s  %s  %d octets  exchange %d flags %#04x message ID %d"
                 % (name, where, marker, len(payload), xchg, flags, mid))
for need in [(34, "req"), (34, "resp"), (35, "req"), (35, "resp")]:
    if need not in messages:
        die("missing %s %s in capture" % need)
with open("%s/charon-psk-index.txt" % out_dir, "w") as f:
    f.write("# Datagrams of charon-psk.pcap in capture order (written by scripts/capture-charon.sh).\n")
    f.write("\n".join(index) + "\n")


# --- charon log: %B hex dumps ------------------------------------------------------------------------
LINE = re.compile(r"^(\d\d)\[(\w+)\] (.*)$")
DUMP = re.compile(r"^(.*?) => (\d+) bytes @ (?:0x[0-9a-f]+|\(nil\))$")
ROW = re.compile(r"^\s+(\d+): (.*)$")


def dumps(path):
    """[(thread, group, label, bytes)] in log order; rows of a dump are matched to it by thread."""
    out, open_dump = [], {}
    for raw in open(path, encoding="utf-8", errors="replace"):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        thread, group, text = m.groups()
        cur = open_dump.get(thread)
        row = ROW.match(text)
        if cur is not None and row and int(row.group(1)) == len(cur[3]):
            want = min(16, cur[4] - len(cur[3]))
            cur[3].extend(bytes.fromhex("".join(row.group(2).split()[:want])))
            if len(cur[3]) == cur[4]:
                out.append((cur[0], cur[1], cur[2], bytes(cur[3])))
                del open_dump[thread]
            continue
        if cur is not None:
            die("incomplete hex dump %r in %s" % (cur[2], path))
        d = DUMP.match(text)
        if d:
            n = int(d.group(2))
            if n == 0:
                out.append((thread, group, d.group(1).strip(), b""))
            else:
                open_dump[thread] = [thread, group, d.group(1).strip(), bytearray(), n]
        else:
            out.append((thread, group, text, None))  # a plain line, kept for context
    return out


left = dumps(left_log)


def all_of(label, group="IKE"):
    return [v for (_t, g, lab, v) in left if g == group and lab == label and v is not None]


def one(label, group="IKE"):
    vals = all_of(label, group)
    if len(vals) != 1:
        die("expected one %r dump in the left log, found %d (a second IKE SA attempt?)" % (label, len(vals)))
    return vals[0]


keys = []  # (name, value, comment)
spi_i, spi_r = messages[(34, "resp")][0:8], messages[(34, "resp")][8:16]
if messages[(34, "req")][0:8] != spi_i or messages[(34, "req")][8:16] != b"\0" * 8:
    die("IKE_SA_INIT SPIs disagree")
init_payloads = {(34, k): {ty: body for ty, _n, body in payload_chain(messages[(34, k)])} for k in ("req", "resp")}
ni, nr = init_payloads[(34, "req")][40], init_payloads[(34, "resp")][40]
kei, ker = init_payloads[(34, "req")][34][4:], init_payloads[(34, "resp")][34][4:]

keys += [("spi_i", spi_i, "IKE SA initiator SPI (from the captured header)"),
         ("spi_r", spi_r, "IKE SA responder SPI"),
         ("ni", ni, "Nonce Data of the IKE_SA_INIT request"),
         ("nr", nr, "Nonce Data of the IKE_SA_INIT response"),
         ("ke_i", kei, "KE data (X25519 public value) of the request"),
         ("ke_r", ker, "KE data (X25519 public value) of the response"),
         ("g_ir", one("shared Diffie Hellman secret"), "X25519 shared secret (\"shared Diffie Hellman secret\")"),
         ("skeyseed", one("SKEYSEED"), "prf(Ni | Nr, g^ir)"),
         ("sk_d", one("Sk_d secret"), None)]
for name in ("ai", "ar"):
    if all_of("Sk_%s secret" % name):
        keys.append(("sk_" + name, one("Sk_%s secret" % name), None))
keys += [("sk_ei", one("Sk_ei secret"), "AES-256-GCM key (32) followed by the salt (4)"),
         ("sk_er", one("Sk_er secret"), "AES-256-GCM key (32) followed by the salt (4)"),
         ("sk_pi", one("Sk_pi secret"), None),
         ("sk_pr", one("Sk_pr secret"), None)]

# AUTH (RFC 7296 §2.15): first computed for our own AUTH, then to verify the peer's.
for who, idx in (("i", 0), ("r", 1)):
    def nth(label):
        vals = all_of(label)
        if len(vals) != 2:
            die("expected two %r dumps, found %d" % (label, len(vals)))
        return vals[idx]
    keys += [("auth_%s_idx" % who, nth("IDx'"), "RestOfID%sData: ID Type, reserved, identity" % who.upper()),
             ("auth_%s_octets" % who, nth("octets = message + nonce + prf(Sk_px, IDx')"),
              "the signed octets: the IKE_SA_INIT message, the peer's nonce, prf(SK_p%s, IDx')" % who),
             ("auth_%s_psk_key" % who, nth("prf(secret, keypad)"), "prf(PSK, \"Key Pad for IKEv2\")"),
             ("auth_%s" % who, nth("AUTH = prf(prf(secret, keypad), octets)"), "AUTH Data")]
psks = all_of("secret")
if not psks or any(p != psks[0] for p in psks):
    die("PSK dumps missing or different")
keys.insert(0, ("psk", psks[0], "the pre-shared key, %r" % psks[0].decode()))
if keys[[k[0] for k in keys].index("auth_i_octets")][1][:len(messages[(34, "req")])] != messages[(34, "req")]:
    die("AUTH octets do not start with the captured IKE_SA_INIT request")

# CHILD SA (RFC 7296 §2.17): KEYMAT = prf+(SK_d, Ni | Nr).
seed = one("seed", "CHD")
if seed != ni + nr:
    die("CHILD SA seed is not Ni | Nr")
spis = [t for (_t, g, t, v) in left if v is None and "established with SPIs" in t]
m = re.search(r"SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o", spis[0]) if len(spis) == 1 else None
if not m:
    die("CHILD SA SPIs not found in the log")
keys += [("child_seed", seed, "Ni | Nr, the prf+ seed of KEYMAT (no PFS)"),
         ("child_spi_i", bytes.fromhex(m.group(1)), "ESP SPI chosen by the initiator (its inbound SA)"),
         ("child_spi_r", bytes.fromhex(m.group(2)), "ESP SPI chosen by the responder (the initiator's outbound SA)"),
         ("child_encr_i", one("encryption initiator key", "CHD"),
          "ESP initiator-to-responder AES-256-GCM key (32) and salt (4), the first part of KEYMAT"),
         ("child_encr_r", one("encryption responder key", "CHD"),
          "ESP responder-to-initiator AES-256-GCM key (32) and salt (4)")]
for label, name in (("integrity initiator key", "child_integ_i"), ("integrity responder key", "child_integ_r")):
    if all_of(label, "CHD"):
        keys.append((name, one(label, "CHD"), None))

# SK payloads (RFC 7296 §3.14, RFC 5282): charon dumps the AEAD inputs and outputs of each.
blocks, cur = [], {}
for thread, group, label, val in left:
    if group != "ENC":
        continue
    if val is None and label in ("encrypted payload encryption:", "encrypted payload decryption:"):
        cur[thread] = {"dir": label.split()[2][:-1]}
        blocks.append(cur[thread])
    elif val is not None and thread in cur and label in ("IV", "plain", "padding", "assoc", "encrypted", "ICV"):
        if label in cur[thread]:
            del cur[thread]
        else:
            cur[thread][label] = val
for b in blocks:
    if set(b) != {"dir", "IV", "plain", "padding", "assoc", "encrypted", "ICV"}:
        die("incomplete SK dump: %r" % sorted(b))
    a = b["assoc"]
    xchg, kind = a[18], "resp" if a[19] & 0x20 else "req"
    name = "sk_%s_%s" % (EXCHANGES.get(xchg, "x%d" % xchg), kind)
    ct = b["encrypted"][:len(b["plain"]) + len(b["padding"])]  # on decryption charon's dump includes the ICV
    msg = messages.get((xchg, kind))
    if msg is None or msg[:len(a)] != a or msg[len(a):] != b["IV"] + ct + b["ICV"]:
        die("%s: logged AEAD values do not match the captured message" % name)
    open("%s/charon-psk-%s-%s.sk-plain.bin" % (out_dir, EXCHANGES.get(xchg, "x%d" % xchg), kind), "wb").write(
        b["plain"])
    how = "%s with sk_e%s (nonce = its 4-octet salt | IV, RFC 5282 §4); %s by the initiator's charon" % (
        name, "r" if kind == "resp" else "i", "encrypted" if b["dir"] == "encryption" else "decrypted")
    keys += [(name + "_iv", b["IV"], how + "; the captured SK payload is IV | ciphertext | ICV"),
             (name + "_aad", a, "associated data: the IKE header and the SK generic header"),
             (name + "_plain", b["plain"], "the inner payloads"),
             (name + "_padding", b["padding"], "padding followed by the Pad Length octet"),
             (name + "_ciphertext", ct, None),
             (name + "_icv", b["ICV"], None)]

# The responder derived the same keys.
right = dumps(right_log)
for label, name in (("SKEYSEED", "skeyseed"), ("Sk_ei secret", "sk_ei"), ("encryption responder key", "child_encr_r")):
    theirs = [v for (_t, _g, lab, v) in right if lab == label and v is not None]
    if theirs != [dict((k, v) for k, v, _c in keys)[name]]:
        die("the responder's %s differs from the initiator's" % label)

# An independent check of the derivation (RFC 7296 §2.14, §2.15, §2.17) with the standard library.
import hashlib
import hmac

K = dict((k, v) for k, v, _c in keys)


def prf(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def prf_plus(key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(key, t + seed + bytes([i]))
        out, i = out + t, i + 1
    return out[:n]


if prf(ni + nr, K["g_ir"]) != K["skeyseed"]:
    die("SKEYSEED != prf(Ni | Nr, g^ir)")
if prf_plus(K["skeyseed"], ni + nr + spi_i + spi_r, 32 + 36 + 36 + 32 + 32) != (
        K["sk_d"] + K["sk_ei"] + K["sk_er"] + K["sk_pi"] + K["sk_pr"]):
    die("SK_* != prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)")
if prf_plus(K["sk_d"], ni + nr, 72) != K["child_encr_i"] + K["child_encr_r"]:
    die("ESP keys != prf+(SK_d, Ni | Nr)")
for who, msg, nonce, skp in (("i", messages[(34, "req")], nr, K["sk_pi"]), ("r", messages[(34, "resp")], ni, K["sk_pr"])):
    if K["auth_%s_octets" % who] != msg + nonce + prf(skp, K["auth_%s_idx" % who]):
        die("AUTH octets (%s) do not match" % who)
    if prf(prf(K["psk"], b"Key Pad for IKEv2"), K["auth_%s_octets" % who]) != K["auth_%s" % who]:
        die("AUTH (%s) does not match" % who)
esp_spis = [l.split("SPI ")[1].split()[0] for l in index if "ESP-in-UDP" in l]
if esp_spis and esp_spis != [K["child_spi_r"].hex(), K["child_spi_i"].hex()]:
    die("ESP SPIs in the capture do not match the CHILD SA: %r" % esp_spis)

with open(key_path, "w") as f:
    f.write("""\
# IKEv2 key material of one IKE SA between two strongSwan 5.9.8 charons, as the initiator (left) logged it
# with ike/chd/enc at level 4, and the matching capture (crates/wire/tests/data/charon-psk.pcap).
# Written by scripts/capture-charon.sh; every value was cross-checked against the capture, and SKEYSEED,
# SK_*, both AUTH values and the ESP keys were recomputed from g_ir, the nonces, SPIs and PSK (HMAC-SHA-256).
#
#   IKE proposal   aes256gcm16-prfsha256-x25519  (ENCR AES_GCM_16 256-bit, PRF HMAC_SHA2_256, KE Curve25519 (31))
#   ESP proposal   aes256gcm16                    (ENCR AES_GCM_16 256-bit, no ESN), tunnel mode, UDP-encapsulated
#   auth           PSK "correct horse battery staple 42" both ways
#   IDs            IDi FQDN left.example (192.0.2.1), IDr FQDN right.example (192.0.2.2)
#   TS             10.1.0.1/32 === 10.2.0.1/32
#
# Format: one "name = hex" per line (lowercase hex, no spaces, possibly empty); lines starting with # are
# comments. The ESP packets protected with child_encr_* are crates/wire/tests/data/charon-psk-esp-*.bin.
# With AES-GCM there is no SK_ai/SK_ar and no ESP integrity key; SK_e* and the ESP keys are 32-octet
# keys followed by a 4-octet salt (RFC 5282 §7.1, RFC 4106 §8.1).
""")
    for name, val, comment in keys:
        if comment:
            f.write("\n# %s\n" % comment)
        f.write(("%s = %s" % (name, val.hex())).rstrip() + "\n")
print("capture-charon.sh: %d messages, %d ESP packets, %d key values" % (len(messages), esp_n, len(keys)))
PY
cat > "$OUT/README.md" <<'README'
# Captured charon ↔ charon IKEv2 exchange

Written by `scripts/capture-charon.sh` (strongSwan 5.9.8 on both sides, kernel-libipsec, the
`psk-left`/`psk-right` examples of the interop kit: aes256gcm16-prfsha256-x25519, ESP aes256gcm16,
PSK, IDs left.example/right.example). Key material: `crates/crypto/tests/data/charon-psk-x25519-aes256gcm.txt`.

- `charon-psk.pcap` — the capture on the initiator's link, UDP 500 and 4500.
- `charon-psk-<exchange>-<req|resp>.bin` — one IKE message per file, exactly the UDP payload. Messages sent
  on port 4500 (all after IKE_SA_INIT: charon with kernel-libipsec reports a NAT and floats) had the
  4-octet non-ESP marker (RFC 3948 §2.2) in front; it has been **stripped**, so every file starts with
  the IKE header.
- `charon-psk-esp-<n>-<i2r|r2i>.bin` — ESP packets (UDP-encapsulated on 4500 in the capture; the UDP
  header removed, nothing else): SPI, sequence number, IV, ciphertext, ICV.
- `charon-psk-<exchange>-<req|resp>.sk-plain.bin` — the decrypted content of that message's SK payload
  (the inner payload chain, without padding and Pad Length), as the initiator's charon logged it at
  enc level 4; the script checks that the logged IV, AAD, ciphertext and ICV match the capture.
- `charon-psk-index.txt` — which datagram each file came from.
README
echo "capture-charon.sh: wrote $OUT and $KEYS"
