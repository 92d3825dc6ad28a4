#!/usr/bin/env python3
"""Seeds the fuzz corpora from a small promtool-made block: its index, meta.json, XOR chunks,
and AggrChunks assembled from those chunks. Run from the repository root; needs promtool."""
import os, pathlib, subprocess, tempfile

root = pathlib.Path("fuzz/corpus")
tmp = pathlib.Path(tempfile.mkdtemp())
om = tmp / "in.om"
lines = ["# TYPE g gauge"]
for s in range(5):
    for i in range(130):
        v = "NaN" if i == 7 else f"{(s * 7 + i * 0.25):.2f}"
        lines.append(f'g{{i="{s}",site="a"}} {v} {1700000000 + i * 15 + (i % 3) * 0.001:.3f}')
lines.append("# EOF")
om.write_text("\n".join(lines) + "\n")
subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp / "data")],
               check=True, capture_output=True)
block = next(p for p in (tmp / "data").iterdir() if (p / "meta.json").exists())

def put(target, name, data):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)

put("index_reader", "promtool-index", (block / "index").read_bytes())
put("index_reader", "tombstones", (block / "tombstones").read_bytes())
put("meta_json", "promtool-meta.json", (block / "meta.json").read_bytes())
put("meta_json", "thanos-meta.json", b'{"ulid":"01A","minTime":0,"maxTime":7200000,"stats":{"numSamples":1},'
    b'"compaction":{"level":2,"sources":["01A"],"parents":[{"ulid":"01B","minTime":0,"maxTime":1}]},"version":1,'
    b'"thanos":{"labels":{"a":"b"},"downsample":{"resolution":300000},"source":"compactor"}}')

def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

seg = (block / "chunks" / "000001").read_bytes()
pos, chunks = 8, []
while pos < len(seg):
    n, shift, length = 0, 0, 0
    while True:
        b = seg[pos]; pos += 1
        length |= (b & 0x7F) << shift; shift += 7
        if b < 0x80:
            break
    data = seg[pos + 1: pos + 1 + length]
    chunks.append(data)
    pos += 1 + length + 4
for i, c in enumerate(chunks[:8]):
    put("xor_decode", f"chunk-{i}", c)
aggr = b"".join(uvarint(len(c)) + b"\x01" + c for c in chunks[:5])
put("aggr_decode", "all-five", aggr)
put("aggr_decode", "count-sum", uvarint(len(chunks[0])) + b"\x01" + chunks[0] + uvarint(len(chunks[1])) + b"\x01" + chunks[1] + b"\x00\x00\x00")
print("seeded", sum(len(list((root / t).iterdir())) for t in os.listdir(root)), "files")
