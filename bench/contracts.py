#!/usr/bin/env python3
"""The contract check of `make test`: schemathesis (from PyPI, pinned) against each
door's /openapi.json, with a valid Bearer token, on the whole shop started by the
stack launcher on free ports with a fresh data directory.

Bounded: a fixed number of examples per operation, a fixed seed, a time limit per
door. Fails on any 5xx and on any answer that breaks its own schema. Logout operations
are left out (they would revoke the token the run uses; they are tested in Rust).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SCHEMATHESIS = "schemathesis==4.32.5"
EXAMPLES = os.environ.get("CONTRACT_EXAMPLES", "20")
SEED = os.environ.get("CONTRACT_SEED", "20261125")
DOOR_SECONDS = 300

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PATIENCE, ROOT, TARGET, free_port, get_json  # noqa: E402

VENV = os.path.join(TARGET, "contracts-venv")


def venv_ready():
    binary = os.path.join(VENV, "bin", "schemathesis")
    if os.path.exists(binary):
        return binary
    print(f"installing {SCHEMATHESIS} into {VENV}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", SCHEMATHESIS], check=True)
    return binary


def main():
    schemathesis = venv_ready()
    stack = os.path.join(TARGET, "debug", "stack")
    if not os.path.exists(stack):
        subprocess.run(["cargo", "build", "-p", "stack"], check=True, cwd=ROOT)
    data = tempfile.mkdtemp(prefix="shop-contracts-")
    ports = {name: free_port() for name in ["gateway", "auth", "users", "orders", "nats", "monitor"]}
    env = dict(os.environ, SHOP_DATA_DIR=data, RUST_LOG="warn",
               STACK_NATS_PORT=str(ports["nats"]), STACK_NATS_MONITOR_PORT=str(ports["monitor"]),
               GATEWAY_HTTP_ADDR=f"127.0.0.1:{ports['gateway']}", AUTH_HTTP_ADDR=f"127.0.0.1:{ports['auth']}",
               USERS_HTTP_ADDR=f"127.0.0.1:{ports['users']}", ORDERS_HTTP_ADDR=f"127.0.0.1:{ports['orders']}",
               # The fuzzer is one address: its failed logins are not an attack.
               GATEWAY_MAX_FAILED_LOGINS_PER_ADDRESS="1000000")
    env.pop("NATS_URL", None)
    # The launcher reads nats.conf from the directory it runs in; its JetStream store
    # then lands in data/jetstream there: run it from a copy beside the temp data.
    workdir = os.path.join(data, "run")
    os.makedirs(workdir)
    shutil.copy(os.path.join(ROOT, "nats.conf"), workdir)
    log = open(os.path.join(data, "stack.log"), "w")
    proc = subprocess.Popen([stack], env=env, cwd=workdir, stdout=log, stderr=log)
    failed = []
    try:
        base = lambda door: f"http://127.0.0.1:{ports[door]}"
        deadline = time.time() + PATIENCE
        while True:
            try:
                if get_json(base("gateway") + "/readyz").get("ready"):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the shop did not start; see {log.name}")
            time.sleep(0.3)
        for door in ["users", "auth", "orders", "gateway"]:
            token = get_json(base("gateway") + "/api/login", {"username": "victor", "password": "1234"})["access_token"]
            command = [schemathesis, "run", base(door) + "/openapi.json",
                       "--checks", "not_a_server_error,response_schema_conformance",
                       "--max-examples", EXAMPLES, "--seed", SEED, "--request-timeout", "30",
                       "--exclude-path-regex", "logout",
                       "--header", f"Authorization: Bearer {token}"]
            print(f"== schemathesis on {door} ({base(door)}/openapi.json)", flush=True)
            result = subprocess.run(command, timeout=DOOR_SECONDS)
            if result.returncode != 0:
                failed.append(door)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if failed:
        raise SystemExit(f"schemathesis found problems on: {', '.join(failed)} (the shop's log: {log.name})")
    shutil.rmtree(data, ignore_errors=True)
    print("contracts: every door answered schemathesis without a 5xx or a schema violation")


if __name__ == "__main__":
    main()
