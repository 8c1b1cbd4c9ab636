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
import subprocess
import sys
import tempfile

SCHEMATHESIS = "schemathesis==4.32.5"
EXAMPLES = os.environ.get("CONTRACT_EXAMPLES", "20")
SEED = os.environ.get("CONTRACT_SEED", "20261125")
DOOR_SECONDS = 300

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TARGET, Stack, get_json  # noqa: E402

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
    data = tempfile.mkdtemp(prefix="shop-contracts-")
    failed = []
    # The fuzzer is one address: its failed logins are not an attack.
    with Stack(data, GATEWAY_MAX_FAILED_LOGINS_PER_ADDRESS="1000000") as shop:
        base = shop.url
        for door in ["users", "auth", "orders", "gateway"]:
            token = get_json(base("gateway", "/api/login"), {"username": "victor", "password": "1234"})["access_token"]
            command = [schemathesis, "run", base(door, "/openapi.json"),
                       "--checks", "not_a_server_error,response_schema_conformance",
                       "--max-examples", EXAMPLES, "--seed", SEED, "--request-timeout", "30",
                       "--exclude-path-regex", "logout",
                       "--header", f"Authorization: Bearer {token}"]
            print(f"== schemathesis on {door} ({base(door, '/openapi.json')})", flush=True)
            result = subprocess.run(command, timeout=DOOR_SECONDS)
            if result.returncode != 0:
                failed.append(door)
    if failed:
        raise SystemExit(f"schemathesis found problems on: {', '.join(failed)} (the shop's log: {shop.log})")
    shutil.rmtree(data, ignore_errors=True)
    print("contracts: every door answered schemathesis without a 5xx or a schema violation")


if __name__ == "__main__":
    main()
