"""A virtual machine that runs the shop on a virtual disk, for the power-cut test: Debian's
kernel (linux-image-amd64, unpacked, never installed), an initramfs made here from
busybox-static, the kernel modules the disk and the network need, the shop's `stack`
and a nats-server; its data on ext4 on a virtio disk image. The host reaches the shop's
ports through qemu's user network, forwarded to 127.0.0.1.

Killing qemu (SIGKILL) loses whatever the guest had not written to its disk: its page
cache goes with it, as in a power cut. What the guest wrote (a write the disk completed,
an fsync) is in the image file, which the host's page cache keeps.
"""

import glob
import gzip
import io
import os
import re
import shutil
import subprocess
import time

import harness

# The shop's ports in the guest, forwarded to free ports of 127.0.0.1.
# nats-server listens on the guest's loopback only (nats.conf): a relay in the guest
# (busybox nc) takes the host's NATS connections on 4230 to it (the first node's).
GUEST_PORTS = {"gateway": 5000, "auth": 5001, "users": 5002, "orders": 5003, "nats": 4230}
# Modules the guest loads (with what they need): the disk, its file system, the network.
MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic", "virtio_rng"]


class Unavailable(Exception):
    """qemu, the kernel or busybox cannot be had on this machine: said, never skipped."""


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


def package(assets, name):
    """Unpacks Debian's package `name` into assets/<name> (downloaded once with apt-get
    download, which needs no root) and returns that directory."""
    home = os.path.join(assets, name)
    if os.path.isdir(home):
        return home
    os.makedirs(assets, exist_ok=True)
    try:
        sh("apt-get", "download", name, cwd=assets)
    except (OSError, subprocess.CalledProcessError):
        # Package lists older than the mirror name versions it no longer has: read them
        # again (as root, or with sudo) and try once more.
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run([*sudo, "apt-get", "update", "-qq"], capture_output=True)
        try:
            sh("apt-get", "download", name, cwd=assets)
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", "") or err
            raise Unavailable(f"cannot download the Debian package {name}: {detail}") from err
    debs = sorted(glob.glob(os.path.join(assets, f"{name}_*.deb")))
    if not debs:
        raise Unavailable(f"apt-get download {name} left no .deb in {assets}")
    scratch = home + ".part"
    shutil.rmtree(scratch, ignore_errors=True)
    sh("dpkg-deb", "-x", debs[-1], scratch)
    os.rename(scratch, home)
    return home


def kernel(assets):
    """(vmlinuz, modules directory) of the kernel linux-image-amd64 depends on now."""
    def named():
        depends = sh("apt-cache", "depends", "linux-image-amd64")
        found = re.search(r"Depends: (linux-image-[0-9][^\s]*)", depends)
        if not found:
            raise Unavailable(f"linux-image-amd64 names no kernel package: {depends!r}")
        return found.group(1)

    name = named()
    try:
        home = package(assets, name)
    except Unavailable:
        if named() == name:  # the lists package() read again name another kernel?
            raise
        home = package(assets, named())
    (vmlinuz,) = glob.glob(os.path.join(home, "boot", "vmlinuz-*"))
    (modules,) = glob.glob(os.path.join(home, "lib", "modules", "*"))
    return vmlinuz, modules


def module_files(modules_dir, wanted):
    """The .ko files of `wanted` and of every module they depend on, in the order they
    must be loaded (a module's `depends=` is read from its .modinfo)."""
    paths = {}
    for path in glob.glob(os.path.join(modules_dir, "kernel", "**", "*.ko"), recursive=True):
        paths[os.path.basename(path)[:-3].replace("-", "_")] = path
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        if name not in paths:
            raise Unavailable(f"the kernel has no module {name}")
        with open(paths[name], "rb") as f:
            found = re.search(rb"(?:^|\0)depends=([^\0]*)\0", f.read())
        for dep in (found.group(1).decode().split(",") if found else []):
            if dep:
                visit(dep.replace("-", "_"))
        order.append(paths[name])

    for name in wanted:
        visit(name)
    return order


