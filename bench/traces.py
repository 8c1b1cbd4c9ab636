#!/usr/bin/env python3
"""Traces across the bus, read back from a real Jaeger (run by `make test`).

Jaeger (v1.75.0, built by `make deps`: bench/go_tools.sh) runs on free ports with its
memory store; the shop runs as `make cluster` starts it (three nats-servers, two
instances of each service, each its own process: debug builds) with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at Jaeger. A sign-up on users' own door, a login
and a buy through the gateway are sent, each with a `traceparent` of the test's own
making, as a browser or a proxy would; the test then reads each trace back from
Jaeger's query API (`/api/traces/<id>`) and checks:

- the spans each service must make, in the process (service) that must make them;
- the parent of each, across the processes: the gateway's HTTP span under the test's
  span, the bus request under it, the service's span under the request, and so on down
  to argon2 in users and the stream publish in orders;
- the buy reaches the file of *every* orders instance: one consumer span per instance,
  each a child of the publish, each linked to its appender's batch, whose own trace
  holds the write, the fsync and the index transaction.

Prints the buy's trace as Jaeger holds it (service, span, parent, duration).
"""

import html
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402
from harness import JAEGER, PATIENCE, TARGET, Jaeger, request, wait_until  # noqa: E402

PASSWORD = "correct horse battery"
# What the gateways are told a trace UI is (GATEWAY_TRACE_UI): the status page links there.
TRACE_UI = "http://127.0.0.1:16686"

class Trace:
    """One trace from Jaeger: its spans, by id, each with its service."""

    def __init__(self, data):
        self.processes = data["processes"]
        self.spans = {s["spanID"]: s for s in data["spans"]}
        for span in self.spans.values():
            span["service"] = self.processes[span["processID"]]["serviceName"]
            span["instance"] = tag(self.processes[span["processID"]], "service.instance.id")

    def named(self, service, name):
        return [s for s in self.spans.values() if s["service"] == service and s["operationName"] == name]

    def one(self, service, name):
        found = self.named(service, name)
        if len(found) != 1:
            fail(f"expected one span {name!r} of {service}, found {len(found)}", self)
        return found[0]

    def child(self, parent, service, name):
        """The one span `name` of `service` whose parent is `parent`."""
        found = [s for s in self.named(service, name) if parent_of(s) == parent["spanID"]]
        if len(found) != 1:
            fail(f"expected one span {name!r} of {service} under {parent['operationName']!r} "
                 f"of {parent['service']}, found {len(found)}", self)
        return found[0]

    def show(self):
        depth = {}

        def level(span):
            if span["spanID"] not in depth:
                parent = self.spans.get(parent_of(span))
                depth[span["spanID"]] = 0 if parent is None else level(parent) + 1
            return depth[span["spanID"]]

        start = min(s["startTime"] for s in self.spans.values())
        for span in sorted(self.spans.values(), key=lambda s: (s["startTime"], level(s))):
            print(f"  {(span['startTime'] - start) / 1000:8.2f} ms  {span['duration'] / 1000:8.2f} ms  "
                  f"{span['service']:8} {'  ' * level(span)}{span['operationName']}", flush=True)


def trace_of(jaeger, trace_id):
    """The trace as Jaeger's query API gives it (`/api/traces/<id>`), or None."""
    url = f"{jaeger.query}/api/traces/{trace_id}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.loads(response.read()).get("data") or []
    except (OSError, ValueError):
        return None
    return Trace(data[0]) if data else None


def tag(item, key):
    for t in item.get("tags", []):
        if t["key"] == key:
            return t["value"]
    return None


def parent_of(span):
    for ref in span.get("references", []):
        if ref["refType"] == "CHILD_OF" and ref["traceID"] == span["traceID"]:
            return ref["spanID"]
    return None


def linked(span):
    """(trace id, span id) of each span `span` follows from (its links)."""
    return [(r["traceID"], r["spanID"]) for r in span.get("references", []) if r["refType"] == "FOLLOWS_FROM"]


def same(trace_id):
    """A trace id as Jaeger may write it (without leading zeros), for comparing."""
    return trace_id.lower().lstrip("0")


def fail(message, trace=None):
    if trace is not None:
        print("the trace as Jaeger has it:", flush=True)
        trace.show()
    raise SystemExit(f"traces: {message}")


