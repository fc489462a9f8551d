#!/usr/bin/env bash
# Runs a fuzz target with libFuzzer's coverage guidance on the stable toolchain: the same
# instrumentation cargo-fuzz passes to rustc (SanitizerCoverage), without AddressSanitizer, which
# would need nightly. Safe Rust needs no ASan to find what matters here: panics, overflows
# (overflow checks and debug assertions are on) and runaway memory.
#
#   fuzz/run-stable.sh TARGET [SECONDS]      e.g. fuzz/run-stable.sh endpoint 300
#
# The corpus is kept in fuzz/corpus/TARGET (ignored by git); crashes land in fuzz/artifacts/TARGET.
set -euo pipefail
target=${1:?usage: run-stable.sh TARGET [SECONDS]}
seconds=${2:-60}
cd "$(dirname "$0")"
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --bin "$target" --target "$triple" --target-dir target/stable-fuzz
mkdir -p "corpus/$target" "artifacts/$target"
exec "target/stable-fuzz/$triple/release/$target" -max_total_time="$seconds" -max_len=4096 \
  -print_final_stats=1 -artifact_prefix="artifacts/$target/" "corpus/$target"