def shared_libraries(binary):
    """The shared libraries `binary` loads (ldd), the dynamic loader included."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = re.findall(r"(/\S+\.so[\S]*)", out)
    return sorted(set(libs))


class Cpio:
    """An initramfs: a newc cpio archive, gzip-compressed."""

    def __init__(self):
        self.out = io.BytesIO()
        self.inode = 1
        self.dirs = set()

    def entry(self, name, mode, data=b""):
        header = "070701" + "".join(
            f"{value:08x}"
            for value in (self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        )
        self.inode += 1
        self.out.write(header.encode() + name.encode() + b"\0")
        self.out.write(b"\0" * (-(110 + len(name) + 1) % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def directory(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path not in self.dirs:
                self.dirs.add(path)
                self.entry(path, 0o040755)

    def file(self, name, data, mode=0o644):
        name = name.strip("/")
        if "/" in name:
            self.directory(os.path.dirname(name))
        self.entry(name, 0o100000 | mode, data)

    def copy(self, name, source, mode=0o755):
        with open(source, "rb") as f:
            self.file(name, f.read(), mode)

    def symlink(self, name, target):
        self.entry(name.strip("/"), 0o120777, target.encode())

    def finish(self):
        self.entry("TRAILER!!!", 0)
        return gzip.compress(self.out.getvalue(), compresslevel=1)


INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "/modules/$m" || echo "init: insmod $m failed"; done
mkdir -p /data
if ! mount -t ext4 /dev/vda /data; then echo "init: cannot mount the data disk"; poweroff -f; fi
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
nc -ll -p 4230 -e nc 127.0.0.1 4222 &
echo "init: up, starting the shop"
cd /data
export GATEWAY_HTTP_ADDR=0.0.0.0:5000 AUTH_HTTP_ADDR=0.0.0.0:5001
export USERS_HTTP_ADDR=0.0.0.0:5002 ORDERS_HTTP_ADDR=0.0.0.0:5003
export RUST_LOG=warn,stack=info
{env}
nodes=""
if [ -f /shop/nats-cluster.conf ]; then
  # Three clustered nodes, as make cluster runs them; the stack joins them.
  set -a; . /data/data/secrets/nats-passwords.env; set +a
  export SHOP_ROUTE_1='"nats-route://127.0.0.1:6222"' SHOP_ROUTE_2='"nats-route://127.0.0.1:6223"'
  export SHOP_ROUTE_3='"nats-route://127.0.0.1:6224"'
  for i in 0 1 2; do
    mkdir -p /data/data/n$i/jetstream
    SHOP_NODE_NAME="\"n$i\"" SHOP_NODE_LISTEN="\"127.0.0.1:422$((i + 2))\"" \
    SHOP_NODE_MONITOR="\"127.0.0.1:822$((i + 2))\"" SHOP_NODE_ROUTES="\"127.0.0.1:622$((i + 2))\"" \
    SHOP_NODE_STORE="\"/data/data/n$i/jetstream\"" \
      /shop/nats-server -c /shop/nats-cluster.conf >> /data/data/n$i.log 2>&1 &
    nodes="$nodes $!"
  done
  export NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
  export SHOP_STREAM_REPLICAS=3
fi
/shop/stack --nats-server-bin /shop/nats-server --nats-config /shop/nats.conf \
  --data-dir /data/data --nats-monitor-port 0 &
stack=$!
# A line on the console (Machine.stop) is the clean shutdown: SIGTERM, as Ctrl-C.
( read -r line < /dev/console; echo "init: stopping the shop"; kill -TERM $stack ) &
wait $stack
echo "init: the stack ended ($?)"
if [ -n "$nodes" ]; then kill -TERM $nodes; wait $nodes; fi
sync
umount /data
poweroff -f
"""


def initramfs(path, assets, stack_bin, nats_server_bin, nats_conf_text, env, cluster_conf_text=None):
    """Writes the guest's initramfs to `path`; the stack runs with `env` added, on its own
    nats-server (`nats_conf_text`), or with `cluster_conf_text` on three clustered
    nodes."""
    busybox = os.path.join(package(assets, "busybox-static"), "bin", "busybox")
    _, modules_dir = kernel(assets)
    archive = Cpio()
    for d in ("bin", "proc", "sys", "dev", "data", "tmp", "modules", "shop", "etc"):
        archive.directory(d)
    archive.copy("bin/busybox", busybox)
    exports = "".join(f"export {name}={value}\n" for name, value in env.items())
    archive.file("init", INIT.replace("{env}\n", exports).encode(), 0o755)
    order = []
    for ko in module_files(modules_dir, MODULES):
        archive.copy("modules/" + os.path.basename(ko), ko, 0o644)
        order.append(os.path.basename(ko))
    archive.file("modules.order", "\n".join(order).encode() + b"\n")
    archive.copy("shop/stack", stack_bin)
    archive.copy("shop/nats-server", nats_server_bin)
    archive.file("shop/nats.conf", nats_conf_text.encode())
    if cluster_conf_text is not None:
        archive.file("shop/nats-cluster.conf", cluster_conf_text.encode())
    for binary in (stack_bin,):
        for lib in shared_libraries(binary):
            archive.copy(lib.lstrip("/"), lib)
            real = os.path.realpath(lib)
            if real != lib:
                archive.copy(real.lstrip("/"), real)
    archive.file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
    with open(path, "wb") as f:
        f.write(archive.finish())


