#!/usr/bin/env bash
# The handshake benchmark of oxswan-ike (crates/ike/benches/handshake.rs) for this tree and for an
# earlier revision, run in turns on the same machine, so that the two can be compared in one sitting:
#   scripts/bench-handshake-against.sh REV [ROUNDS]
# REV is built in a temporary git worktree with its own target directory; nothing of it stays.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: $0 REV [ROUNDS]}
rounds=${2:-2}
base=$(mktemp -d)
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || rm -rf "$base"' EXIT
git worktree add -q --detach "$base" "$rev"
bench() { # DIR -> path of the built benchmark binary
  (cd "$1" && CARGO_TARGET_DIR="$1/target" cargo bench -q -p oxswan-ike --bench handshake --no-run --message-format=json 2>/dev/null) |
    sed -n 's/.*"executable":"\([^"]*handshake[^"]*\)".*/\1/p' | tail -1
}
here=$(CARGO_TARGET_DIR="$PWD/target" bench "$PWD")
there=$(bench "$base")
[ -x "$here" ] && [ -x "$there" ] || { echo "cannot build the benchmark" >&2; exit 1; }
for i in $(seq "$rounds"); do
  echo "== $rev (round $i)"; "$there" --bench | tail -2
  echo "== this tree (round $i)"; "$here" --bench | tail -2
done
