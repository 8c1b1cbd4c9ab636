#!/usr/bin/env python3
"""make cluster: the shop on a three-node NATS cluster on this machine.

Three nats-servers (nats-cluster.conf, one JetStream store each), streams replicated on
the three nodes (SHOP_STREAM_REPLICAS=3), and two instances of each service, each with
its own data directory, each connected to a different node first with the other two as
fallbacks. Prints where everything listens; Ctrl-C stops everything (services first,
then the nodes).

The `Cluster` class is also what the cluster's fault test (bench/cluster_fault.py) and
the cluster scenario of `make bench` start: on other ports, in a temporary directory,
and for the fault test with the third node in its own network namespace so that it can
be cut off from the other two.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PATIENCE, ROOT, TARGET, get_json, log_tail, port_free, server_version, with_sync_always  # noqa: E402

USERS = ["gateway", "auth", "users", "orders", "ops"]
SERVICES = ["users", "auth", "orders", "gateway"]  # in the order they start
OFFSET = {"gateway": 0, "auth": 1, "users": 2, "orders": 3}
INSTANCES = ["a", "b"]
# The node each instance connects to first: the two instances of a service on two
# different nodes, and the third node (the one the fault test cuts off) with an
# instance of each service that follows a stream (users, orders) and of auth.
PLACEMENT = {
    ("users", "a"): 0, ("users", "b"): 2,
    ("auth", "a"): 2, ("auth", "b"): 0,
    ("orders", "a"): 1, ("orders", "b"): 2,
    ("gateway", "a"): 0, ("gateway", "b"): 1,
}


def passwords(path):
    """The NATS passwords of the cluster, made once (mode 0600), like the stack's."""
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


class Node:
    def __init__(self, name, host, client, monitor, route_host, route):
        self.name, self.host, self.client, self.monitor = name, host, client, monitor
        self.route_host, self.route = route_host, route

    @property
    def url(self):
        return f"nats://{self.host}:{self.client}"

    def monitoring(self, path):
        return get_json(f"http://{self.host}:{self.monitor}{path}")

    def jsz(self, query=""):
        return self.monitoring(f"/jsz{query}")


