#!/usr/bin/env bash
# Runs every fuzz target for a while, as CI does (.ci/run): builds them all once with the flags of
# flags.sh, then gives each SECONDS of libFuzzer from its committed seeds (fuzz/seeds/TARGET).
#
#   bash fuzz/ci.sh [SECONDS]        default 30 per target
#
# Each run works on a copy of the seeds in a scratch directory, so nothing is ever written into
# fuzz/seeds. A crash (a panic, a failed assertion, an overflow, running out of memory, an input
# that hangs) fails the script once every target has run: it prints the target, the input in hex
# and in base64, and the end of libFuzzer's output. Then one line per target with what it did.
# Needs the Rust toolchain, a C++ compiler (build-essential, for libFuzzer) and coreutils.
set -euo pipefail
seconds=${1:-30}
# libFuzzer reads -max_total_time=0 as "no limit".
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: ci.sh [SECONDS], SECONDS at least 1" >&2
  exit 2
fi
cd "$(dirname "$0")"
source ./flags.sh

targets=()
for f in fuzz_targets/*.rs; do
  targets+=("$(basename "$f" .rs)")
done
# Every target starts from seeds: one without would spend its seconds rediscovering the format.
for t in "${targets[@]}"; do
  if [ -z "$(ls -A "seeds/$t" 2>/dev/null)" ]; then
    echo "fuzz: no seeds in fuzz/seeds/$t (see fuzz/README.md)" >&2
    exit 1
  fi
done

fuzz_build --bins
# The seed generator (examples/seeds.rs) is not run here but must keep compiling. Checked with the
# targets' flags and target directory, it reuses their dependencies' build scripts (a plain build
# would compile everything again). Only checked: linked, its instrumented code would lack the
# libFuzzer runtime that only the targets link.
RUSTFLAGS="$FUZZ_RUSTFLAGS" cargo check --release --target "$FUZZ_TRIPLE" --target-dir "$FUZZ_TARGET_DIR" --examples

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
summary=()
failed=()
for t in "${targets[@]}"; do
  dir=$scratch/$t
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp seeds/"$t"/* "$dir/corpus/"
  start=$(date +%s)
  set +e
  # -timeout: an input that takes 10 s is a hang (the slowest target takes about a millisecond);
  # -max_len as run-stable.sh, which the seeds were made with.
  "$FUZZ_BIN_DIR/$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1
  status=$?
  set -e
  elapsed=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$dir/log" | tail -n 1)
  # The corpus libFuzzer holds at the end, from its last status line ("... corp: 138/49Kb ...").
  corpus=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' "$dir/log" | tail -n 1)
  line="fuzz $t: ${runs:-?} executions in ${took:-$elapsed} s, ${corpus:-?} corpus entries"
  if [ "$status" != 0 ]; then
    line="$line; FAILED (libFuzzer exit status $status)"
    failed+=("$t")
    echo "== fuzz $t FAILED (exit status $status)"
    found=0
    for a in "$dir"/artifacts/*; do
      [ -f "$a" ] || continue
      found=1
      echo "-- $(basename "$a"), $(stat -c %s "$a") octets, hex:"
      od -A n -t x1 -v "$a" | tr -d ' \n' | fold -w 64
      echo
      echo "-- base64 (reproduce: base64 -d > input, then fuzz/repro.sh $t input):"
      base64 -w 76 "$a"
    done
    [ "$found" = 1 ] || echo "-- no input saved"
    echo "-- libFuzzer's output, the end:"
    tail -n 60 "$dir/log"
  fi
  summary+=("$line")
done

printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" != 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
