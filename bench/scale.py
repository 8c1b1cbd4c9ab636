#!/usr/bin/env python3
"""make bench-scale: what the shop costs as it grows (release builds, not part of
`make test`).

For each size of SCALE_SIZES (default 1,000,000 and 10,000,000 purchases), on a fresh
shop as `make bench` starts it: durable buys a second on the empty shop; then the
`ORDERS` stream is filled straight from a tool (stack/examples/fill.rs: the purchases
spread over 10,000 buyers, plus 100,000 of one heavy buyer and 100 of one light buyer,
whose history is as long at every size), and orders writes them into
its purchases.json as it would have; then are measured orders' start-up after a restart
and cold (its file removed: written again from the stream), its RSS, `GET /api/purchases`
at 16 connections of an ordinary buyer (whole, and a first page of 50), of 200 ordinary
buyers in turn (whole: more than orders keeps in memory), of the light
buyer (whole) and a first page (50) of the heavy one, the heavy
buyer's whole history (seconds, MB/s), and durable buys a second at that size. Prints a
table and writes <target>/bench/scale.json. nats-server runs with its own fsync interval
(`--nats-sync interval`): see `one_size`.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the bench's Shop and wrk)
from harness import PATIENCE, request, wait_until, write_results  # noqa: E402

SIZES = [int(s) for s in os.environ.get("SCALE_SIZES", "1000000,10000000").split(",")]
BUYERS = 10_000
HEAVY = int(os.environ.get("SCALE_HEAVY", "100000"))
LIGHT = 100
# Ordinary buyers whose whole histories are read in turn (200 of about 170 KB at ten
# million: more than orders keeps).
MANY = int(os.environ.get("SCALE_MANY", "200"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
PASSWORD = "scale-password"


def rss_mb(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def recorded(shop):
    """Purchases in orders' file, from its metrics."""
    status, _ = request("GET", shop.url("orders", "/readyz"))
    if status != 200:
        return -1
    with urllib.request.urlopen(shop.url("orders", "/metrics"), timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("shop_purchases_recorded "):
                return int(line.split()[1])
    return -1


def restart_orders(shop, remove_file=False):
    """Stops orders (SIGTERM), starts it again, and returns the seconds until it answers
    on both doors."""
    proc = shop.procs["orders"]
    proc.terminate()
    proc.wait(timeout=PATIENCE)
    if remove_file:
        os.remove(os.path.join(shop.dir, "purchases.json"))
    args, env, out = shop.commands["orders"]
    t0 = time.monotonic()
    shop.procs["orders"] = subprocess.Popen(args, env=env, stdout=out, stderr=out)
    took = wait_until(lambda: request("GET", shop.url("orders", "/readyz"), timeout=2)[0] == 200, 30 * 60)
    if took is None:
        raise SystemExit("orders did not come back")
    return time.monotonic() - t0


def logged_in(shop, name):
    """A token of a new account `name`."""
    request("POST", shop.url("users", "/users"), {"username": name, "password": PASSWORD})
    status, body = request("POST", shop.url("gateway", "/api/login"), {"username": name, "password": PASSWORD})
    if status != 200:
        raise SystemExit(f"login of {name}: {status} {body}")
    return body["access_token"]


def buys(shop, token):
    # The fill's writes, which nats-server leaves to the kernel (sync="interval"), would
    # otherwise be written back to disk during the measurement, against orders' fsyncs.
    os.sync()
    summary = run.wrk(shop.url("gateway", "/api/buy"), 64, SECONDS, "POST", {"article_id": 1}, token)
    return {"rps": summary["requests"] / (summary["duration_us"] / 1e6), "p99_ms": summary["p99_us"] / 1000,
            "errors": summary["status_errors"] + summary["socket_errors"]}


def reads(shop, url, token, connections=16, tokens=()):
    summary = run.wrk(url, connections, SECONDS, token=token, tokens=tokens)
    return {"rps": summary["requests"] / (summary["duration_us"] / 1e6), "p50_ms": summary["p50_us"] / 1000,
            "p99_ms": summary["p99_us"] / 1000, "errors": summary["status_errors"] + summary["socket_errors"]}


def one_size(size):
    # The stream is filled by millions of publishes: with nats-server fsyncing each one
    # (the shop's power-safe default) that alone would take an hour at ten million. The
    # buys here are measured on the same setting at both sizes, so they compare.
    shop = run.Shop(sync="interval")
    try:
        shop.start()
        gw = lambda path: shop.url("gateway", path)
        tokens = {}
        for name in ["user42", "heavy", "light", "buyer"]:
            tokens[name] = logged_in(shop, name)
        result = {"purchases": size, "heavy": HEAVY, "buyers": BUYERS}
        result["buys_empty"] = buys(shop, tokens["buyer"])
        bought = recorded(shop)
        fill = subprocess.run([os.path.join(run.RELEASE, "examples", "fill"), shop.nats_url, "bench",
                               shop.passwords["bench"], str(size), str(BUYERS), str(HEAVY), str(LIGHT)],
                              capture_output=True, text=True, check=True)
        result["fill"] = json.loads(fill.stdout)
        expected = bought + size + HEAVY + LIGHT
        t0 = time.monotonic()
        if wait_until(lambda: recorded(shop) >= expected, 60 * 60) is None:
            raise SystemExit(f"orders did not write the {expected} purchases")
        result["written_s"] = round(time.monotonic() - t0, 1)
        os.sync()
        result["start_after_restart_s"] = round(restart_orders(shop), 2)
        result["orders_rss_mb"] = round(rss_mb(shop.procs["orders"].pid), 1)
        result["read_ordinary"] = reads(shop, gw("/api/purchases"), tokens["user42"])
        first_page = gw("/api/purchases?limit=50&order=newest")
        result["first_page_ordinary"] = reads(shop, first_page, tokens["user42"])
        # Whole histories of many ordinary buyers in turn: more than orders keeps of
        # pages (16 MB), so each is read from the index.
        many = [logged_in(shop, f"user{1000 + i}") for i in range(MANY)]
        result["read_ordinary_many"] = reads(shop, gw("/api/purchases"), None, tokens=many)
        result["read_light"] = reads(shop, gw("/api/purchases"), tokens["light"])
        result["first_page_heavy"] = reads(shop, first_page, tokens["heavy"])
        t0 = time.monotonic()
        out = subprocess.run(["curl", "-s", "-o", os.path.join(shop.dir, "heavy.json"), "-w", "%{http_code} %{size_download}",
                              "-H", "Authorization: Bearer " + tokens["heavy"], gw("/api/purchases")],
                             capture_output=True, text=True, check=True).stdout.split()
        seconds = time.monotonic() - t0
        with open(os.path.join(shop.dir, "heavy.json")) as f:
            items = len(json.load(f)["items"])
        result["heavy_whole"] = {"status": int(out[0]), "items": items, "seconds": round(seconds, 2),
                                 "mb_per_s": round(int(out[1]) / 1e6 / seconds, 1)}
        result["buys"] = buys(shop, tokens["buyer"])
        result["cold_start_s"] = round(restart_orders(shop, remove_file=True), 1)
        result["orders_peak_rss_mb"] = round(rss_mb(shop.procs["orders"].pid, "VmHWM:"), 1)
        return result
    finally:
        shop.stop()


def main():
    fill = os.path.join(run.RELEASE, "examples", "fill")
    if not os.path.exists(fill):
        raise SystemExit("build first: make bench-scale")
    results = []
    for size in SIZES:
        print(f"== {size:,} purchases", flush=True)
        results.append(one_size(size))
        print(json.dumps(results[-1]), flush=True)
    p = lambda r: f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}"
    print(f"\n{'purchases':>11} {'start (restart)':>15} {'start (cold)':>12} {'orders RSS':>10} "
          f"{'ordinary whole':>15} {f'{MANY} ordinary':>14} {'ordinary page':>14} {'light whole':>12} {'heavy page':>12} "
          f"{'heavy whole':>16} {'buys/s (empty)':>18}   (reads: p50/p99 ms at 16 connections)")
    for r in results:
        print(f"{r['purchases']:>11,} {r['start_after_restart_s']:>13} s {r['cold_start_s']:>10} s "
              f"{r['orders_rss_mb']:>7} MB {p(r['read_ordinary']):>15} {p(r['read_ordinary_many']):>14} "
              f"{p(r['first_page_ordinary']):>14} "
              f"{p(r['read_light']):>12} {p(r['first_page_heavy']):>12} "
              f"{r['heavy_whole']['seconds']:>6} s {r['heavy_whole']['mb_per_s']:>5} MB/s "
              f"{r['buys']['rps']:>8.0f} ({r['buys_empty']['rps']:.0f})")
    write_results("scale.json", results)


if __name__ == "__main__":
    main()
