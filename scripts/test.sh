#!/usr/bin/env bash
# Runs every test of rthanos. On a fresh Debian machine it first installs the real peers the
# tests talk to: Prometheus and promtool (Debian's `prometheus` package, 2.42), a DNS server
# (dnsmasq, for the querier's DNS discovery), Alertmanager (Debian's prometheus-alertmanager, 0.25,
# the ruler's alerts), Chromium and ChromeDriver (the web UI's browser
# test), systemd (systemd-analyze verify, for deploy/systemd's units), strace (the durable
# writes' system calls) and moto_server (PyPI `moto[server]`, a real S3 API). Then:
# formatting, clippy, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
  || ! command -v dnsmasq >/dev/null || ! command -v chromium >/dev/null \
  || ! command -v chromedriver >/dev/null || ! command -v systemd-analyze >/dev/null \
  || ! command -v strace >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
  echo "--- installing Debian's prometheus, prometheus-alertmanager, dnsmasq-base, chromium, chromium-driver, systemd and strace"
  as_root apt-get update -qq
  # Tests start their own Prometheus on their own ports: keep the packaged service from starting.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager dnsmasq-base chromium chromium-driver systemd strace >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
  for service in prometheus prometheus-alertmanager; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
      as_root systemctl disable --now "$service" || true
    fi
  done
fi
if ! command -v moto_server >/dev/null; then
  echo "--- installing moto[server] (a real S3 API for the object-storage tests)"
  python3 -m pip install --quiet 'moto[server]'
fi

# Keep build artefacts outside the clone, so CI and fresh clones reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rthanos-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "--- cargo fmt"
cargo fmt --all -- --check
echo "--- cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "--- tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo test --workspace --locked --doc
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
