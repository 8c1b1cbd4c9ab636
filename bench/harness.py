"""What the harness's scripts share: where things are, free ports, HTTP requests as a
client of the shop makes them, passwords, processes that must listen or settle, and a
Jaeger to send traces to.

Every script of bench/ imports this one and nothing imports a script, but for run.py
(the bench's Shop), which fault.py drives, and cluster.py and cluster_fault.py, which the
bench and the fault test use: imports run one way (bench/circles.py checks).
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
# How long a script waits for what only needs time (a process listening, buys back
# after a fault, files and views catching up): generous, so that a slow or busy machine
# makes a run slower, never red. Recovery times are printed; the bound is not a target.
PATIENCE = int(os.environ.get("FAULT_PATIENCE_SECONDS", "120"))


def server_version(server):
    """(major, minor) of `server --version` (`nats-server: v2.9.10`)."""
    printed = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in printed.strip().rsplit("v", 1)[-1].split(".")[:2])


def with_sync_always(conf):
    """A nats-server configuration with `sync_interval: always` after its jetstream
    block's `store_dir` (2.10 and newer fsync every write before acknowledging it), as the
    stack does for `make run` (stack/src/nats.rs)."""
    changed, n = re.subn(r"(?m)^(\s*)(store_dir:.*)$", r"\1\2\n\1sync_interval: always", conf, count=1)
    if n != 1:
        raise SystemExit("the nats-server configuration has no store_dir line to add sync_interval after")
    return changed


def write_results(name, results):
    """Writes a bench's `results` as JSON to <target>/bench/<name> and says where."""
    out = os.path.join(TARGET, "bench", name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"written: {out}")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(host, port):
    """Whether nothing accepts connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


def request(method, url, body=None, headers=None, token=None, timeout=5):
    """(status, body parsed as JSON or None) of one request; (None, None) when nothing
    answered (refused, reset, timed out). Never raises for what the network does."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, parse(response.read())
    except urllib.error.HTTPError as err:
        return err.code, parse(err.read())
    except (OSError, ValueError):
        return None, None


def parse(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


def get_json(url, body=None, timeout=5):
    """The JSON body of a GET (a POST with `body`), whatever the status; raises OSError
    when nothing answered, for callers that wait in a loop."""
    status, answer = request("POST" if body is not None else "GET", url, body, timeout=timeout)
    if status is None:
        raise OSError(f"no answer from {url}")
    return answer if answer is not None else {}


def password():
    """A random password for a NATS user or an account of a test."""
    return secrets.token_hex(16)


def log_tail(proc, lines=20):
    """The last lines of a process's log (its `log_path` attribute), for an error."""
    path = getattr(proc, "log_path", None)
    if not path or not os.path.exists(path):
        return ""
    with open(path) as f:
        return ":\n" + "".join(f.readlines()[-lines:])


def wait_for_port(port, seconds=PATIENCE, proc=None, name="a process"):
    """Returns once something listens on 127.0.0.1:port; exits the script when `proc`
    died first or nothing listens within `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} before listening on port {port}{log_tail(proc)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name}: nothing listens on port {port}")


def wait_until(predicate, seconds=PATIENCE):
    """Seconds until predicate() held (errors count as not yet), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            if predicate():
                return time.monotonic() - t0
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return None


class Stack:
    """The whole shop as `make run` starts it (the debug `stack` binary: nats-server with
    the project's nats.conf and the four services), on free ports, its data in
    `<home>/data`; stopped (SIGTERM) when the `with` block ends."""

    DOORS = ["gateway", "auth", "users", "orders"]

    def __init__(self, home, **extra_env):
        self.home = home
        self.data = os.path.join(home, "data")
        self.ports = {name: free_port() for name in self.DOORS + ["nats", "monitor"]}
        self.env = dict(os.environ, SHOP_DATA_DIR=self.data, RUST_LOG="warn",
                        STACK_NATS_PORT=str(self.ports["nats"]), STACK_NATS_MONITOR_PORT=str(self.ports["monitor"]),
                        **{f"{door.upper()}_HTTP_ADDR": f"127.0.0.1:{self.ports[door]}" for door in self.DOORS},
                        **extra_env)
        self.env.pop("NATS_URL", None)
        self.proc = None

    def url(self, door, path=""):
        return f"http://127.0.0.1:{self.ports[door]}{path}"

    @property
    def nats_url(self):
        return f"nats://127.0.0.1:{self.ports['nats']}"

    def __enter__(self):
        stack = os.path.join(TARGET, "debug", "stack")
        if not os.path.exists(stack):
            subprocess.run(["cargo", "build", "-p", "stack"], check=True, cwd=ROOT)
        # The launcher reads nats.conf from the directory it runs in, and its JetStream
        # store lands in data/jetstream there: run it from a copy beside the data.
        workdir = os.path.join(self.home, "run")
        os.makedirs(workdir, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "nats.conf"), workdir)
        self.log = os.path.join(self.home, "stack.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([stack], env=self.env, cwd=workdir, stdout=log, stderr=log)
        ready = wait_until(lambda: get_json(self.url("gateway", "/readyz")).get("ready")
                           or self.proc.poll() is not None)
        if ready is None or self.proc.poll() is not None:
            self.__exit__(None, None, None)
            raise SystemExit(f"the shop did not start; see {self.log}")
        return self

    def __exit__(self, *_):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                self.proc.kill()


JAEGER = os.path.join(TARGET, "go-bin", "jaeger")
# Jaeger as the tests and the bench need it: OTLP over HTTP in, the memory store, the query API; every
# address on loopback and on a free port; no telemetry of its own.
JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class Jaeger:
    """Jaeger (built by `make deps`) on free ports with its memory store, its files in
    `home`; stopped when the `with` block ends."""

    def __init__(self, home):
        self.home = home
        self.ports = {"otlp": free_port(), "query": free_port(), "query_grpc": free_port()}
        self.proc = None

    @property
    def otlp(self):
        """Where the shop sends its spans (OTEL_EXPORTER_OTLP_ENDPOINT)."""
        return f"http://127.0.0.1:{self.ports['otlp']}"

    @property
    def query(self):
        """Jaeger's query API and UI."""
        return f"http://127.0.0.1:{self.ports['query']}"

    def __enter__(self):
        config = os.path.join(self.home, "jaeger.yaml")
        with open(config, "w") as f:
            f.write(JAEGER_CONFIG.format(**self.ports))
        self.log_path = os.path.join(self.home, "jaeger.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([JAEGER, "--config", f"file:{config}"], stdout=log, stderr=log)
        wait_for_port(self.ports["query"], proc=self.proc, name="jaeger's query port")
        wait_for_port(self.ports["otlp"], proc=self.proc, name="jaeger's OTLP port")
        return self

    def __exit__(self, *_):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
