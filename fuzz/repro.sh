#!/usr/bin/env bash
# Runs a fuzz target on given inputs, once each, as CI built it: to reproduce a crash that
# fuzz/ci.sh reported (its base64, decoded into a file) or one fuzz/run-stable.sh saved.
#
#   fuzz/repro.sh TARGET FILE...             e.g. fuzz/repro.sh endpoint crash.bin
#
# Prints the panic with its backtrace and exits non-zero if an input still crashes.
set -euo pipefail
target=${1:?usage: repro.sh TARGET FILE...}
shift
[ "$#" -gt 0 ] || { echo "usage: repro.sh TARGET FILE..." >&2; exit 2; }
inputs=()
for f in "$@"; do
  inputs+=("$(realpath "$f")")
done
cd "$(dirname "$0")"
source ./flags.sh
fuzz_build --bin "$target"
RUST_BACKTRACE=1 exec "$FUZZ_BIN_DIR/$target" "${inputs[@]}"
