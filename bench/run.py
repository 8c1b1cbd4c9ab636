#!/usr/bin/env python3
"""make bench: the shop in release builds on a fresh temporary data directory, driven
by wrk, measured the same way every time.

Starts nats-server (the project's nats.conf, its store moved into the temp directory,
plus a `bench` user for the floor), the four services as separate processes (so that
each one's memory and CPU can be read from /proc), and the bus floor; then runs each
scenario for a fixed time after a warm-up, prints a table and writes
<target>/bench/results.json.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import http.client as http_client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ROOT, TARGET, Jaeger, free_port, password, request, server_version,  # noqa: E402
                     wait_for_port, with_sync_always, write_results)

RELEASE = os.path.join(TARGET, "release")
# The nats-server of the bench: the current release `make deps` builds (bench/go_tools.sh),
# or another with BENCH_NATS_SERVER (`system`: the one on PATH, Debian's for `make run`).
CURRENT_SERVER = os.path.join(TARGET, "go-bin", "nats-server")


def nats_server(choice):
    if choice in (None, "", "current"):
        return CURRENT_SERVER if os.path.exists(CURRENT_SERVER) else "nats-server"
    return "nats-server" if choice == "system" else choice


NATS_SERVER = nats_server(os.environ.get("BENCH_NATS_SERVER"))
DURATION = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
TICKS = os.sysconf("SC_CLK_TCK")
SERVICES = ["gateway", "auth", "users", "orders"]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# The body of a sign-up scenario: wrk.lua names each account itself.
SIGN_UP = {"username": "(one per request)", "password": "bench-password"}


class Shop:
    def __init__(self, sync="always", extra_env=None):
        """The shop on one nats-server; `sync` as the stack's --nats-sync: `always` (its
        default) fsyncs every JetStream write before acknowledging it, on 2.10 and newer.
        `extra_env` goes to every process (the OTLP endpoint, say)."""
        self.sync = sync if server_version(NATS_SERVER) >= (2, 10) else "interval"
        self.dir = tempfile.mkdtemp(prefix="shop-bench-")
        self.procs = {}
        # name -> (args, env, output): how to start a process again (make fault).
        self.commands = {}
        self.passwords = {u: password() for u in SERVICES + ["ops", "bench"]}
        self.env = dict(os.environ, RUST_LOG="warn", **(extra_env or {}))
        for user, secret in self.passwords.items():
            # nats-server parses the variable as a config value: quoted, it is a string.
            self.env[f"SHOP_NATS_PASSWORD_{user.upper()}"] = f'"{secret}"'
        self.nats_port, self.monitor_port = free_port(), free_port()
        self.ports = {s: free_port() for s in SERVICES + ["floor"]}
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"

    def url(self, service, path):
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def start(self):
        with open(os.path.join(ROOT, "nats.conf")) as f:
            conf = f.read()
        conf = conf.replace('"data/jetstream"', json.dumps(os.path.join(self.dir, "jetstream")))
        if self.sync == "always":
            conf = with_sync_always(conf)
        conf = conf.replace("  users: [", "  users: [\n    { user: bench, password: $SHOP_NATS_PASSWORD_BENCH }", 1)
        conf_path = os.path.join(self.dir, "nats.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        log = open(os.path.join(self.dir, "nats-server.log"), "w")
        args = [NATS_SERVER, "-c", conf_path, "-p", str(self.nats_port), "-m", str(self.monitor_port)]
        self.commands["nats-server"] = (args, self.env, log)
        self.procs["nats-server"] = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)
        self.procs["nats-server"].log_path = log.name
        wait_for_port(self.nats_port, proc=self.procs["nats-server"], name="nats-server")
        self.start_services("")
        self.procs["floor"] = subprocess.Popen(
            [os.path.join(RELEASE, "examples", "floor"), f"127.0.0.1:{self.ports['floor']}",
             self.nats_url, "bench", self.passwords["bench"]], env=self.env, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode} at start-up")
            try:
                if request("GET", self.url("gateway", "/readyz"), timeout=2)[0] == 200:
                    wait_for_port(self.ports["floor"], proc=self.procs["floor"], name="the floor")
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the shop did not become ready within 60 s; see " + self.dir)

    def start_services(self, suffix):
        """One instance of each service; `suffix` names a further instance ("2"), with
        its own ports and data directory."""
        data = os.path.join(self.dir, f"instance{suffix}" if suffix else "")
        os.makedirs(data, exist_ok=True)
        for service in SERVICES:
            self.ports.setdefault(service + suffix, free_port())
        port = lambda service: self.ports[service + suffix]
        service_env = {
            "users": {"USERS_HTTP_ADDR": f"127.0.0.1:{port('users')}", "USERS_DB": os.path.join(data, "users.db")},
            "auth": {"AUTH_HTTP_ADDR": f"127.0.0.1:{port('auth')}", "AUTH_SECRETS_DIR": os.path.join(data, "secrets")},
            "orders": {"ORDERS_HTTP_ADDR": f"127.0.0.1:{port('orders')}",
                       "ORDERS_PURCHASES_FILE": os.path.join(data, "purchases.json"),
                       "ORDERS_CATALOG_FILE": os.path.join(data, "catalog.json")},
            "gateway": {"GATEWAY_HTTP_ADDR": f"127.0.0.1:{port('gateway')}",
                        "GATEWAY_NATS_MONITOR_URL": f"http://127.0.0.1:{self.monitor_port}",
                        # The load generator is one address; its failed logins are none.
                        "GATEWAY_MAX_FAILED_LOGINS_PER_ADDRESS": "1000000"},
        }
        for service in ["users", "auth", "orders", "gateway"]:
            env = dict(self.env, NATS_URL=self.nats_url, NATS_USER=service,
                       NATS_PASSWORD=self.passwords[service], **service_env[service])
            self.commands[service + suffix] = ([os.path.join(RELEASE, service)], env, None)
            self.procs[service + suffix] = subprocess.Popen([os.path.join(RELEASE, service)], env=env)

    def start_second_instances(self):
        """A second instance of each service, ready when its gateway is."""
        self.start_services("2")
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                ready = all(request("GET", self.url(s + "2", "/readyz"), timeout=2)[0] == 200 for s in SERVICES)
                if ready:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the second instances did not become ready within 60 s; see " + self.dir)

    def stop(self):
        for name, proc in reversed(list(self.procs.items())):
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stack_pids(self):
        return {n: p.pid for n, p in self.procs.items() if n != "floor"}

    def purchase_lines(self, suffix=""):
        try:
            with open(os.path.join(self.dir, f"instance{suffix}" if suffix else "", "purchases.json")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


def wrk(url, connections, seconds, method="GET", body=None, token=None, tokens=()):
    """One wrk run; `tokens`: each request with the next of them (reads of many users)."""
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY=json.dumps(body) if body else "",
               BENCH_TOKEN=token or "", BENCH_TOKENS=" ".join(tokens))
    if body == SIGN_UP:  # a new account per request (bench/wrk.lua)
        env["BENCH_SIGNUP_PREFIX"] = "s" + secrets.token_hex(4)
    threads = str(min(2, connections))
    out = subprocess.run(
        ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", os.path.join(ROOT, "bench", "wrk.lua"), url],
        env=env, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH "))
    return json.loads(line[6:])


def scenario(shop, name, url, connections, method="GET", body=None, token=None, pids=None, on_start=None):
    wrk(url, connections, WARMUP, method, body, token)
    if on_start:
        on_start()
    pids = pids or shop.stack_pids()
    before = {n: cpu_ticks(p) for n, p in pids.items()}
    summary = wrk(url, connections, DURATION, method, body, token)
    after = {n: cpu_ticks(p) for n, p in pids.items()}
    cpu_ms = sum(after[n] - before[n] for n in pids) * 1000 / TICKS
    requests = summary["requests"]
    return {
        "scenario": name,
        "connections": connections,
        "requests": requests,
        "rps": requests / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": summary["status_errors"] + summary["socket_errors"],
        "cpu_ms_per_request": cpu_ms / requests if requests else None,
    }


def paired(shop, name, urls, connections, method="GET", body=None, token=None):
    """`connections` in all, split over `urls` (one wrk each, at once): requests add up,
    the p50 and p99 are the worse of the two."""
    each = connections // len(urls)
    for url in urls:
        wrk(url, each, WARMUP, method, body, token)
    pids = shop.stack_pids()
    before = {n: cpu_ticks(p) for n, p in pids.items()}
    summaries = [None] * len(urls)

    def run(i, url):
        summaries[i] = wrk(url, each, DURATION, method, body, token)

    threads = [threading.Thread(target=run, args=(i, u)) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = {n: cpu_ticks(p) for n, p in pids.items()}
    requests = sum(s["requests"] for s in summaries)
    seconds = max(s["duration_us"] for s in summaries) / 1e6
    cpu_ms = sum(after[n] - before[n] for n in pids) * 1000 / TICKS
    return {
        "scenario": name,
        "connections": connections,
        "requests": requests,
        "rps": requests / seconds,
        "p50_ms": max(s["p50_us"] for s in summaries) / 1000,
        "p99_ms": max(s["p99_us"] for s in summaries) / 1000,
        "errors": sum(s["status_errors"] + s["socket_errors"] for s in summaries),
        "cpu_ms_per_request": cpu_ms / requests if requests else None,
    }


def two_instances(shop, runs, reader, buyer):
    """The same reads and buys with two instances of each service, half the connections
    on each gateway; then checks that both orders instances wrote the same events."""
    shop.start_second_instances()
    gateways = [shop.url("gateway", "/api/purchases"), shop.url("gateway2", "/api/purchases")]
    runs.append(paired(shop, "GET /api/purchases, 2 instances of each", gateways, 64, token=reader))
    buys = [shop.url("gateway", "/api/buy"), shop.url("gateway2", "/api/buy")]
    runs.append(paired(shop, "POST /api/buy, 2 instances of each", buys, 64, "POST", {"article_id": 1}, buyer))
    # Both files follow one stream: once settled they hold the same events, once each.
    deadline = time.time() + 30
    while time.time() < deadline:
        one, two = shop.purchase_lines(), shop.purchase_lines("2")
        if [l["id"] for l in one] == [l["id"] for l in two]:
            break
        time.sleep(0.5)
    ids = [l["id"] for l in one]
    return {"lines": len(one), "same_events_in_both_files": [l["id"] for l in one] == [l["id"] for l in two],
            "duplicate_lines": len(ids) - len(set(ids))}


def without_sync(runs):
    """Buys and sign-ups on a shop whose nats-server fsyncs every two minutes (its own
    default, `--nats-sync interval`), beside the same rows on the power-safe default."""
    if server_version(NATS_SERVER) < (2, 10):
        return  # the rows without a suffix were on this server's default already
    shop = Shop(sync="interval")
    try:
        shop.start()
        request("POST", shop.url("users", "/users"), {"username": "buyer", "password": "bench-password"})
        buyer = request("POST", shop.url("gateway", "/api/login"),
                        {"username": "buyer", "password": "bench-password"})[1]["access_token"]
        runs.append(scenario(shop, "POST /api/buy, sync interval", shop.url("gateway", "/api/buy"), 64, "POST",
                             {"article_id": 1}, buyer))
        runs.append(scenario(shop, "POST /users, sync interval", shop.url("users", "/users"), 4, "POST", SIGN_UP))
    finally:
        shop.stop()


def on_a_cluster(runs, sync=True):
    """The same reads and buys on three clustered nats-servers (streams on three
    replicas) with two instances of each service, half the connections on each gateway;
    then, under reads and buyers, the node leading ORDERS is killed and started again,
    and the buyers' recovery is measured as in the cluster fault test."""
    import cluster as shop_cluster
    import cluster_fault
    server = nats_server(os.environ.get("BENCH_CLUSTER_SERVER")) if os.environ.get("BENCH_CLUSTER_SERVER") else NATS_SERVER
    sync = sync and os.environ.get("SHOP_NATS_SYNC", "always") == "always"
    data = tempfile.mkdtemp(prefix="shop-bench-cluster-")
    c = shop_cluster.Cluster(data, RELEASE, nats_server=server, base="free", sync_always=sync,
                             extra_env=dict(cluster_fault.CLIENTS_ON_ONE_ADDRESS, RUST_LOG="warn"))
    try:
        c.start()
        gateways = lambda path: [c.url("gateway", i, path) for i in shop_cluster.INSTANCES]
        for name in ["reader", "buyer"]:
            request("POST", c.url("users", "a", "/users"), {"username": name, "password": "bench-password"})
        token = lambda name: request("POST", gateways("/api/login")[1], {"username": name, "password": "bench-password"})[1]["access_token"]
        reader, buyer = token("reader"), token("buyer")
        for _ in range(20):
            assert request("POST", gateways("/api/buy")[0], {"article_id": 2}, token=reader)[0] == 201
        runs.append(paired(c, "GET /api/purchases, cluster", gateways("/api/purchases"), 64, token=reader))
        if not sync:
            runs.append(paired(c, "POST /api/buy, cluster, sync interval", gateways("/api/buy"), 64, "POST",
                               {"article_id": 1}, buyer))
            return None
        runs.append(paired(c, "POST /api/buy, cluster", gateways("/api/buy"), 64, "POST", {"article_id": 1}, buyer))
        runs.append(paired(c, "POST /users, cluster", [c.url("users", i, "/users") for i in shop_cluster.INSTANCES],
                           4, "POST", SIGN_UP))
        # A node lost under load: reads on both gateways all along, buyers measured.
        load = cluster_fault.Load(c)
        load.start(signups=0)
        readers = [threading.Thread(target=wrk, args=(url, 8, 20), kwargs={"token": reader})
                   for url in gateways("/api/purchases")]
        for t in readers:
            t.start()
        time.sleep(3)
        leader, t0, ended, current = cluster_fault.kill_orders_leader(c)
        cluster_fault.wait_until(lambda: load.recovered_after(t0) is not None, ended + 30 - time.monotonic())
        recovered = load.recovered_after(t0)
        longest = load.longest_wait(t0, max(ended, t0 + (recovered or 30)))
        load.finish()
        for t in readers:
            t.join()
        files = [[line["id"] for line in cluster_fault.purchases(c, i)] for i in shop_cluster.INSTANCES]
        return {"server": subprocess.run([server, "--version"], capture_output=True, text=True).stdout.strip()
                + (" with sync_interval: always" if sync else ""),
                "node_killed": leader, "recovery_s": recovered, "longest_wait_s": longest,
                "replicas_current_s": current, "purchases_during": len(load.bought),
                "same_events_in_both_files": files[0] == files[1], "lines": len(files[0]),
                "duplicate_lines": len(files[0]) - len(set(files[0]))}
    finally:
        c.stop()
        if sys.exc_info()[0] is None:
            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"the cluster's logs are kept in {data}")


