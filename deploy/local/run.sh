#!/usr/bin/env bash
# The local HA stack on one machine, on a FILESYSTEM bucket under deploy/local/data/:
#   - two Prometheus 2.42 replicas (Debian's package), external labels cluster=local and
#     replica=0 / 1, 2h blocks (min = max block duration, as Thanos requires), each scraping
#     itself, the other and every rthanos component;
#   - two sidecars, a store gateway, a compactor (--wait) and a querier;
#   - a ruler evaluating deploy/local/rules/*.yaml (the guide's Thanos alerts) through the
#     querier, and an Alertmanager (Debian's prometheus-alertmanager, 0.25) it sends them to;
#     see deploy/local/README.md.
# Ctrl-C (or SIGTERM) stops everything; data is kept, and a second start continues where the
# first stopped.
#
# Settings, all optional (the end-to-end test uses them to run the stack time-compressed):
#   RTHANOS_LOCAL_DATA        data directory (default deploy/local/data)
#   RTHANOS_BIN               an rthanos binary to run instead of building this checkout
#   RTHANOS_LOCAL_PORTS_FROM  consecutive ports from this one instead of the usual ones
#   RTHANOS_LOCAL_SCRAPE_INTERVAL                          (default 15s)
#   RTHANOS_LOCAL_{PROMETHEUS,SIDECAR,STORE,COMPACT,QUERY,RULE}_ARGS  extra flags, space-separated
#                             (the store's replace its default, --sync-block-duration=1m)
#
# Each process is started from a script of its own, $data/run/<name>.sh, which records its
# pid in $data/run/<name>.pid: running that script again restarts a process that was killed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${RTHANOS_LOCAL_DATA:-$here/data}"
data="$(mkdir -p "$data" && cd "$data" && pwd)"
mkdir -p "$data/bucket" "$data/prometheus-0" "$data/prometheus-1" "$data/run" "$data/alertmanager"

# One stack per data directory. The lock is inherited by every component, so it stays taken
# while any of them survives this script (killed with SIGKILL, say).
exec 9>"$data/run/lock"
if ! flock -n 9; then
  # A stack that was just stopped may hold it a moment longer (a process still exiting).
  echo "waiting for the stack on $data to finish (see $data/run/*.pid)…" >&2
  if ! flock -w 20 9; then
    echo "a stack already runs on $data (see $data/run/*.pid); stop it first" >&2
    exit 1
  fi
