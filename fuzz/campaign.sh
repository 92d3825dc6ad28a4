#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) in turn, with its committed corpus, and
# prints each campaign's line for docs/reliability.md: target, duration, executions, findings.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the machine's stable toolchain builds the
# targets with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only sanitizer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
targets="${TARGETS:-$(sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v '^rthanos-fuzz$')}"
export RUSTC_BOOTSTRAP=1
for target in $targets; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="$(mktemp)"
  status=0
  cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
  findings="$(find "fuzz/artifacts/$target" -type f | wc -l)"
  echo "| $target | ${seconds} s | ${execs:-?} | ${findings} (exit ${status}) |"
  rm -f "$log"
done
