# Sourced by run-stable.sh and ci.sh: how the fuzz targets are built on the stable toolchain.
#
# The instrumentation cargo-fuzz passes to rustc (SanitizerCoverage: inline 8-bit edge counters, the
# PC table and comparison tracing, which libFuzzer's guidance reads), without AddressSanitizer, which
# would need nightly. Safe Rust needs no ASan to find what matters here: panics, overflows (overflow
# checks and debug assertions are on) and runaway memory. `--cfg fuzzing` is what cargo-fuzz sets too.
#
# After sourcing: FUZZ_RUSTFLAGS, FUZZ_TRIPLE, FUZZ_TARGET_DIR (relative to fuzz/) and FUZZ_BIN_DIR,
# where the binaries land. fuzz_build [cargo build args...] builds with them (from fuzz/).
FUZZ_RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
FUZZ_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
FUZZ_TARGET_DIR=target/stable-fuzz
FUZZ_BIN_DIR=$FUZZ_TARGET_DIR/$FUZZ_TRIPLE/release

# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (without one cargo applies
# them to what runs on the host too), which have nothing to fuzz and no libFuzzer to link with.
fuzz_build() {
  RUSTFLAGS="$FUZZ_RUSTFLAGS" cargo build --release --target "$FUZZ_TRIPLE" --target-dir "$FUZZ_TARGET_DIR" "$@"
}