fi
# Pid files left by a stack that did not stop cleanly name processes that are gone.
rm -f "$data"/run/*.pid

if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
  echo "installing Debian's prometheus (2.42) and prometheus-alertmanager (0.25) packages…"
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  # Keep the packaged services from starting on 9090 and 9093: this stack runs its own.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi

if [ -n "${RTHANOS_BIN:-}" ]; then
  rthanos="$RTHANOS_BIN"
else
  # The rthanos binary, built from this checkout (release profile).
  repo="$(cd "$here/../.." && pwd)"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rthanos-target}"
  echo "building rthanos (cargo build --release)…"
  (cd "$repo" && cargo build --release --quiet --bin rthanos)
  rthanos="$CARGO_TARGET_DIR/release/rthanos"
fi

# Ports: Thanos's and Prometheus's usual ones, or consecutive ones from RTHANOS_LOCAL_PORTS_FROM.
if [ -n "${RTHANOS_LOCAL_PORTS_FROM:-}" ]; then
  p=$RTHANOS_LOCAL_PORTS_FROM
  prom_port=($p $((p + 1)))
  sidecar_grpc=($((p + 2)) $((p + 4)))
  sidecar_http=($((p + 3)) $((p + 5)))
  store_grpc=$((p + 6)) store_http=$((p + 7))
  query_grpc=$((p + 8)) query_http=$((p + 9))
  compact_http=$((p + 10))
  alertmanager_http=$((p + 11))
  rule_grpc=$((p + 12)) rule_http=$((p + 13))
else
  prom_port=(9090 9091)
  sidecar_grpc=(10901 10911)
  sidecar_http=(10902 10912)
  store_grpc=10905 store_http=10906
  query_grpc=10903 query_http=10904
  compact_http=10908
  alertmanager_http=9093
  rule_grpc=10909 rule_http=10910
fi
scrape_interval="${RTHANOS_LOCAL_SCRAPE_INTERVAL:-15s}"

cat > "$data/objstore.yml" <<YAML
type: FILESYSTEM
config:
  directory: $data/bucket
YAML

# launch NAME LOG COMMAND…: writes $data/run/NAME.sh (records its pid, then execs COMMAND)
# and runs it in the background.
launch() {
  local name="$1" log="$2"
  shift 2
  {
    echo '#!/usr/bin/env bash'
    printf 'echo $$ > %q\n' "$data/run/$name.pid"
    printf 'exec'
    printf ' %q' "$@"
    printf ' >>%q 2>&1\n' "$log"
  } > "$data/run/$name.sh"
  chmod +x "$data/run/$name.sh"
  "$data/run/$name.sh" &
}

# Whether a pid names a running process. An exited one waiting to be reaped does not count,
# but a leader thread that exited while other threads of its process still run does.
running() {
  local stat tasks
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ] && return 0
  tasks=("/proc/$1/task"/*)
  [ "${#tasks[@]}" -gt 1 ]
}

stopped=0
stop() {
  [ "$stopped" = 1 ] && return
  stopped=1
  echo "stopping…"
  # The pid files name what runs now, including processes restarted by hand.
  local pids=() f pid
  for f in "$data"/run/*.pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Components drain within their grace periods (2m by default); then SIGKILL, so nothing
  # is left holding the ports.
  for _ in $(seq 1 1300); do
    local alive=0
    for pid in "${pids[@]}"; do running "$pid" && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if running "$pid"; then
      echo "pid $pid did not stop within its grace period; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$data"/run/*.pid
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

# The extra-argument variables are space-separated flag lists: split, never glob-expanded.
set -f
# shellcheck disable=SC2206
prometheus_args=(${RTHANOS_LOCAL_PROMETHEUS_ARGS:-})
# shellcheck disable=SC2206
sidecar_args=(${RTHANOS_LOCAL_SIDECAR_ARGS:-})
# shellcheck disable=SC2206
store_args=(${RTHANOS_LOCAL_STORE_ARGS:---sync-block-duration=1m})
# shellcheck disable=SC2206
compact_args=(${RTHANOS_LOCAL_COMPACT_ARGS:-})
# shellcheck disable=SC2206
query_args=(${RTHANOS_LOCAL_QUERY_ARGS:-})
# shellcheck disable=SC2206
rule_args=(${RTHANOS_LOCAL_RULE_ARGS:-})
set +f

for i in 0 1; do
  cat > "$data/prometheus-$i.yml" <<YAML
global:
  scrape_interval: $scrape_interval
  evaluation_interval: $scrape_interval
  external_labels:
    cluster: local
    replica: "$i"
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:${prom_port[0]}", "127.0.0.1:${prom_port[1]}"]
  - job_name: thanos-sidecar
    static_configs:
      - targets: ["127.0.0.1:${sidecar_http[0]}", "127.0.0.1:${sidecar_http[1]}"]
  - job_name: thanos-store
    static_configs:
      - targets: ["127.0.0.1:$store_http"]
  - job_name: thanos-compactor
    static_configs:
      - targets: ["127.0.0.1:$compact_http"]
  - job_name: thanos-query
    static_configs:
      - targets: ["127.0.0.1:$query_http"]
  - job_name: thanos-rule
    static_configs:
      - targets: ["127.0.0.1:$rule_http"]
YAML
  launch "prometheus-$i" "$data/prometheus-$i.log" prometheus \
    --config.file="$data/prometheus-$i.yml" \
    --storage.tsdb.path="$data/prometheus-$i" \
    --storage.tsdb.min-block-duration=2h \
    --storage.tsdb.max-block-duration=2h \
    --web.listen-address="127.0.0.1:${prom_port[$i]}" \
    --web.enable-lifecycle \
    ${prometheus_args[@]+"${prometheus_args[@]}"}
done

# One sidecar per replica: StoreAPI for the querier, blocks shipped to the bucket.
for i in 0 1; do
  launch "sidecar-$i" "$data/sidecar-$i.log" "$rthanos" sidecar \
    --prometheus.url="http://127.0.0.1:${prom_port[$i]}" \
    --tsdb.path="$data/prometheus-$i" \
    --objstore.config-file="$data/objstore.yml" \
    --grpc-address="127.0.0.1:${sidecar_grpc[$i]}" \
    --http-address="127.0.0.1:${sidecar_http[$i]}" \
    ${sidecar_args[@]+"${sidecar_args[@]}"}
done

# The store gateway over the bucket the sidecars ship to (looking for new blocks every
# minute unless RTHANOS_LOCAL_STORE_ARGS says otherwise).
launch store "$data/store.log" "$rthanos" store \
  --objstore.config-file="$data/objstore.yml" \
  --data-dir="$data/store" \
  --grpc-address="127.0.0.1:$store_grpc" \
  --http-address="127.0.0.1:$store_http" \
  ${store_args[@]+"${store_args[@]}"}

# The compactor of the bucket: compaction, downsampling and retention as the seed guide
# sets them.
launch compact "$data/compact.log" "$rthanos" compact \
  --objstore.config-file="$data/objstore.yml" \
  --data-dir="$data/compact" \
  --http-address="127.0.0.1:$compact_http" \
  --wait \
  --retention.resolution-raw=30d \
  --retention.resolution-5m=90d \
  --retention.resolution-1h=1y \
  ${compact_args[@]+"${compact_args[@]}"}

# The querier over both sidecars and the store, deduplicating the replicas.
launch query "$data/query.log" "$rthanos" query \
  --endpoint="127.0.0.1:${sidecar_grpc[0]}" \
  --endpoint="127.0.0.1:${sidecar_grpc[1]}" \
  --endpoint="127.0.0.1:$store_grpc" \
  --endpoint="127.0.0.1:$rule_grpc" \
  --query.replica-label=replica \
  --grpc-address="127.0.0.1:$query_grpc" \
  --http-address="127.0.0.1:$query_http" \
  ${query_args[@]+"${query_args[@]}"}

# Alertmanager, clustering off, every alert to a receiver that sends nothing (see its UI).
cat > "$data/alertmanager.yml" <<YAML
route:
  receiver: local
  group_by: [alertname]
receivers:
  - name: local
YAML
launch alertmanager "$data/alertmanager.log" prometheus-alertmanager \
  --config.file="$data/alertmanager.yml" \
  --storage.path="$data/alertmanager" \
  --web.listen-address="127.0.0.1:$alertmanager_http" \
  --cluster.listen-address=

# The ruler: the guide's alerts over the querier's deduplicated view, to Alertmanager; its
# results served to the querier and shipped to the bucket.
launch rule "$data/rule.log" "$rthanos" rule \
  --rule-file="$here/rules/*.yaml" \
  --data-dir="$data/rule" \
  --query="127.0.0.1:$query_http" \
  --alertmanagers.url="http://127.0.0.1:$alertmanager_http" \
  --alert.query-url="http://127.0.0.1:$query_http" \
  --label='ruler="local"' \
  --eval-interval="$scrape_interval" \
  --objstore.config-file="$data/objstore.yml" \
  --grpc-address="127.0.0.1:$rule_grpc" \
  --http-address="127.0.0.1:$rule_http" \
  ${rule_args[@]+"${rule_args[@]}"}

# The banner once the querier answers.
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$query_http") 2>/dev/null && break
  sleep 0.1
done
cat <<EOF
Prometheus replica 0: http://127.0.0.1:${prom_port[0]}  (log: $data/prometheus-0.log)
Prometheus replica 1: http://127.0.0.1:${prom_port[1]}  (log: $data/prometheus-1.log)
Sidecar 0:            gRPC 127.0.0.1:${sidecar_grpc[0]}, http://127.0.0.1:${sidecar_http[0]}  (log: $data/sidecar-0.log)
Sidecar 1:            gRPC 127.0.0.1:${sidecar_grpc[1]}, http://127.0.0.1:${sidecar_http[1]}  (log: $data/sidecar-1.log)
Store gateway:        gRPC 127.0.0.1:$store_grpc, http://127.0.0.1:$store_http  (log: $data/store.log)
Compactor:            http://127.0.0.1:$compact_http/metrics  (log: $data/compact.log)
Query UI:             http://127.0.0.1:$query_http/  (stores: http://127.0.0.1:$query_http/stores)
Query (Prometheus API): http://127.0.0.1:$query_http/api/v1/query?query=up  (log: $data/query.log)
Ruler:                gRPC 127.0.0.1:$rule_grpc, http://127.0.0.1:$rule_http/api/v1/rules  (log: $data/rule.log)
Alertmanager:         http://127.0.0.1:$alertmanager_http/  (log: $data/alertmanager.log)
Bucket (FILESYSTEM):  $data/bucket  (objstore.yml: $data/objstore.yml)
Ctrl-C stops the stack; the next start continues from $data.
EOF
# Stay up while the stack runs; a process killed and restarted by hand is not a child, so
# wait on the pid files rather than on children.
# The sleep does not inherit the stack's lock, so it never outlives the stack holding it.
while true; do
  sleep 1 9>&- &
  wait $! || true
done
