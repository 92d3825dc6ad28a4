#!/usr/bin/env python3
"""Cost per request of instant queries: wall time, and CPU and context switches of each process.

    request_cost.py [--port 19192] [--time 1700046007] [--n 1000] \
        --pid querier=PID --pid store=PID [--pid prometheus=PID] QUERY...

Each query is asked 20 times to warm up, then N times over one kept-alive connection to the
HTTP API on --port; CPU (user + system, from /proc/PID/stat) and context switches (summed
over /proc/PID/task/*/status) are the differences over those N requests, divided by N.
"""
import argparse
import http.client
import os
import time
import urllib.parse

CLOCK_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_MS


def switches(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{task}/status"):
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=19192)
    parser.add_argument("--time", default="1700046007")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--pid", action="append", default=[], help="NAME=PID")
    parser.add_argument("queries", nargs="+")
    args = parser.parse_args()
    pids = dict(p.split("=", 1) for p in args.pid)
    for query in args.queries:
        conn = http.client.HTTPConnection("127.0.0.1", args.port)
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": args.time})
        for _ in range(20):
            conn.request("GET", path)
            conn.getresponse().read()
        before = {name: (cpu_ms(pid), switches(pid)) for name, pid in pids.items()}
        start = time.perf_counter()
        for _ in range(args.n):
            conn.request("GET", path)
            conn.getresponse().read()
        wall = (time.perf_counter() - start) / args.n * 1e3
        parts = [f"{query[:45]:45s} wall {wall:.3f} ms"]
        for name, pid in pids.items():
            cpu = (cpu_ms(pid) - before[name][0]) / args.n
            ctx = (switches(pid) - before[name][1]) / args.n
            parts.append(f"{name} cpu {cpu:.3f} ms, {ctx:.1f} switches")
        print("; ".join(parts))


if __name__ == "__main__":
    main()