def traces_off_and_on():
    """make bench-traces: reads, buys and logins with traces off (the default), then on
    at full sampling, exported to a Jaeger on the same machine, each on a fresh shop."""
    runs = []
    home = tempfile.mkdtemp(prefix="shop-bench-traces-")
    try:
        for mode in ("off", "on"):
            with (Jaeger(home) if mode == "on" else contextlib.nullcontext()) as jaeger:
                extra = {} if jaeger is None else {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp,
                                                   "OTEL_TRACES_SAMPLER": "always_on"}
                shop = Shop(extra_env=extra)
                try:
                    shop.start()
                    gw = lambda path: shop.url("gateway", path)  # noqa: E731
                    for name in ["reader", "buyer"]:
                        request("POST", shop.url("users", "/users"), {"username": name, "password": "bench-password"})
                    token = lambda name: request("POST", gw("/api/login"),  # noqa: E731
                                                 {"username": name, "password": "bench-password"})[1]["access_token"]
                    reader, buyer = token("reader"), token("buyer")
                    for _ in range(20):
                        assert request("POST", gw("/api/buy"), {"article_id": 2}, token=reader)[0] == 201
                    rows = [scenario(shop, "GET /api/purchases", gw("/api/purchases"), c, token=reader) for c in (16, 64)]
                    rows.append(scenario(shop, "POST /api/buy", gw("/api/buy"), 64, "POST", {"article_id": 1}, buyer))
                    rows.append(scenario(shop, "POST /api/login", gw("/api/login"), 4, "POST",
                                         {"username": "reader", "password": "bench-password"}))
                finally:
                    shop.stop()
                for row in rows:
                    row["traces"] = mode
                runs.extend(rows)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    write_results("traces.json", {"machine": machine(), "seconds": DURATION, "scenarios": runs})
    print(f"\n{'scenario':24} {'conns':>5} {'traces':>6} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'cpu ms/req':>10}")
    for r in sorted(runs, key=lambda r: (r["scenario"], r["connections"], r["traces"])):
        cpu = f"{r['cpu_ms_per_request']:.3f}" if r["cpu_ms_per_request"] is not None else "-"
        print(f"{r['scenario']:24} {r['connections']:>5} {r['traces']:>6} {r['rps']:>9.0f} {r['p50_ms']:>7.2f} "
              f"{r['p99_ms']:>7.2f} {r['errors']:>6} {cpu:>10}")