def disk(path, size_mb, files):
    """An ext4 image of `size_mb` holding `files` ({path in the fs: bytes})."""
    tree = path + ".tree"
    shutil.rmtree(tree, ignore_errors=True)
    for name, data in files.items():
        full = os.path.join(tree, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.chmod(full, 0o600)
        for parent in range(len(name.split("/")) - 1):
            os.chmod(os.path.join(tree, *name.split("/")[:parent + 1]), 0o700)
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    sh("mkfs.ext4", "-q", "-F", "-d", tree, path)
    shutil.rmtree(tree)


def read_back(image, names, into):
    """Copies files out of the ext4 `image` (its journal replayed first, as the guest's
    next mount would) into the directory `into`; returns {name: local path or None}."""
    subprocess.run(["e2fsck", "-p", image], capture_output=True)
    found = {}
    for name in names:
        local = os.path.join(into, os.path.basename(name))
        subprocess.run(
            ["debugfs", "-R", f"dump {name} {local}", image], capture_output=True
        )
        found[name] = local if os.path.exists(local) else None
    return found


def probe_kvm():
    """Whether KVM guests run here: /dev/kvm exists on these machines but its guests hang,
    so it is used only when asked for (POWER_CUT_ACCEL=kvm)."""
    return os.environ.get("POWER_CUT_ACCEL") == "kvm" and os.access("/dev/kvm", os.W_OK)


class Machine:
    """One boot of the guest on `image`; `kill()` is the power cut."""

    def __init__(self, vmlinuz, initrd, image, console_log, memory_mb=1536):
        qemu = shutil.which("qemu-system-x86_64")
        if not qemu:
            raise Unavailable("qemu-system-x86_64 is missing: make deps installs qemu-system-x86")
        self.ports = {name: harness.free_port() for name in GUEST_PORTS}
        forwards = ",".join(
            f"hostfwd=tcp:127.0.0.1:{self.ports[name]}-:{port}"
            for name, port in GUEST_PORTS.items()
        )
        accel = ["-accel", "kvm", "-cpu", "max"] if probe_kvm() else ["-accel", "tcg,thread=multi"]
        self.console_log = console_log
        self.log = open(console_log, "ab")
        self.proc = subprocess.Popen(
            [qemu, *accel, "-smp", "2", "-m", str(memory_mb), "-nographic", "-no-reboot",
             "-kernel", vmlinuz, "-initrd", initrd,
             "-append", "console=ttyS0 quiet panic=-1 random.trust_cpu=on",
             # cache=unsafe: the host does not fsync the image for the guest (faster);
             # what the guest wrote is in the file all the same, and qemu's death takes
             # only what the guest had not written yet.
             "-drive", f"file={image},format=raw,if=virtio,cache=unsafe",
             "-nic", f"user,model=virtio-net-pci,{forwards}",
             "-device", "virtio-rng-pci",
             "-serial", "stdio", "-monitor", "none"],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()

    def url(self, door, path=""):
        return f"http://127.0.0.1:{self.ports[door]}{path}"

    def alive(self):
        return self.proc.poll() is None

    def console(self, lines=30):
        self.log.flush()
        with open(self.console_log, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    def stop(self, seconds=harness.PATIENCE):
        """A clean shutdown: the shop stops as on Ctrl-C, the disk is unmounted, the
        guest powers off. True when it did within `seconds` (killed otherwise)."""
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=seconds)
            return True
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
            return False
        finally:
            self.log.close()

    def kill(self):
        """The power cut: qemu and the guest's memory are gone at once."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if not self.log.closed:
            self.log.close()
