#!/usr/bin/env bash
# Fuzzes quicwire-core's parsers with cargo-fuzz (libFuzzer + AddressSanitizer):
#   npm run fuzz            each target for 60 s
#   npm run fuzz -- 600     each target for 600 s
# Inputs that once crashed live in crates/quicwire-core/fuzz/regressions/<target>/ and are
# replayed first. A new crash fails the run and leaves its input under
# crates/quicwire-core/fuzz/artifacts/<target>/: fix it, then move it to regressions.
set -euo pipefail
cd "$(dirname "$0")/../crates/quicwire-core"
seconds=${1:-60}
# cargo-fuzz needs nightly flags; the stable toolchain allows them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
targets=(frame_reader hello batch_ops webtransport_connect)
cargo fuzz build --fuzz-dir fuzz
log=$(mktemp)
for target in "${targets[@]}"; do
  corpus=../../target/fuzz-corpus/$target
  mkdir -p "$corpus" "fuzz/regressions/$target"
  echo "== $target: replay regressions, then fuzz for ${seconds}s"
  if ! cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/regressions/$target" -- -runs=0 >"$log" 2>&1 ||
    ! cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- -max_total_time="$seconds" -print_final_stats=1 >>"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target crashed: its input is in crates/quicwire-core/fuzz/artifacts/$target"
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units" "$log" | tail -2
done