def main():
    if shutil.which("wrk") is None or shutil.which(NATS_SERVER) is None:
        raise SystemExit("wrk and nats-server are needed: run `make deps`")
    if os.environ.get("BENCH_TRACES"):
        traces_off_and_on()
        return
    if os.environ.get("BENCH_CLUSTER_ONLY"):
        runs = []
        lost = on_a_cluster(runs)
        for r in runs:
            print(f"{r['scenario']:30} {r['connections']:>3} {r['rps']:>9.0f} p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} errors {r['errors']}")
        print(json.dumps(lost))
        return
    shop = Shop()
    results = {"machine": machine(), "seconds": DURATION, "scenarios": []}
    try:
        shop.start()
        gw = lambda path: shop.url("gateway", path)
        for name in ["reader", "buyer"]:
            request("POST", shop.url("users", "/users"), {"username": name, "password": "bench-password"})
        token = lambda name: request("POST", gw("/api/login"), {"username": name, "password": "bench-password"})[1]["access_token"]
        reader, buyer = token("reader"), token("buyer")
        for _ in range(20):
            assert request("POST", gw("/api/buy"), {"article_id": 2}, token=reader)[0] == 201
        runs = results["scenarios"]
        if os.environ.get("BENCH_READS_ONLY"):
            for c in (16, 64):
                runs.append(scenario(shop, "GET /api/purchases", gw("/api/purchases"), c, token=reader))
                runs.append(scenario(shop, "one-hop bus floor", shop.url("floor", "/one-hop"), c))
            for r in runs:
                print(f"{r['scenario']:30} {r['connections']:>3} {r['rps']:>9.0f} p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f}")
            return
        for c in (1, 16, 64):
            runs.append(scenario(shop, "GET /api/purchases", gw("/api/purchases"), c, token=reader))
            floor_pids = {"floor": shop.procs["floor"].pid, "nats-server": shop.procs["nats-server"].pid}
            runs.append(scenario(shop, "bare HTTP floor", shop.url("floor", "/bare"), c,
                                 pids={"floor": shop.procs["floor"].pid}))
            runs.append(scenario(shop, "one-hop bus floor", shop.url("floor", "/one-hop"), c, pids=floor_pids))
            if c > 1:
                runs.extend(nats_bench(shop, c))
        counted = {}
        buy = scenario(shop, "POST /api/buy", gw("/api/buy"), 64, "POST", {"article_id": 1}, buyer,
                       on_start=lambda: counted.update(before=len(shop.purchase_lines())))
        time.sleep(1)
        lines = shop.purchase_lines()
        ids = [l["id"] for l in lines]
        answered = buy["requests"] - buy["errors"]
        # wrk stops counting at the deadline: up to one request per connection is still
        # answered (and written) after it, so lines - answered lies in [0, 64].
        buy["lines_written"] = len(lines) - counted["before"]
        buy["duplicate_lines"] = len(ids) - len(set(ids))
        buy["answered_201_measured"] = answered
        runs.append(buy)
        # The same buys while another process writes to the shop's disk: the appender's
        # fsync waits behind its writes. A buy not on disk within 2.5 s is a 503
        # not_on_disk_yet (counted in errors), which a client repeats with its key.
        writer = disk_writer(shop.dir)
        try:
            runs.append(scenario(shop, "POST /api/buy beside a disk writer", gw("/api/buy"), 64, "POST",
                                 {"article_id": 1}, buyer))
        finally:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait()
            try:
                os.remove(os.path.join(shop.dir, "disk-writer"))
            except FileNotFoundError:
                pass
        # Sign-ups: argon2 bounds them; the stream's fsync is in each one's latency.
        runs.append(scenario(shop, "POST /users", shop.url("users", "/users"), 4, "POST", SIGN_UP))
        # One address may have 4 logins in flight (more get 429 at once): 4 connections
        # keep both hashers busy.
        runs.append(scenario(shop, "POST /api/login", gw("/api/login"), 4, "POST",
                             {"username": "reader", "password": "bench-password"}))
        storm = login_flood(gw, DURATION + WARMUP + 2)
        time.sleep(1)
        during = scenario(shop, "GET /api/purchases during a login storm", gw("/api/purchases"), 16, token=reader)
        storm.wait()
        runs.append(during)
        results["login_during_flood"] = login_during_flood(shop, gw)
        results["argon2_verify_ms"] = argon2_ms(shop, gw)
        results["peak_rss_mb"] = {n: round(peak_rss_mb(p), 1) for n, p in shop.stack_pids().items()}
        results["two_instances"] = two_instances(shop, runs, reader, buyer)
    finally:
        shop.stop()
    without_sync(runs)
    results["cluster"] = on_a_cluster(runs)
    on_a_cluster(runs, sync=False)
    report(results)


