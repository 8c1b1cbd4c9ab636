#!/usr/bin/env python3
"""make profile-read: where the CPU of one read goes, gateway through orders.

The bench's shop (release builds, bench/run.py's Shop) with a reader of 20 purchases
(PROFILE_PURCHASES: as many as that, for a long history);
`wrk` reads `GET /api/purchases` with 16 connections while `perf record -a -g` samples
every CPU for 10 s; then the samples are counted by process (the threads that run
blocking work, such as orders' index readers, apart from each one's async thread) and,
for each, its busiest symbols. Writes perf.data to <target>/bench/read.perf.data for `perf report -i`.
"""

import collections
import concurrent.futures
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, TARGET, request  # noqa: E402
from run import Shop  # noqa: E402

SECONDS = 10
CONNECTIONS = int(os.environ.get("PROFILE_CONNECTIONS", "16"))
PURCHASES = int(os.environ.get("PROFILE_PURCHASES", "20"))


# Threads that run blocking work: tokio's spawn_blocking (as the kernel shortens the
# name), orders' index readers and users' argon2 hashers.
BLOCKING = ("tokio-rt-worker", "index-reader-", "argon2-")


def part(comm, pid, pids):
    """The part of the shop a sample belongs to."""
    if comm.startswith(BLOCKING):
        owner = next((name for name, p in pids.items() if p == pid), "?")
        return f"{owner}: {comm.rstrip('0123456789')} threads"
    if comm == "swapper":
        return "idle"
    return next((name for name, p in pids.items() if p == pid), comm)


def top_symbols(data, pid, comm, count=4):
    """The busiest symbols of the threads called `comm` of process `pid`."""
    comms = ["--comms", comm]
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "-g", "none", "--sort", "dso,sym",
                             "--stdio", "--pid", str(pid), *comms], capture_output=True, text=True).stdout
    lines = [line.strip() for line in report.splitlines() if line.strip() and not line.startswith("#")]
    return [line[:110] for line in lines[:count]]


def main():
    out = os.path.join(TARGET, "bench", "read.perf.data")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    shop = Shop()
    shop.start()
    try:
        gw = lambda path: shop.url("gateway", path)  # noqa: E731
        request("POST", shop.url("users", "/users"), {"username": "reader", "password": "bench-password"})
        token = request("POST", gw("/api/login"), {"username": "reader", "password": "bench-password"})[1]["access_token"]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            bought = pool.map(lambda _: request("POST", gw("/api/buy"), {"article_id": 2}, token=token)[0],
                              range(PURCHASES))
            assert all(status == 201 for status in bought)
        env = dict(os.environ, BENCH_METHOD="GET", BENCH_BODY="", BENCH_TOKEN=token)
        wrk = subprocess.Popen(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS + 6}s", "-s",
                                os.path.join(ROOT, "bench", "wrk.lua"), gw("/api/purchases")],
                               env=env, stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        subprocess.run(["perf", "record", "-F", "999", "-a", "-g", "-o", out, "--", "sleep", str(SECONDS)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        rate = [line for line in wrk.communicate()[0].splitlines() if line.startswith("Requests/sec")]
        pids = {name: proc.pid for name, proc in shop.procs.items()}
    finally:
        shop.stop()
    samples = subprocess.run(["perf", "script", "-i", out, "-F", "comm,pid", "-G"],
                             capture_output=True, text=True).stdout
    by_part = collections.Counter()
    for line in samples.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            by_part[part(fields[0], int(fields[1]), pids)] += 1
    total = sum(by_part.values())
    print(f"{rate[0] if rate else 'no rate'}; {total} samples over {SECONDS} s on every CPU")
    for key, n in by_part.most_common():
        print(f"{100 * n / total:5.1f}%  {key}")
        name = key.split(":")[0]
        if name in pids:
            comm = name
            if key.endswith(" threads"):
                prefix = key.split(": ")[1][:-len(" threads")]
                comm = ",".join(f"{prefix}{n}" for n in range(8)) if prefix.endswith("-") else prefix
            for sym in top_symbols(out, pids[name], comm):
                print(f"           {sym}")
    print(f"perf data: {out} (perf report -i {out})")


if __name__ == "__main__":
    main()
