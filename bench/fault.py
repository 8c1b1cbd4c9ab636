#!/usr/bin/env python3
"""make fault: buyers through the gateway while processes are killed (SIGKILL) and
restarted; then every purchase is counted.

The shop runs as in `make bench` (release builds, separate processes, the project's
nats.conf, a fresh temporary data directory). 16 buyers each buy with a fresh
Idempotency-Key and retry the same key after a timeout, a connection error or a 5xx, as
a careful client does. Meanwhile orders, nats-server, users and the gateway are killed in
turn and started again; once, orders is frozen, the last line of purchases.json is cut
short (a write the crash interrupted) and orders is killed. At the end it reports
purchases answered, lost (answered but not in purchases.json or the history), doubled
(an id on two lines) and keys charged twice (two lines for one key).

FAULT_SECONDS (default 40) sets the length of the run.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the bench's Shop)
from harness import request  # noqa: E402

SECONDS = int(os.environ.get("FAULT_SECONDS", "40"))
BUYERS = 16
USERS = 64
VICTIMS = ["orders", "nats-server", "users", "gateway"]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.answered = {}  # (user, key) -> reply id
        self.conflicting = []  # a key answered with two different ids
        self.retries = 0
        self.failed_after = []  # seconds a 5xx or a cut connection took to come back
        self.refused = []  # 4xx other than 401


def buyer(shop, n, stats, stop):
    gw = lambda path: shop.url("gateway", path)
    tokens = {}
    while not stop.is_set():
        # Many users, so that no history outgrows a bus message.
        user = f"buyer{random.randrange(USERS)}"
        token = tokens.get(user)
        key = uuid.uuid4().hex
        article = random.randint(1, 3)
        while True:
            if token is None:
                status, body = request("POST", gw("/api/login"), {"username": user, "password": "fault-password"})
                if status != 200:
                    time.sleep(0.1)
                    continue
                token = tokens[user] = body["access_token"]
            started = time.monotonic()
            status, body = request("POST", gw("/api/buy"), {"article_id": article},
                                   {"Authorization": "Bearer " + token, "Idempotency-Key": key})
            took = time.monotonic() - started
            if status == 201:
                with stats.lock:
                    known = stats.answered.setdefault((user, key), body["id"])
                    if known != body["id"]:
                        stats.conflicting.append((user, key, known, body["id"]))
                break
            if status == 401:
                token = tokens[user] = None
                continue
            if status is not None and 400 <= status < 500:
                with stats.lock:
                    stats.refused.append((status, body))
                break
            with stats.lock:
                stats.retries += 1
                if status is not None:
                    stats.failed_after.append(took)
            time.sleep(0.05)
            if stop.is_set() and stop.final:
                break


def restart(shop, name):
    proc = shop.procs[name]
    proc.wait()
    args, env, out = shop.commands[name]
    shop.procs[name] = subprocess.Popen(args, env=env, stdout=out, stderr=out)


def chaos(shop, stop, log):
    turn = 0
    path = os.path.join(shop.dir, "purchases.json")
    while not stop.wait(random.uniform(2.0, 4.0)):
        victim = VICTIMS[turn % len(VICTIMS)]
        turn += 1
        proc = shop.procs[victim]
        if victim == "orders" and turn == 5:
            proc.send_signal(signal.SIGSTOP)
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(max(0, size - 37))
            log.append(f"{time.strftime('%X')} froze orders, cut the last line short, killed it")
        else:
            log.append(f"{time.strftime('%X')} killed {victim}")
        proc.send_signal(signal.SIGKILL)
        time.sleep(random.uniform(0.2, 1.0))
        restart(shop, victim)


def main():
    shop = run.Shop()
    stats = Stats()
    log = []
    try:
        shop.start()
        for n in range(USERS):
            request("POST", shop.url("users", "/users"), {"username": f"buyer{n}", "password": "fault-password"})
        stop = threading.Event()
        stop.final = False
        threads = [threading.Thread(target=buyer, args=(shop, n, stats, stop)) for n in range(BUYERS)]
        for t in threads:
            t.start()
        chaos_stop = threading.Event()
        monkey = threading.Thread(target=chaos, args=(shop, chaos_stop, log))
        monkey.start()
        time.sleep(SECONDS)
        chaos_stop.set()
        monkey.join()
        # Every process is up again: the buyers finish the keys they were retrying.
        stop.set()
        deadline = time.time() + 60
        for t in threads:
            t.join(max(0, deadline - time.time()))
        stop.final = True
        for t in threads:
            t.join()
        time.sleep(1)
        report(shop, stats, log)
    finally:
        shop.stop()


def report(shop, stats, log):
    lines = shop.purchase_lines()
    by_id = {}
    by_key = {}
    for line in lines:
        by_id[line["id"]] = by_id.get(line["id"], 0) + 1
        if line.get("idempotency_key"):
            k = (line["username"], line["idempotency_key"])
            by_key[k] = by_key.get(k, 0) + 1
    lost_file = [k for k, i in stats.answered.items() if i not in by_id]
    lost_history = []
    unread = []
    for n in range(USERS):
        user = f"buyer{n}"
        _, body = request("POST", shop.url("gateway", "/api/login"), {"username": user, "password": "fault-password"})
        status, history = request("GET", shop.url("gateway", "/api/purchases"), headers={"Authorization": "Bearer " + body["access_token"]})
        if status != 200:
            unread.append((user, status, history))
            continue
        ids = {item["id"] for item in history["items"]}
        lost_history += [k for k, i in stats.answered.items() if k[0] == user and i not in ids]
    doubled = sum(1 for c in by_id.values() if c > 1)
    charged_twice = sum(1 for c in by_key.values() if c > 1)
    unanswered_lines = len(set(by_id) - set(stats.answered.values()))
    for entry in log:
        print(entry)
    print(f"\n{SECONDS} s, {BUYERS} buyers, {len(log)} kills")
    print(f"purchases answered 201: {len(stats.answered)} (after {stats.retries} retries)")
    print(f"lines in purchases.json: {len(lines)}; purchases never answered but recorded: {unanswered_lines}")
    print(f"lost: {len(lost_file)} missing from the file, {len(lost_history)} missing from the history")
    print(f"doubled ids: {doubled}; keys charged twice: {charged_twice}; keys answered with two ids: {len(stats.conflicting)}")
    print(f"refused (4xx): {len(stats.refused)} {stats.refused[:3]}")
    waits = sorted(stats.failed_after)
    if waits:
        at = lambda q: waits[min(len(waits) - 1, int(q * len(waits)))]
        print(f"5xx answers: {len(waits)}, came back after median {at(0.5):.2f} s, p90 {at(0.9):.2f} s, max {waits[-1]:.2f} s")
    print(f"histories that could not be read: {len(unread)} {unread[:3]}")
    bad = lost_file or lost_history or doubled or charged_twice or stats.conflicting or stats.refused or unread
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
