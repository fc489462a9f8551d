#!/usr/bin/env bash
# strongSwan 6 for the interop tests of crates/oxswan/tests/strongswan6.rs: Debian 13's charon in a root
# file system of its own (default /opt/strongswan6), which the tests run chrooted. Used by .ci/run when
# the interop kit's strongswan6.sh, which does the same, is not at hand. Needs root; made once, later
# calls return at once.
set -euo pipefail
root=${1:-/opt/strongswan6}
[ -x "$root/usr/lib/ipsec/charon" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
# The machine's own Debian mirror (deb822 sources first, then the one-line format).
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "strongswan6-root.sh: no Debian mirror configured" >&2; exit 1; }
packages=strongswan-charon,strongswan-swanctl,libcharon-extra-plugins,libcharon-extauth-plugins
packages=$packages,libstrongswan-extra-plugins,libstrongswan-standard-plugins,iproute2
rm -rf "$root.partial"
log=$(mktemp)
if ! debootstrap --variant=minbase --include="$packages" trixie "$root.partial" "$mirror" >"$log" 2>&1; then
  tail -20 "$log" >&2
  exit 1
fi
chroot "$root.partial" /usr/lib/ipsec/charon --version
mv "$root.partial" "$root"
