#!/usr/bin/env bash
# Runs a fuzz target with libFuzzer's coverage guidance on the stable toolchain, built as flags.sh
# says (SanitizerCoverage as cargo-fuzz passes it, overflow checks and debug assertions on, no
# AddressSanitizer).
#
#   fuzz/run-stable.sh TARGET [SECONDS]      e.g. fuzz/run-stable.sh endpoint 300
#
# The corpus is kept in fuzz/corpus/TARGET (ignored by git) and starts from the committed seeds in
# fuzz/seeds/TARGET, which are read, never written; crashes land in fuzz/artifacts/TARGET.
set -euo pipefail
target=${1:?usage: run-stable.sh TARGET [SECONDS]}
seconds=${2:-60}
cd "$(dirname "$0")"
source ./flags.sh
fuzz_build --bin "$target"
mkdir -p "corpus/$target" "artifacts/$target"
seeds=()
if [ -d "seeds/$target" ]; then
  seeds=("seeds/$target")
fi
# New inputs go to the first directory only.
exec "$FUZZ_BIN_DIR/$target" -max_total_time="$seconds" -max_len=4096 \
  -print_final_stats=1 -artifact_prefix="artifacts/$target/" "corpus/$target" "${seeds[@]}"