NATS_CLI = os.path.join(TARGET, "go-bin", "nats")


def nats_bench(shop, clients):
    """The official tool's figures on the same server, for the floors beside them:
    `nats bench service` (one responder, `clients` requesters, 128-byte messages) and,
    once, `nats bench pub` (one publisher). Nothing when `make deps` has not built the
    CLI."""
    if not os.path.exists(NATS_CLI):
        print(f"({NATS_CLI} is missing: run `make deps` for the nats bench figures)")
        return []
    auth = ["-s", shop.nats_url, "--user", "bench", "--password", shop.passwords["bench"]]
    subject = "bench.nats"
    serve = subprocess.Popen([NATS_CLI, *auth, "bench", "service", "serve", subject, "--clients", "1",
                              "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        out = subprocess.run([NATS_CLI, *auth, "bench", "service", "request", subject, "--clients", str(clients),
                              "--msgs", str(max(DURATION, 1) * 10000), "--no-progress"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        serve.terminate()
        serve.wait()
    rows = [bench_row(f"nats bench service request ({clients} clients)", clients, out)]
    if clients == 16:
        out = subprocess.run([NATS_CLI, *auth, "bench", "pub", "bench.pub", "--clients", "1",
                              "--msgs", "2000000", "--no-progress"], capture_output=True, text=True, check=True).stdout
        rows.append(bench_row("nats bench pub (1 publisher, 128 B)", 1, out))
    return rows


def bench_row(name, connections, out):
    """A row of the table from `nats bench`'s aggregated line."""
    rate = re.search(r"(?:aggregated stats|publisher stats): ([\d,]+) msgs/sec", out)
    p50 = re.search(r"P50:? ([\d,.]+)us", out)
    p99 = re.search(r"P99:? ([\d,.]+)us", out)
    number = lambda m: float(m.group(1).replace(",", "")) if m else 0.0
    return {"scenario": name, "connections": connections, "requests": None, "rps": number(rate),
            "p50_ms": number(p50) / 1000, "p99_ms": number(p99) / 1000, "errors": 0, "cpu_ms_per_request": None}


def disk_writer(directory):
    """Another process writing to `directory`'s disk without a pause: 256 MB at a time,
    fsynced, over and over (as a build or a backup beside the shop would)."""
    path = os.path.join(directory, "disk-writer")
    return subprocess.Popen(
        ["sh", "-c", f'while :; do dd if=/dev/zero of="{path}" bs=1M count=256 conv=fsync status=none; done'],
        start_new_session=True)


def login_flood(gw, seconds):
    """64 connections logging in from one address, in the background."""
    return subprocess.Popen(
        ["wrk", "-t", "1", "-c", "64", "-d", f"{seconds}s", "-s", os.path.join(ROOT, "bench", "wrk.lua"),
         gw("/api/login")],
        env=dict(os.environ, BENCH_METHOD="POST", BENCH_BODY=json.dumps({"username": "buyer", "password": "bench-password"}), BENCH_TOKEN=""),
        stdout=subprocess.DEVNULL)


def login_during_flood(shop, gw):
    """Logins of a person on another address (127.0.0.2) while one address floods
    /api/login with 64 connections."""
    flood = login_flood(gw, DURATION + 2)
    time.sleep(1)
    times, statuses = [], []
    port = shop.ports["gateway"]
    body = json.dumps({"username": "reader", "password": "bench-password"})
    for _ in range(20):
        started = time.perf_counter()
        conn = http_client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
        try:
            conn.request("POST", "/api/login", body, {"Content-Type": "application/json"})
            statuses.append(conn.getresponse().status)
        except OSError:
            statuses.append(None)
        finally:
            conn.close()
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(0.2)
    flood.wait()
    times.sort()
    return {"median_ms": times[len(times) // 2], "max_ms": times[-1],
            "ok": sum(1 for s in statuses if s == 200), "of": len(statuses)}


def argon2_ms(shop, gw):
    """The time of one login alone: one argon2id verify plus two bus hops."""
    times = []
    for _ in range(20):
        started = time.perf_counter()
        request("POST", gw("/api/login"), {"username": "reader", "password": "bench-password"})
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2]


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": cpu,
            "nats_server": subprocess.run([NATS_SERVER, "--version"], capture_output=True, text=True).stdout.strip()}


def report(results):
    runs = results["scenarios"]
    bare = {r["connections"]: r["rps"] for r in runs if r["scenario"] == "bare HTTP floor"}
    hop = {r["connections"]: r["rps"] for r in runs if r["scenario"] == "one-hop bus floor"}
    print(f"\nmachine: {results['machine']['cores']} cores, {results['machine']['cpu']}, {results['machine']['nats_server']}")
    print(f"{'scenario':44} {'conns':>5} {'req/s':>9} {'vs bare':>8} {'vs 1hop':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'cpu ms/req':>10}")
    pct = lambda x: ("%.0f%%" % (x * 100)) if x else "-"
    for r in runs:
        reads = r["scenario"] == "GET /api/purchases"
        r["ratio_to_bare"] = r["rps"] / bare[r["connections"]] if reads and r["connections"] in bare else None
        r["ratio_to_one_hop"] = r["rps"] / hop[r["connections"]] if reads and r["connections"] in hop else None
        cpu = f"{r['cpu_ms_per_request']:.3f}" if r["cpu_ms_per_request"] is not None else "-"
        print(f"{r['scenario']:44} {r['connections']:>5} {r['rps']:>9.0f} {pct(r['ratio_to_bare']):>8} {pct(r['ratio_to_one_hop']):>8} "
              f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>6} {cpu:>10}")
    buy = next(r for r in runs if r["scenario"] == "POST /api/buy")
    print(f"\nbuys: {buy['answered_201_measured']} answered 201 in the measured run, {buy['lines_written']} lines written "
          f"in it (the difference, at most one per connection, were answered after wrk stopped counting), "
          f"{buy['duplicate_lines']} duplicated ids in purchases.json")
    flood = results["login_during_flood"]
    print(f"a login from another address while one address floods /api/login with 64 connections: "
          f"{flood['ok']}/{flood['of']} answered 200, median {flood['median_ms']:.1f} ms, max {flood['max_ms']:.1f} ms")
    two = results["two_instances"]
    print(f"two instances of each: both purchases.json files hold the same {two['lines']} events: "
          f"{two['same_events_in_both_files']}; duplicated ids: {two['duplicate_lines']}")
    lost = results["cluster"]
    shown = lambda x: "-" if x is None else f"{x:.2f} s"
    print(f"cluster ({lost['server']}): the node leading ORDERS ({lost['node_killed']}) killed under load and "
          f"started again after 3 s: every buyer buying again after {shown(lost['recovery_s'])}, the longest "
          f"wait of one buyer {shown(lost['longest_wait_s'])}, every replica current after "
          f"{shown(lost['replicas_current_s'])}; both purchases.json the same {lost['lines']} events: "
          f"{lost['same_events_in_both_files']}, duplicated ids: {lost['duplicate_lines']}")
    print(f"one login alone: {results['argon2_verify_ms']:.1f} ms median; "
          f"peak RSS (MB): {', '.join(f'{k} {v}' for k, v in results['peak_rss_mb'].items())}")
    write_results("results.json", results)


if __name__ == "__main__":
    main()
