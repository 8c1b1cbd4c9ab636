"""The power-cut test (`make power-cut`, and part of `make test`): the shop runs in a
virtual machine (bench/vm.py) on a virtual disk; buyers with idempotency keys and
sign-ups load it from the host, retrying as careful clients do; the machine is killed
(SIGKILL of qemu: the guest's page cache is lost as in a power cut) at a random moment
under load, several times, and started again on the same disk. After each restart,
every purchase and account that was answered 201 must be in the streams, in the
histories and log in; at the end, in purchases.json and users.db on the disk; nothing
twice, no key charged twice.

    python3 bench/power_cut.py [--cuts 3] [--seed N] [--sync interval] [--nodes 3]

`--sync interval` runs nats-server with its default (an fsync every two minutes), the
shop's configuration before this test: it shows that the test can fail. The last line:
`power-cut: N purchases and M accounts answered, L lost, D doubled, K keys charged twice,
over C cuts`. Where qemu, the kernel or busybox cannot be had, the test says why and
fails.
"""

import argparse
import base64
import collections
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import harness
import vm
from harness import PATIENCE, request

BUYERS = 4
PASSWORD = "power-cut-password"
NATS_USERS = ["gateway", "auth", "users", "orders", "ops"]


def log(message):
    print(f"power-cut: {message}", flush=True)


class Nats:
    """Just enough of the NATS protocol to read a stream message by message as the ops
    user (`$JS.API.STREAM.MSG.GET`) and a stream's subjects (`STREAM.INFO`)."""

    def __init__(self, port, user, password):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.file.readline()  # INFO
        connect = {"user": user, "pass": password, "verbose": False, "pedantic": False,
                   "headers": True, "no_responders": True}
        # Each service's user reads replies on its own inbox prefix only (nats.conf).
        self.inbox = "_INBOX.pc" if user == "ops" else f"_INBOX_{user}.pc"
        self.sock.sendall(f"CONNECT {json.dumps(connect)}\r\nSUB {self.inbox}.* 1\r\nPING\r\n".encode())
        while True:
            line = self.file.readline()
            if line.startswith(b"PONG"):
                break
            if line.startswith(b"-ERR") or not line:
                raise RuntimeError(f"NATS refused {user}: {line!r}")

    def requests(self, bodies):
        """Sends every (subject, body) at once; returns the replies in order."""
        out = b"".join(
            f"PUB {subject} {self.inbox}.{i} {len(body)}\r\n".encode() + body + b"\r\n"
            for i, (subject, body) in enumerate(bodies)
        )
        self.sock.sendall(out)
        replies = {}
        while len(replies) < len(bodies):
            line = self.file.readline()
            if not line:
                raise RuntimeError("NATS closed the connection")
            parts = line.split()
            if parts[0] == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif parts[0] == b"MSG":
                payload = self.file.read(int(parts[-1]) + 2)[:-2]
                replies[int(parts[1].rsplit(b".", 1)[1])] = json.loads(payload) if payload else None
            elif parts[0] == b"HMSG":
                total = self.file.read(int(parts[-1]) + 2)[:-2]
                payload = total[int(parts[-2]):]
                replies[int(parts[1].rsplit(b".", 1)[1])] = json.loads(payload) if payload else None
            elif parts[0] == b"-ERR":
                raise RuntimeError(line.decode())
        return [replies[i] for i in range(len(bodies))]

    def close(self):
        self.sock.close()