class Partition:
    """The third node's own network namespace, joined to this one by two veth pairs:
    one for its routes (the one cut), one for its clients (kept, so that the services
    connected to it stay connected to a node in the minority, as in a real partition).
    Needs root and `ip` (iproute2)."""

    def __init__(self):
        tag = os.getpid() % 100000
        self.ns = f"shop-n3-{tag}"
        self.route_if, self.client_if = f"shr{tag}", f"shc{tag}"
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        octet = next(o for o in range(200, 250) if f" 10.{o}." not in used)
        self.route_host, self.route_node = f"10.{octet}.1.1", f"10.{octet}.1.2"
        self.client_host, self.client_node = f"10.{octet}.2.1", f"10.{octet}.2.2"

    @staticmethod
    def unusable():
        """Why network namespaces cannot be used here (tried by making one with a veth
        pair into it), or None."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        probe = f"shop-probe-{os.getpid()}"
        try:
            made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        except OSError:
            return "`ip` (iproute2) is not installed"
        if made.returncode != 0:
            return f"`ip netns add` fails: {made.stderr.strip()}"
        tag = f"shp{os.getpid() % 100000}"
        veth = subprocess.run(["ip", "link", "add", tag + "h", "type", "veth", "peer", "name", tag + "n",
                               "netns", probe], capture_output=True, text=True)
        subprocess.run(["ip", "link", "del", tag + "h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return None if veth.returncode == 0 else f"cannot make a veth pair: {veth.stderr.strip()}"

    def ip(self, *args, ns=False):
        command = (["ip", "netns", "exec", self.ns, "ip"] if ns else ["ip"]) + list(args)
        subprocess.run(command, check=True, capture_output=True)

    def create(self):
        self.ip("netns", "add", self.ns)
        self.ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        for name, host, node in [(self.route_if, self.route_host, self.route_node),
                                 (self.client_if, self.client_host, self.client_node)]:
            self.ip("link", "add", name + "h", "type", "veth", "peer", "name", name + "n")
            self.ip("link", "set", name + "n", "netns", self.ns)
            self.ip("addr", "add", host + "/24", "dev", name + "h")
            self.ip("link", "set", name + "h", "up")
            self.ip("addr", "add", node + "/24", "dev", name + "n", ns=True)
            self.ip("link", "set", name + "n", "up", ns=True)

    def wrap(self, args):
        return ["ip", "netns", "exec", self.ns] + args

    def cut(self, clients=False):
        """Cuts the third node's routes (and with `clients`, its clients' link too)."""
        for name in [self.route_if] + ([self.client_if] if clients else []):
            self.ip("link", "set", name + "h", "down")

    def heal(self):
        for name in (self.route_if, self.client_if):
            self.ip("link", "set", name + "h", "up")

    def remove(self):
        for name in (self.route_if, self.client_if):
            subprocess.run(["ip", "link", "del", name + "h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class Cluster:
    """Three nodes and two instances of each service, as separate processes.

    `base` None: the ports of `make cluster` (nodes 4222-4224, monitoring 8222-8224,
    routes 6222-6224, instance a 5000-5003, b 6000-6003); a number: everything in the 50
    ports from there; "free": the first such block below the ephemeral range that is
    all free.
    """

    def __init__(self, data, bin_dir, nats_server="nats-server", base=None, partition=None,
                 replicas=3, extra_env=None, sync_always=False):
        self.data, self.bin_dir, self.nats_server = data, bin_dir, nats_server
        self.partition, self.replicas, self.extra_env = partition, replicas, extra_env or {}
        self.sync_always = sync_always
        if base == "free":
            for attempt in range(240):
                self.__init__(data, bin_dir, nats_server, 20000 + (os.getpid() + attempt) % 240 * 50,
                              partition, replicas, extra_env, sync_always)
                if not self.taken_ports():
                    return
            raise SystemExit("no block of 50 free ports between 20000 and 32000")
        if base is None:
            ports = [(4222 + i, 8222 + i, 6222 + i) for i in range(3)]
            self.http = {"a": 5000, "b": 6000}
        else:
            ports = [(base + i, base + 10 + i, base + 20 + i) for i in range(3)]
            self.http = {"a": base + 30, "b": base + 40}
        self.nodes = []
        for i, (client, monitor, route) in enumerate(ports):
            host = route_host = "127.0.0.1"
            if partition is not None:
                # Routes go over the veth pair that can be cut; the third node's clients
                # reach it over the other one.
                route_host = partition.route_node if i == 2 else partition.route_host
                host = partition.client_node if i == 2 else "127.0.0.1"
            self.nodes.append(Node(f"n{i + 1}", host, client, monitor, route_host, route))
        self.procs = {}  # name -> Popen
        self.commands = {}  # name -> (args, env)
        self.secret = passwords(os.path.join(data, "secrets", "nats-passwords.env"))

    # -- where things are -------------------------------------------------------------

    def port(self, service, instance):
        return self.http[instance] + OFFSET[service]

    def url(self, service, instance, path=""):
        return f"http://127.0.0.1:{self.port(service, instance)}{path}"

    def home(self, service, instance):
        return os.path.join(self.data, f"{service}-{instance}")

    def stack_pids(self):
        return {name: proc.pid for name, proc in self.procs.items()}

    def node_of(self, service, instance):
        """The node an instance connects to first ([`PLACEMENT`])."""
        return PLACEMENT[(service, instance)]

    def taken_ports(self):
        ports = [(n.host if n.host == "127.0.0.1" else None, p)
                 for n in self.nodes for p in (n.client, n.monitor, n.route)]
        ports += [("127.0.0.1", self.port(s, i)) for s in SERVICES for i in INSTANCES]
        return [p for host, p in ports if host and not port_free(host, p)]

    # -- processes --------------------------------------------------------------------

    def spawn(self, name, args, env):
        self.commands[name] = (args, env)
        path = os.path.join(self.data, f"{name}.log")
        with open(path, "a") as log:
            self.procs[name] = subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=ROOT)
        self.procs[name].log_path = path

    def start_node(self, i):
        node = self.nodes[i]
        store = os.path.join(self.data, node.name, "jetstream")
        os.makedirs(store, mode=0o700, exist_ok=True)
        quoted = {k: f'"{v}"' for k, v in self.secret.items()}
        routes = {f"SHOP_ROUTE_{j + 1}": f'"nats-route://{n.route_host}:{n.route}"'
                  for j, n in enumerate(self.nodes)}
        env = dict(os.environ, **quoted, **routes,
                   SHOP_NODE_NAME=f'"{node.name}"', SHOP_NODE_LISTEN=f'"{node.host}:{node.client}"',
                   SHOP_NODE_MONITOR=f'"{node.host}:{node.monitor}"',
                   SHOP_NODE_ROUTES=f'"{node.route_host}:{node.route}"',
                   SHOP_NODE_STORE=json.dumps(store))
        args = [self.nats_server, "-c", self.config(node)]
        if self.partition is not None and i == 2:
            args = self.partition.wrap(args)
        self.spawn(f"nats-{node.name}", args, env)

    def config(self, node):
        """A copy of nats-cluster.conf in the node's directory whose store fsyncs every
        write before acknowledging it (`sync_interval: always`, nats-server 2.10 and
        newer), as the stack does for `make run`; nats-cluster.conf itself with
        SHOP_NATS_SYNC=interval, or on 2.9, which fsyncs every two minutes and cannot be
        told otherwise."""
        path = os.path.join(ROOT, "nats-cluster.conf")
        if not self.sync_always:
            return path
        if server_version(self.nats_server) < (2, 10):
            if node is self.nodes[0]:
                print(f"warning: {self.nats_server} is older than 2.10 and cannot fsync each "
                      "write (sync_interval needs 2.10): a 201 survives crashes, not a power cut "
                      "of every node; `make deps` builds the current nats-server", flush=True)
            return path
        with open(path) as f:
            text = f.read()
        copy = os.path.join(self.data, node.name, "nats-cluster.conf")
        os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
        with open(copy, "w") as f:
            f.write(with_sync_always(text))
        return copy

    def service_env(self, service, instance):
        port = self.port(service, instance)
        home = self.home(service, instance)
        os.makedirs(home, mode=0o700, exist_ok=True)
        first = self.node_of(service, instance)
        urls = [n.url for n in self.nodes[first:] + self.nodes[:first]]
        env = dict(os.environ, NATS_URL=",".join(urls), NATS_USER=service,
                   NATS_PASSWORD=self.secret[f"SHOP_NATS_PASSWORD_{service.upper()}"],
                   SHOP_STREAM_REPLICAS=str(self.replicas), RUST_LOG=os.environ.get("RUST_LOG", "info"),
                   USERS_HTTP_ADDR=f"127.0.0.1:{port}", USERS_DB=os.path.join(home, "users.db"),
                   AUTH_HTTP_ADDR=f"127.0.0.1:{port}",
                   ORDERS_HTTP_ADDR=f"127.0.0.1:{port}",
                   ORDERS_PURCHASES_FILE=os.path.join(home, "purchases.json"),
                   ORDERS_CATALOG_FILE=os.path.join(home, "catalog.json"),
                   GATEWAY_HTTP_ADDR=f"127.0.0.1:{port}", GATEWAY_SECRETS_DIR=os.path.join(home, "secrets"),
                   GATEWAY_NATS_MONITOR_URL=f"http://{self.nodes[first].host}:{self.nodes[first].monitor}")
        env.update(self.extra_env)
        return env

    def start_service(self, service, instance):
        self.spawn(f"{service}-{instance}", [os.path.join(self.bin_dir, service)],
                   self.service_env(service, instance))

    def restart(self, name):
        """Starts `name` again with the command it had (after a kill)."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        args, env = self.commands[name]
        self.spawn(name, args, env)

    def kill(self, name, sig=signal.SIGKILL):
        self.procs[name].send_signal(sig)
        self.procs[name].wait()

    def stall(self, name):
        """Freezes `name` (SIGSTOP): its connections stay open and nothing answers, as
        with a paused VM or a long I/O stall."""
        self.procs[name].send_signal(signal.SIGSTOP)

    def resume(self, name):
        self.procs[name].send_signal(signal.SIGCONT)

    def wait(self, predicate, what, seconds=PATIENCE):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode}; its log, {self.data}/{name}.log, "
                                     f"ends{log_tail(proc)}")
            try:
                if predicate():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"{what} not ready within {seconds} s; see the logs in {self.data}")

    def streams_led(self, node=0):
        """Whether every stream the cluster holds has a leader (true with none yet)."""
        jsz = self.nodes[node].jsz("?streams=true")
        streams = [s for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])]
        return all(s.get("cluster", {}).get("leader") for s in streams)

    def start(self):
        if self.partition is not None:
            self.partition.create()
        for i in range(3):
            self.start_node(i)
        # JetStream answers once the three have elected a meta leader; after a restart
        # the streams kept on disk elect their leaders too.
        self.wait(lambda: self.nodes[0].jsz().get("meta_cluster", {}).get("leader"), "the JetStream cluster")
        self.wait(self.streams_led, "the streams' leaders")
        for service in SERVICES:
            for instance in INSTANCES:
                self.start_service(service, instance)
                self.wait_healthy(service, instance)

    def healthy(self, service, instance):
        try:
            return get_json(self.url(service, instance, "/healthz"), timeout=1).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, service, instance, seconds=PATIENCE):
        self.wait(lambda: self.healthy(service, instance), f"{service}-{instance}", seconds)

    def describe(self):
        lines = []
        for n in self.nodes:
            lines.append(f"  nats {n.name}  {n.url}  (monitoring http://{n.host}:{n.monitor}, routes {n.route_host}:{n.route})")
        for instance in INSTANCES:
            base = self.http[instance]
            lines.append(f"  instance {instance}: gateway http://127.0.0.1:{base}/  auth :{base + 1}  "
                         f"users :{base + 2}  orders :{base + 3}")
        return "\n".join(lines)

    def stop(self):
        services = [n for n in self.procs if not n.startswith("nats-")]
        nodes = [n for n in self.procs if n.startswith("nats-")]
        for group in (services, nodes):
            for name in group:
                if self.procs[name].poll() is None:
                    self.procs[name].send_signal(signal.SIGCONT)  # if stalled
                    self.procs[name].send_signal(signal.SIGTERM)
            for name in group:
                try:
                    self.procs[name].wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.procs[name].kill()
                    self.procs[name].wait()
        if self.partition is not None:
            self.partition.remove()


def main():
    data = os.path.join(ROOT, "data", "cluster")
    cluster = Cluster(data, os.path.join(TARGET, "release"), nats_server=os.environ.get("NATS_SERVER", "nats-server"),
                      sync_always=os.environ.get("SHOP_NATS_SYNC", "always") == "always")
    taken = cluster.taken_ports()
    if taken:
        raise SystemExit(f"ports {taken} are taken (is `make run` or another nats-server running?): stop them first")
    # SIGTERM (kill, a service manager) stops everything as Ctrl-C does.
    def interrupted(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    try:
        cluster.start()
        print("The shop is running on a three-node NATS cluster:")
        print(cluster.describe())
        print(f"Streams on 3 replicas; data and logs in {data}. Press Ctrl-C to stop.", flush=True)
        # A process that dies (a node killed on purpose, say) is reported, and the rest
        # goes on: the cluster is meant to survive it.
        reported = set()
        while True:
            for name, proc in list(cluster.procs.items()):
                if proc.poll() is not None and (name, proc.pid) not in reported:
                    reported.add((name, proc.pid))
                    print(f"{name} exited with {proc.returncode}; the rest goes on (see {data}/{name}.log)",
                          file=sys.stderr, flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
