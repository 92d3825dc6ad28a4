#!/usr/bin/env bash
# Instruction counts of the read path: callgrind_read_path.sh BINARY LABEL [OBJSTORE_YML]
#
# Runs the querier under callgrind (the store plain), then the store under callgrind (the
# querier plain), over the FILESYSTEM bucket of OBJSTORE_YML (default ./objstore.yml, see
# mkbucket.py), on ports 19091/19191 (store) and 19092/19192 (querier). The querier gets 50
# instant queries of a regex selector and of label_replace, the store 50 of a regex selector
# and of an equality selector. Writes callgrind-LABEL-{query,store}.out and prints totals.
set -euo pipefail
binary=$1
label=$2
objstore=${3:-objstore.yml}
workdir=$(mktemp -d)
trap 'pkill -TERM -f "rthanos query --endpoint=127.0.0.1:19091" || true; pkill -TERM -f "store --objstore.config-file=$objstore" || true; rm -rf "$workdir"' EXIT

ask() {
  python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
conn = http.client.HTTPConnection("127.0.0.1", 19192)
for query in sys.argv[1:]:
    path = "/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": "1700046007"})
    for _ in range(50):
        conn.request("GET", path)
        conn.getresponse().read()
PY
}

for profiled in query store; do
  store_cmd=("$binary" store "--objstore.config-file=$objstore" "--data-dir=$workdir/store-$profiled"
    --http-address=127.0.0.1:19191 --grpc-address=127.0.0.1:19091 --log.level=warn)
  query_cmd=("$binary" query --endpoint=127.0.0.1:19091 --http-address=127.0.0.1:19192
    --grpc-address=127.0.0.1:19092 --log.level=warn)
  if [ "$profiled" = store ]; then
    valgrind --tool=callgrind "--callgrind-out-file=callgrind-$label-store.out" "${store_cmd[@]}" >/dev/null 2>&1 &
  else
    "${store_cmd[@]}" >/dev/null 2>&1 &
  fi
  sleep 25
  if [ "$profiled" = query ]; then
    valgrind --tool=callgrind "--callgrind-out-file=callgrind-$label-query.out" "${query_cmd[@]}" >/dev/null 2>&1 &
  else
    "${query_cmd[@]}" >/dev/null 2>&1 &
  fi
  sleep 25
  if [ "$profiled" = store ]; then
    ask '{__name__=~"node_.*", job="node-1"}' 'node_memory_bytes{job="node-1"}'
  else
    ask '{__name__=~"node_.*", job="node-1"}' 'label_replace(build_info, "host", "$1", "instance", "host-(.*)")'
  fi
  pkill -TERM -f "rthanos query --endpoint=127.0.0.1:19091" || true
  pkill -TERM -f "store --objstore.config-file=$objstore" || true
  sleep 8
done
for out in "callgrind-$label-query.out" "callgrind-$label-store.out"; do
  echo "$out: $(callgrind_annotate "$out" 2>/dev/null | grep 'PROGRAM TOTALS')"
done
