#!/usr/bin/env bash
# The local HA stack on one machine, on a FILESYSTEM bucket under deploy/local/data/:
#   - two Prometheus 2.42 replicas (Debian's package), external labels cluster=local and
#     replica=0 / 1, 2h blocks (min = max block duration, as Thanos requires), each scraping
#     itself and the other;
#   - two sidecars, a store gateway, a compactor (--wait) and a querier; see
#     deploy/local/README.md.
# Ctrl-C stops everything; data is kept, and a second start continues where the first stopped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${RTHANOS_LOCAL_DATA:-$here/data}"
mkdir -p "$data/bucket" "$data/prometheus-0" "$data/prometheus-1"

if ! command -v prometheus >/dev/null; then
  echo "installing Debian's prometheus package (2.42)…"
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi

# The rthanos binary, built from this checkout (release profile).
repo="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rthanos-target}"
echo "building rthanos (cargo build --release)…"
(cd "$repo" && cargo build --release --quiet --bin rthanos)
rthanos="$CARGO_TARGET_DIR/release/rthanos"

cat > "$data/objstore.yml" <<YAML
type: FILESYSTEM
config:
  directory: $data/bucket
YAML

pids=()
stopped=0
stop() {
  [ "$stopped" = 1 ] && return
  stopped=1
  echo "stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT

for i in 0 1; do
  port=$((9090 + i))
  other=$((9091 - i))
  cat > "$data/prometheus-$i.yml" <<YAML
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    cluster: local
    replica: "$i"
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$port", "127.0.0.1:$other"]
YAML
  prometheus \
    --config.file="$data/prometheus-$i.yml" \
    --storage.tsdb.path="$data/prometheus-$i" \
    --storage.tsdb.min-block-duration=2h \
    --storage.tsdb.max-block-duration=2h \
    --web.listen-address="127.0.0.1:$port" \
    --web.enable-lifecycle \
    >"$data/prometheus-$i.log" 2>&1 &
  pids+=($!)
done

# One sidecar per replica: StoreAPI on 10901 / 10911, blocks shipped to the bucket.
for i in 0 1; do
  "$rthanos" sidecar \
    --prometheus.url="http://127.0.0.1:$((9090 + i))" \
    --tsdb.path="$data/prometheus-$i" \
    --objstore.config-file="$data/objstore.yml" \
    --grpc-address="127.0.0.1:$((10901 + 10 * i))" \
    --http-address="127.0.0.1:$((10902 + 10 * i))" \
    >"$data/sidecar-$i.log" 2>&1 &
  pids+=($!)
done

# The store gateway over the bucket the sidecars ship to.
"$rthanos" store \
  --objstore.config-file="$data/objstore.yml" \
  --data-dir="$data/store" \
  --sync-block-duration=1m \
  --grpc-address=127.0.0.1:10905 \
  --http-address=127.0.0.1:10906 \
  >"$data/store.log" 2>&1 &
pids+=($!)

# The compactor of the bucket: compaction, downsampling and retention as the seed guide
# sets them.
"$rthanos" compact \
  --objstore.config-file="$data/objstore.yml" \
  --data-dir="$data/compact" \
  --http-address=127.0.0.1:10908 \
  --wait \
  --retention.resolution-raw=30d \
  --retention.resolution-5m=90d \
  --retention.resolution-1h=1y \
  >"$data/compact.log" 2>&1 &
pids+=($!)

# The querier over both sidecars and the store, deduplicating the replicas.
"$rthanos" query \
  --endpoint=127.0.0.1:10901 \
  --endpoint=127.0.0.1:10911 \
  --endpoint=127.0.0.1:10905 \
  --query.replica-label=replica \
  --grpc-address=127.0.0.1:10903 \
  --http-address=127.0.0.1:10904 \
  >"$data/query.log" 2>&1 &
pids+=($!)

echo "Prometheus replica 0: http://127.0.0.1:9090  (log: $data/prometheus-0.log)"
echo "Prometheus replica 1: http://127.0.0.1:9091  (log: $data/prometheus-1.log)"
echo "Sidecar 0:            gRPC 127.0.0.1:10901, http://127.0.0.1:10902  (log: $data/sidecar-0.log)"
echo "Sidecar 1:            gRPC 127.0.0.1:10911, http://127.0.0.1:10912  (log: $data/sidecar-1.log)"
echo "Store gateway:        gRPC 127.0.0.1:10905, http://127.0.0.1:10906  (log: $data/store.log)"
echo "Compactor:            http://127.0.0.1:10908/metrics  (log: $data/compact.log)"
echo "Query UI:             http://127.0.0.1:10904/  (stores: http://127.0.0.1:10904/stores)"
echo "Query (Prometheus API): http://127.0.0.1:10904/api/v1/query?query=up  (log: $data/query.log)"
echo "Bucket (FILESYSTEM):  $data/bucket  (objstore.yml: $data/objstore.yml)"
echo "Ctrl-C stops the stack; the next start continues from $data."
wait