class Shop:
    """The clients' side: who was answered what."""

    def __init__(self, rng):
        self.rng = rng
        self.lock = threading.Lock()
        self.buyers = [f"buyer{i}" for i in range(BUYERS)]
        self.tokens = {}
        # key -> (buyer, id) of its first 201; every key a buyer sent, by buyer
        self.answered = {}
        self.sent = collections.defaultdict(set)
        self.pending = {}  # buyer -> (key, article) sent without an answer
        self.accounts = {}  # name -> answered 201
        self.created = set()  # answered 201, or 409 to a retry: must exist
        self.signup_pending = None
        self.charged_twice = set()
        self.machine = None
        self.stop = threading.Event()
        self.serial = 0

    def url(self, door, path):
        return self.machine.url(door, path)

    def login(self, name):
        status, body = request("POST", self.url("auth", "/auth/login"),
                               {"username": name, "password": PASSWORD}, timeout=30)
        if status == 200:
            self.tokens[name] = body["access_token"]
        return status

    def buy_once(self, buyer, key, article, deadline=None):
        """One careful buy: the same key until an answer that is not a 503 or silence
        (until the cut, or `deadline`)."""
        while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
            token = self.tokens.get(buyer)
            if token is None and self.login(buyer) != 200:
                time.sleep(0.2)
                continue
            status, body = request("POST", self.url("orders", f"/orders/{buyer}/buy"),
                                   {"article_id": article}, {"Idempotency-Key": key},
                                   token=self.tokens[buyer], timeout=30)
            if status == 201:
                with self.lock:
                    first = self.answered.setdefault(key, (buyer, body["id"]))
                    if first[1] != body["id"]:
                        self.charged_twice.add(key)
                    self.pending.pop(buyer, None)
                return True
            if status == 401:
                self.tokens.pop(buyer, None)
            elif status not in (None, 503):
                raise SystemExit(f"power-cut: a buy was answered {status} {body}")
            time.sleep(0.1)
        return False

    def buyer(self, name):
        while not self.stop.is_set():
            key, article = self.pending.get(name) or (str(uuid.uuid4()), self.rng.randint(1, 3))
            with self.lock:
                self.pending[name] = (key, article)
                self.sent[name].add(key)
            self.buy_once(name, key, article)

    def sign_up(self, name, deadline=None):
        while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
            status, body = request("POST", self.url("users", "/users"),
                                   {"username": name, "password": PASSWORD}, timeout=60)
            if status == 201:
                with self.lock:
                    self.accounts[name] = True
                    self.created.add(name)
                    self.signup_pending = None
                return True
            if status == 409 and self.signup_pending == name:
                with self.lock:  # an earlier try, cut before its answer, made it
                    self.created.add(name)
                    self.signup_pending = None
                return True
            if status not in (None, 503):
                raise SystemExit(f"power-cut: a sign-up was answered {status} {body}")
            time.sleep(0.2)
        return False

    def signer(self):
        while not self.stop.is_set():
            if self.signup_pending is None:
                self.serial += 1
                self.signup_pending = f"signup{self.serial}"
            self.sign_up(self.signup_pending)

    def finish_pending(self, tally):
        """After a restart, the careful clients repeat what the cut left unanswered."""
        deadline = time.monotonic() + PATIENCE
        for buyer, (key, article) in list(self.pending.items()):
            if not self.buy_once(buyer, key, article, deadline):
                tally.problems.append(f"{buyer}'s buy with key {key}, repeated after the restart, got no answer")
        if self.signup_pending and not self.sign_up(self.signup_pending, deadline):
            tally.problems.append(f"the sign-up of {self.signup_pending}, repeated after the restart, got no answer")


def login_carefully(shop, name):
    """A login as a careful client makes it: a 503 or silence (a view still catching up
    after the restart) is repeated for up to PATIENCE; the last status."""
    deadline = time.monotonic() + PATIENCE
    while True:
        status = shop.login(name)
        if status not in (None, 503) or time.monotonic() >= deadline:
            return status
        time.sleep(1)