def traceparent():
    """A new trace of the test's own: (trace id, span id, header value)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def read_back(jaeger, trace_id, expected, what):
    """The trace once it holds every span of `expected` ((service, name, how many)):
    each process sends its spans in its own batches, so a trace fills in over time."""
    last = [None]

    def check():
        last[0] = trace_of(jaeger, trace_id)
        return last[0] is not None and all(len(last[0].named(service, name)) >= count
                                           for service, name, count in expected)

    if not wait_until(check):
        fail(f"the {what} trace was not complete in Jaeger within {PATIENCE} s", last[0])
    return last[0]


def main():
    if not os.path.exists(JAEGER):
        raise SystemExit(f"{JAEGER} is missing: run `make deps` (it builds Jaeger with go install)")
    home = tempfile.mkdtemp(prefix="shop-traces-")
    ok = False
    try:
        with Jaeger(home) as jaeger:
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp, "OTEL_BSP_SCHEDULE_DELAY": "100",
                   "OTEL_TRACES_SAMPLER": "parentbased_always_on", "RUST_LOG": "warn",
                   "GATEWAY_TRACE_UI": TRACE_UI}
            cluster = Cluster(home, os.path.join(TARGET, "debug"),
                              nats_server=os.environ.get("NATS_SERVER", "nats-server"),
                              base="free", extra_env=env)
            try:
                cluster.start()
                check(jaeger, cluster)
            finally:
                cluster.stop()
        ok = True
    finally:
        if ok:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"traces: logs kept in {home}", flush=True)


def check(jaeger, cluster):
    user = f"traced{secrets.token_hex(3)}"

    # A sign-up on users' own door: HTTP span, argon2 on its thread, the account's publish.
    signup, parent, header = traceparent()
    status, body = request("POST", cluster.url("users", "a", "/users"), {"username": user, "password": PASSWORD},
                           headers={"traceparent": header})
    if status != 201:
        fail(f"sign-up answered {status} {body}")
    trace = read_back(jaeger, signup, [("users", "POST /users", 1), ("users", "argon2id hash", 1),
                                       ("users", "publish users.accounts", 1)], "sign-up")
    door = trace.one("users", "POST /users")
    if parent_of(door) != parent:
        fail("the users door did not continue the caller's trace", trace)
    trace.child(door, "users", "argon2id hash")
    trace.child(door, "users", "publish users.accounts")

    # A login through the gateway: gateway -> auth -> users -> argon2, over the bus.
    login, parent, header = traceparent()
    status, body = request("POST", cluster.url("gateway", "a", "/api/login"),
                           {"username": user, "password": PASSWORD}, headers={"traceparent": header})
    if status != 200:
        fail(f"login answered {status} {body}")
    token = body["access_token"]
    trace = read_back(jaeger, login, [("gateway", "POST /api/login", 1), ("gateway", "request auth.login", 1),
                                      ("auth", "process auth.login", 1), ("auth", "request users.verify", 1),
                                      ("users", "process users.verify", 1), ("users", "argon2id verify", 1)],
                      "login")
    http = trace.one("gateway", "POST /api/login")
    if parent_of(http) != parent:
        fail("the gateway did not continue the caller's trace", trace)
    call = trace.child(http, "gateway", "request auth.login")
    served = trace.child(call, "auth", "process auth.login")
    call = trace.child(served, "auth", "request users.verify")
    served = trace.child(call, "users", "process users.verify")
    trace.child(served, "users", "argon2id verify")
    if tag(served, "messaging.system") != "nats" or tag(served, "rpc.response.status_code") != 200:
        fail(f"users' span lacks its attributes: {served.get('tags')}", trace)
    print(f"traces: the login crossed {sorted({s['service'] for s in trace.spans.values()})} "
          f"in {len(trace.spans)} spans", flush=True)

    # A buy through the other gateway: down to the line in each orders instance's file.
    buy, parent, header = traceparent()
    status, body = request("POST", cluster.url("gateway", "b", "/api/buy"), {"article_id": 1}, token=token,
                           headers={"traceparent": header, "Idempotency-Key": secrets.token_hex(8)})
    if status != 201:
        fail(f"buy answered {status} {body}")
    trace = read_back(jaeger, buy, [("gateway", "POST /api/buy", 1), ("gateway", "request orders.buy", 1),
                                    ("orders", "process orders.buy", 1),
                                    ("orders", "publish orders.events.purchased", 1),
                                    ("orders", "process orders.events.purchased", 2)], "buy")
    http = trace.one("gateway", "POST /api/buy")
    if parent_of(http) != parent:
        fail("the gateway did not continue the caller's trace", trace)
    call = trace.child(http, "gateway", "request orders.buy")
    served = trace.child(call, "orders", "process orders.buy")
    trace.child(served, "orders", "verify token")
    publish = trace.child(served, "orders", "publish orders.events.purchased")
    trace.child(served, "orders", "wait for the line in purchases.json")
    appended = [s for s in trace.named("orders", "process orders.events.purchased") if parent_of(s) == publish["spanID"]]
    if len({s["instance"] for s in appended}) != 2:
        fail(f"expected the purchase in the file of both orders instances, found {len(appended)} spans "
             f"from {len({s['instance'] for s in appended})} instances", trace)
    print(f"traces: the buy ({buy}) as Jaeger holds it, {len(trace.spans)} spans:", flush=True)
    trace.show()

    # The gateway's status page lists its slowest requests, each linked to its trace.
    status, body = request("GET", cluster.url("gateway", "b", "/api/status"))
    slow = [r for r in (body or {}).get("slowest", {}).get("requests", []) if r.get("route") == "POST /api/buy"]
    if not slow or same(slow[0].get("trace_id") or "") != same(buy):
        fail(f"the status page does not list the buy with its trace: {status} {(body or {}).get('slowest')}")
    with urllib.request.urlopen(cluster.url("gateway", "b", "/status"), timeout=5) as response:
        page = html.unescape(response.read().decode())
    if f'href="{TRACE_UI}/trace/{slow[0]["trace_id"]}"' not in page:
        fail("the status page does not link the buy's trace to the trace UI")

    # Each appender's batch: its own trace, linked both ways, with the write and fsync.
    for span in appended:
        links = linked(span)
        if len(links) != 1:
            fail(f"an appender's span links to {links}, not to its batch", trace)
        batch_trace_id, batch_id = links[0]
        batch_trace = read_back(jaeger, batch_trace_id, [("orders", "append orders.events.purchased", 1),
                                                         ("orders", "write and fsync purchases.json", 1),
                                                         ("orders", "INSERT purchases", 1)], "batch")
        batch = batch_trace.spans.get(batch_id) or fail("the batch's span is not in its trace", batch_trace)
        if (same(buy), publish["spanID"]) not in {(same(t), s) for t, s in linked(batch)}:
            fail("the appender's batch does not link to the buy's publish", batch_trace)
        batch_trace.child(batch, "orders", "write and fsync purchases.json")
        batch_trace.child(batch, "orders", "INSERT purchases")
    print(f"traces: ok (sign-up, login and buy read back from Jaeger; the buy reached the file "
          f"of {len(appended)} orders instances)", flush=True)


if __name__ == "__main__":
    main()
