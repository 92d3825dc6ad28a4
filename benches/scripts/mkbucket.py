#!/usr/bin/env python3
"""A FILESYSTEM bucket from a Prometheus data directory: mkbucket.py DATA BUCKET.

Every block is copied and its meta.json gets the `thanos` section a sidecar would write
(external labels cluster="bench", replica="a", raw resolution, source sidecar)."""
import json, os, shutil, sys
data, bucket = sys.argv[1], sys.argv[2]
os.makedirs(bucket, exist_ok=True)
for b in os.listdir(data):
    src = os.path.join(data, b)
    if not os.path.isfile(os.path.join(src, "meta.json")):
        continue
    dst = os.path.join(bucket, b)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    meta = json.load(open(os.path.join(dst, "meta.json")))
    meta["thanos"] = {"labels": {"cluster": "bench", "replica": "a"}, "downsample": {"resolution": 0}, "source": "sidecar"}
    json.dump(meta, open(os.path.join(dst, "meta.json"), "w"))