def history(shop, buyer):
    """The ids of `buyer`'s whole history (orders' HTTP door streams it whole); None when
    it cannot be read (the buyer cannot log in)."""
    for _ in range(PATIENCE // 5):
        if buyer not in shop.tokens and shop.login(buyer) != 200:
            time.sleep(1)
            continue
        status, body = request("GET", shop.url("orders", f"/orders/{buyer}/purchases"),
                               token=shop.tokens[buyer], timeout=60)
        if status == 200:
            return [item["id"] for item in body["items"]]
        if status == 401:
            shop.tokens.pop(buyer, None)
        time.sleep(1)
    return None


def stream_events(machine, passwords, replicas):
    """Every purchase event in ORDERS, read as the ops user: [(seq, event)]. Fails when
    the stream is not on `replicas` nodes (the test would not test what it says)."""
    nats = Nats(machine.ports["nats"], "ops", passwords["ops"])
    try:
        (info,) = nats.requests([("$JS.API.STREAM.INFO.ORDERS", b"")])
        if info.get("config", {}).get("num_replicas") != replicas:
            raise SystemExit(f"power-cut: ORDERS is not on {replicas} replicas: {info.get('config')}")
        state = info["state"]
        seqs = range(state["first_seq"], state["last_seq"] + 1)
        events = []
        for chunk in range(0, len(seqs), 500):
            part = seqs[chunk:chunk + 500]
            replies = nats.requests([("$JS.API.STREAM.MSG.GET.ORDERS", json.dumps({"seq": s}).encode())
                                     for s in part])
            for seq, reply in zip(part, replies):
                if reply and "message" in reply:
                    events.append((seq, json.loads(base64.b64decode(reply["message"]["data"]))))
        return events
    finally:
        nats.close()


def stream_accounts(machine, passwords):
    """The accounts in USERS (its subjects), read as the users user."""
    nats = Nats(machine.ports["nats"], "users", passwords["users"])
    try:
        (info,) = nats.requests([("$JS.API.STREAM.INFO.USERS",
                                  json.dumps({"subjects_filter": "users.accounts.>"}).encode())])
        return {subject.rsplit(".", 1)[1] for subject in (info["state"].get("subjects") or {})}
    finally:
        nats.close()


class Tally:
    """What was lost, doubled, charged twice; each thing counted once."""

    def __init__(self):
        self.lost, self.doubled, self.twice = set(), set(), set()
        self.problems = []

    def missing(self, thing, where):
        if thing not in self.lost:
            self.problems.append(f"{thing} answered 201 but missing from {where}")
        self.lost.add(thing)

    def double(self, thing, where):
        if thing not in self.doubled:
            self.problems.append(f"{thing} twice in {where}")
        self.doubled.add(thing)


def check_running(shop, machine, passwords, tally, replicas):
    """The checks on a running shop after a restart: histories, logins, both streams."""
    answered = dict(shop.answered)
    by_buyer = collections.defaultdict(set)
    for key, (buyer, pid) in answered.items():
        by_buyer[buyer].add(pid)
    for buyer in shop.buyers:
        ids = history(shop, buyer)
        if ids is None:
            tally.missing(f"{buyer}'s history", "the orders service (cannot log in and read it)")
            continue
        counts = collections.Counter(ids)
        for pid, n in counts.items():
            if n > 1:
                tally.double(pid, f"{buyer}'s history")
        for pid in by_buyer[buyer] - set(ids):
            tally.missing(pid, f"{buyer}'s history")
        if len(ids) > len(shop.sent[buyer]):
            tally.double(f"{buyer}'s purchases", f"a history of {len(ids)} for {len(shop.sent[buyer])} keys")
    for name in sorted(shop.created):
        status = login_carefully(shop, name)
        if status != 200:
            tally.missing(f"account {name}", f"logins ({status})")
    events = stream_events(machine, passwords, replicas)
    counts = collections.Counter(event["id"] for _, event in events)
    for pid, n in counts.items():
        if n > 1:
            tally.double(pid, "ORDERS")
    for _, pid in answered.values():
        if pid not in counts:
            tally.missing(pid, "ORDERS")
    in_stream = stream_accounts(machine, passwords)
    for name in shop.created - in_stream:
        tally.missing(f"account {name}", "USERS")
    return len(events)


def check_disk(shop, image, work, tally):
    """purchases.json and users.db as the disk holds them after a clean shutdown, the
    views caught up with the streams at the last start."""
    found = vm.read_back(image, ["/data/purchases.json", "/data/users.db", "/data/users.db-wal"], work)
    ids, keys = collections.Counter(), collections.defaultdict(set)
    if found["/data/purchases.json"]:
        with open(found["/data/purchases.json"]) as f:
            for line in f:
                line = line.strip()
                if not line or not line.startswith("{"):
                    continue
                event = json.loads(line)
                ids[event["id"]] += 1
                if event.get("idempotency_key"):
                    keys[(event["username"], event["idempotency_key"])].add(event["id"])
    for pid, n in ids.items():
        if n > 1:
            tally.double(pid, "purchases.json")
    for _, pid in shop.answered.values():
        if pid not in ids:
            tally.missing(pid, "purchases.json")
    for key, pids in keys.items():
        if len(pids) > 1:
            tally.twice.add(key)
            tally.problems.append(f"key {key} charged {len(pids)} times in purchases.json")
    names = set()
    if found["/data/users.db"]:
        with sqlite3.connect(found["/data/users.db"]) as db:
            names = {row[0] for row in db.execute("SELECT username FROM users")}
    for name in shop.created - names:
        tally.missing(f"account {name}", "users.db")
    return sum(ids.values())


def boot(assets_kernel, initrd, image, work, n):
    machine = vm.Machine(assets_kernel, initrd, image, os.path.join(work, f"console-{n}.log"))
    started = time.monotonic()
    ready = harness.wait_until(
        lambda: all(request("GET", machine.url(door, "/readyz"), timeout=5)[0] == 200
                    for door in ("auth", "users", "orders")) or not machine.alive(),
        PATIENCE * 2)
    if not ready or not machine.alive():
        print(machine.console(60))
        machine.kill()
        raise SystemExit(f"power-cut: the shop in the VM was not ready after boot {n}")
    log(f"boot {n}: ready after {time.monotonic() - started:.1f} s")
    return machine


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=int(os.environ.get("POWER_CUT_CUTS", "3")))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--sync", choices=["always", "interval"], default="always",
                        help="SHOP_NATS_SYNC of the stack in the VM (always: the default)")
    parser.add_argument("--nodes", type=int, choices=[1, 3], default=1,
                        help="1: make run's single server; 3: make cluster's three nodes")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log(f"seed {args.seed}, {args.cuts} cuts, {args.nodes} nats-server node(s), SHOP_NATS_SYNC={args.sync}")
    home = os.path.join(harness.TARGET, "power-cut")
    work = os.path.join(home, f"run-{os.getpid()}")
    os.makedirs(work)
    stack_bin = os.path.join(harness.TARGET, "debug", "stack")
    nats_server = os.path.join(harness.TARGET, "go-bin", "nats-server")
    for path, hint in [(stack_bin, "cargo build -p stack"), (nats_server, "make deps")]:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"power-cut: {path} is missing: {hint}")
    try:
        vmlinuz, _ = vm.kernel(os.path.join(home, "assets"))
        stripped = os.path.join(work, "stack")
        subprocess.run(["objcopy", "--strip-debug", stack_bin, stripped], check=True)
        with open(os.path.join(harness.ROOT, "nats.conf")) as f:
            nats_conf = f.read()
        initrd = os.path.join(work, "initrd.gz")
        cluster_conf = None
        if args.nodes == 3:  # as make cluster runs each node (bench/cluster.py)
            with open(os.path.join(harness.ROOT, "nats-cluster.conf")) as f:
                cluster_conf = f.read()
            if args.sync == "always":
                cluster_conf = harness.with_sync_always(cluster_conf)
        vm.initramfs(initrd, os.path.join(home, "assets"), stripped, nats_server, nats_conf,
                     env={"SHOP_NATS_SYNC": args.sync}, cluster_conf_text=cluster_conf)
    except vm.Unavailable as err:
        raise SystemExit(f"power-cut: cannot run: {err}")
    passwords = {user: "p" + uuid.uuid4().hex for user in NATS_USERS}
    secrets = "".join(f"SHOP_NATS_PASSWORD_{u.upper()}={p}\n" for u, p in passwords.items())
    image = os.path.join(work, "disk.img")
    vm.disk(image, 1024, {"data/secrets/nats-passwords.env": secrets.encode()})

    shop = Shop(rng)
    tally = Tally()
    started = time.monotonic()
    try:
        for n in range(args.cuts + 1):
            machine = boot(vmlinuz, initrd, image, work, n)
            shop.machine = machine
            shop.stop.clear()
            shop.tokens.clear()
            if n == 0:
                for buyer in shop.buyers:
                    if not shop.sign_up(buyer):
                        raise SystemExit(f"power-cut: cannot sign {buyer} up")
            else:
                shop.finish_pending(tally)
                events = check_running(shop, machine, passwords, tally, args.nodes)
                log(f"after cut {n}: {len(shop.answered)} purchases and {len(shop.accounts)} accounts "
                    f"answered so far, {events} events in ORDERS, {len(tally.lost)} lost, "
                    f"{len(tally.doubled)} doubled")
            if n == args.cuts:
                if not machine.stop():
                    raise SystemExit(f"power-cut: the shop in the VM did not stop cleanly: {machine.console(30)}")
                break
            threads = [threading.Thread(target=shop.buyer, args=(b,), daemon=True) for b in shop.buyers]
            threads.append(threading.Thread(target=shop.signer, daemon=True))
            for t in threads:
                t.start()
            before = len(shop.answered)
            harness.wait_until(lambda: len(shop.answered) >= before + 20, PATIENCE)
            time.sleep(rng.uniform(0.5, 4.0))
            machine.kill()
            shop.stop.set()
            for t in threads:
                t.join(timeout=PATIENCE)
            log(f"cut {n + 1}: power off with {len(shop.answered)} purchases answered, "
                f"{len(shop.pending)} buys and {1 if shop.signup_pending else 0} sign-ups in flight")
    finally:
        if shop.machine is not None and shop.machine.alive():
            shop.machine.kill()
    files = check_disk(shop, image, work, tally)
    tally.twice |= shop.charged_twice
    log(f"purchases.json holds {files} lines; {time.monotonic() - started:.0f} s in all")
    for problem in tally.problems[:20]:
        log(problem)
    print(f"power-cut: {len(shop.answered)} purchases and {len(shop.accounts)} accounts answered, "
          f"{len(tally.lost)} lost, {len(tally.doubled)} doubled, {len(tally.twice)} keys charged "
          f"twice, over {args.cuts} cut{'' if args.cuts == 1 else 's'}" + (" of a three-node cluster" if args.nodes == 3 else ""),
          flush=True)
    if tally.lost or tally.doubled or tally.twice or tally.problems:
        print(f"power-cut: the VM's files are kept in {work}")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
