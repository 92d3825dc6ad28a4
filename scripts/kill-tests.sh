#!/usr/bin/env bash
# The kill tests' full campaign (issue #17): RUNS seeded runs (default 20) of tests/kill.rs,
# each a sidecar and a compactor on one moto S3 bucket killed with SIGKILL at random points,
# from seed FIRST (default 1). Prints one table row per run for docs/reliability.md; a run
# that loses, doubles or exposes a partial block fails with its seed, so it can be repeated:
#   RUNS=1 FIRST=<seed> bash scripts/kill-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rthanos-target}"
export RTHANOS_KILL_RUNS="${RUNS:-20}"
export RTHANOS_KILL_SEED="${FIRST:-1}"
echo "| seed | kills (component@delay) | result blocks | samples | run time |"
echo "|---|---|---|---|---|"
cargo test --locked --test kill -- --nocapture --test-threads=1 2>&1 | grep -o '| [0-9][0-9]* | .*'
