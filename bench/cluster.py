#!/usr/bin/env python3
"""make cluster: the shop on a three-node NATS cluster on this machine.

Three nats-servers (nats-cluster.conf, one JetStream store each under data/cluster/),
streams replicated on the three nodes (SHOP_STREAM_REPLICAS=3), and two instances of
each service, each with its own data directory, each connected to a different node
first with the other two as fallbacks. Prints where everything listens; Ctrl-C stops
everything (services first, then the nodes).
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RELEASE = os.path.join(TARGET, "release")
DATA = os.path.join(ROOT, "data", "cluster")
USERS = ["gateway", "auth", "users", "orders", "ops"]
NODES = [  # name, client port, monitoring port, route port
    ("n1", 4222, 8222, 6222),
    ("n2", 4223, 8223, 6223),
    ("n3", 4224, 8224, 6224),
]
# Instance A listens on 5000-5003, instance B on 6000-6003.
INSTANCES = {"a": 5000, "b": 6000}
SERVICE_PORTS = {"gateway": 0, "auth": 1, "users": 2, "orders": 3}


def passwords():
    """The NATS passwords, made once (mode 0600), like the stack's."""
    path = os.path.join(DATA, "secrets", "nats-passwords.env")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# NATS passwords of the shop's cluster, made by make cluster. Keep private.\n")
            for user in USERS:
                f.write(f"SHOP_NATS_PASSWORD_{user.upper()}=p{secrets.token_hex(24)}\n")
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, value = line.strip().split("=", 1)
                values[key] = value
    return values


def free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait(predicate, what, seconds=60, procs=()):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for name, proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}; see {DATA}/{name}.log")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready within {seconds} s; see the logs in {DATA}")


def get_json(url):
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def streams_led():
    """Whether every stream the cluster holds has a leader (true with none yet)."""
    jsz = get_json(f"http://127.0.0.1:{NODES[0][2]}/jsz?streams=true")
    streams = [s for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])]
    return all(s.get("cluster", {}).get("leader") for s in streams)


def main():
    for name, client, monitor, route in NODES:
        for port in (client, monitor, route):
            if not free(port):
                raise SystemExit(f"port {port} is taken (is `make run` or another nats-server running?): stop it first")
    for instance, base in INSTANCES.items():
        for service, offset in SERVICE_PORTS.items():
            if not free(base + offset):
                raise SystemExit(f"port {base + offset} is taken: stop what uses it first")
    secret = passwords()
    quoted = {k: f'"{v}"' for k, v in secret.items()}
    procs = []

    def start(name, args, env):
        log = open(os.path.join(DATA, f"{name}.log"), "a")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=ROOT)
        procs.append((name, proc))
        return proc

    try:
        for name, client, monitor, route in NODES:
            store = os.path.join(DATA, name, "jetstream")
            os.makedirs(store, mode=0o700, exist_ok=True)
            env = dict(os.environ, **quoted,
                       SHOP_NODE_NAME=f'"{name}"', SHOP_NODE_LISTEN=f'"127.0.0.1:{client}"',
                       SHOP_NODE_MONITOR=f'"127.0.0.1:{monitor}"', SHOP_NODE_ROUTES=f'"127.0.0.1:{route}"',
                       SHOP_NODE_STORE=json.dumps(store))
            start(f"nats-{name}", ["nats-server", "-c", os.path.join(ROOT, "nats-cluster.conf")], env)
        # JetStream answers once the three have elected a meta leader.
        wait(lambda: get_json(f"http://127.0.0.1:{NODES[0][2]}/jsz").get("meta_cluster", {}).get("leader"),
             "the JetStream cluster", procs=procs)
        # After a restart the streams kept on disk elect their leaders too.
        wait(streams_led, "the streams' leaders", procs=procs)
        urls = [f"nats://127.0.0.1:{client}" for _, client, _, _ in NODES]
        order = {"a": urls, "b": urls[1:] + urls[:1]}
        for service in ["users", "auth", "orders", "gateway"]:
            for instance, base in INSTANCES.items():
                port = base + SERVICE_PORTS[service]
                home = os.path.join(DATA, f"{service}-{instance}")
                os.makedirs(home, mode=0o700, exist_ok=True)
                env = dict(os.environ, NATS_URL=",".join(order[instance]), NATS_USER=service,
                           NATS_PASSWORD=secret[f"SHOP_NATS_PASSWORD_{service.upper()}"],
                           SHOP_STREAM_REPLICAS="3", RUST_LOG=os.environ.get("RUST_LOG", "info"),
                           USERS_HTTP_ADDR=f"127.0.0.1:{port}", USERS_DB=os.path.join(home, "users.db"),
                           AUTH_HTTP_ADDR=f"127.0.0.1:{port}",
                           ORDERS_HTTP_ADDR=f"127.0.0.1:{port}",
                           ORDERS_PURCHASES_FILE=os.path.join(home, "purchases.json"),
                           ORDERS_CATALOG_FILE=os.path.join(home, "catalog.json"),
                           GATEWAY_HTTP_ADDR=f"127.0.0.1:{port}", GATEWAY_SECRETS_DIR=os.path.join(home, "secrets"),
                           GATEWAY_NATS_MONITOR_URL=f"http://127.0.0.1:{NODES[0 if instance == 'a' else 1][2]}")
                start(f"{service}-{instance}", [os.path.join(RELEASE, service)], env)
                wait(lambda: get_json(f"http://127.0.0.1:{port}/healthz").get("status") == "ok",
                     f"{service}-{instance}", procs=procs)
        print("The shop is running on a three-node NATS cluster:")
        for name, client, monitor, route in NODES:
            print(f"  nats {name}  nats://127.0.0.1:{client}  (monitoring http://127.0.0.1:{monitor}, routes {route})")
        for instance, base in INSTANCES.items():
            print(f"  instance {instance}: gateway http://127.0.0.1:{base}/  auth :{base + 1}  users :{base + 2}  orders :{base + 3}")
        print(f"Streams on 3 replicas; data and logs in {DATA}. Press Ctrl-C to stop.", flush=True)
        # A process that dies (a node killed on purpose, say) is reported, and the rest
        # goes on: the cluster is meant to survive it.
        reported = set()
        while True:
            for name, proc in procs:
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    print(f"{name} exited with {proc.returncode}; the rest goes on (see {DATA}/{name}.log)",
                          file=sys.stderr, flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        for name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
