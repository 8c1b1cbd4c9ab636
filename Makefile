# The shop: `make run` brings the whole system up, `make test` checks everything.

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
## Where cargo builds, and where the Go tools go (bench/go_tools.sh).
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
GO_BIN := $(TARGET_DIR)/go-bin

.PHONY: help deps deps-run deps-bench install run cluster cluster-fault cluster-fault-run traces traces-run power-cut power-cut-run build test test-busy test-one-core bench bench-traces profile-read bench-scale fault lint fmt clean-data

help:
	@echo "make run    start nats-server and every service (Ctrl-C stops them)"
	@echo "make cluster three nats-servers in a cluster, two instances of each service (Ctrl-C stops them)"
	@echo "make test   formatting, clippy, every test, schemathesis against each door's OpenAPI,"
	@echo "            every nats line of the docs run by the real nats CLI, traces read back"
	@echo "            from a real Jaeger,"
	@echo "            the cluster fault test on Debian's nats-server and on the current release,"
	@echo "            and the power-cut test"
	@echo "make test-busy      make test beside stress-ng (both cores busy, a disk writing with fsync)"
	@echo "make test-one-core  make test pinned to one core (taskset -c 0)"
	@echo "make cluster-fault  only the cluster fault test (kills and a partition under load)"
	@echo "make power-cut      only the power-cut test (the shop in a VM, killed under load)"
	@echo "make traces         only the traces test (a sign-up, a login and a buy read back from Jaeger)"
	@echo "make lint   formatting, clippy, the docs, import circles and the docs' links"
	@echo "make bench  release builds under load (wrk), a table and target/bench/results.json"
	@echo "make bench-traces the same reads, buys and logins with traces off, then on (full sampling)"
	@echo "make profile-read   where the CPU of one read goes (perf), by process and symbol"
	@echo "make bench-scale  the shop with 1 and 10 million purchases: orders' start, memory, reads, buys"
	@echo "make fault  buyers with idempotency keys while processes are killed; counts lost and doubled"
	@echo "make deps   install nats-server, chromium, chromium-driver, wrk when missing (apt),"
	@echo "            and build the nats CLI, the current nats-server and Jaeger (go install, pinned)"

## deps-run: nats-server, all `make run` needs. Debian's package starts a system
## service on port 4222, which would collide with the shop's own server: it is disabled.
## Debian's is 2.9.10, which cannot fsync each write: with Go installed, the current
## nats-server is built too (pinned, bench/go_tools.sh), and `make run` uses it.
## deps: also Chromium and its WebDriver (the browser test of `make test`), wrk, and
## python3 with venv (schemathesis, from PyPI, for `make test`), iproute2 (`ip netns`:
## the cluster fault test's partition), qemu, e2fsprogs and binutils (the power-cut
## test's VM; its kernel and busybox are unpacked from Debian's packages by
## bench/vm.py); then the `nats` CLI, the current nats-server and Jaeger (the traces
## test's backend), pinned, built with `go install` into $(GO_BIN).
## deps-bench: wrk, python3 and the Go tools, for `make bench` (on the current nats-server).
RUN_PACKAGES := nats-server
TEST_PACKAGES := nats-server chromium chromium-driver wrk python3 python3-venv iproute2 \
  qemu-system-x86 e2fsprogs binutils
BENCH_PACKAGES := nats-server wrk python3

deps-run:
	@$(MAKE) --no-print-directory install PACKAGES="$(RUN_PACKAGES)"
	@if command -v go >/dev/null 2>&1; then bench/go_tools.sh $(GO_BIN) nats-server; \
	else echo "go is missing: make run uses Debian's nats-server, which cannot fsync each write (see docs/operations.md)"; fi

deps:
	@$(MAKE) --no-print-directory install PACKAGES="$(TEST_PACKAGES)"
	@bench/go_tools.sh $(GO_BIN)

deps-bench:
	@$(MAKE) --no-print-directory install PACKAGES="$(BENCH_PACKAGES)"
	@bench/go_tools.sh $(GO_BIN)

install:
	@missing=""; \
	for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then \
	  echo "installed: $(PACKAGES)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing with apt-get:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null && \
	  case "$$missing" in *nats-server*) \
	    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nats-server 2>/dev/null; then \
	      $(SUDO) systemctl disable --now nats-server >/dev/null 2>&1; \
	      echo "disabled the system nats-server service: the shop starts its own"; \
	    fi;; \
	  esac; \
	else \
	  echo "missing:$$missing, and apt-get is not available: install them with your package manager"; \
	  echo "(nats-server 2.9 or newer; chromium and chromedriver for the browser test)"; \
	  exit 1; \
	fi

## The nats-server `make run` and `make cluster` start: the pinned current one when make
## deps-run could build it, else the one on PATH.
NATS_SERVER_BIN ?= $(if $(wildcard $(GO_BIN)/nats-server),$(GO_BIN)/nats-server,nats-server)
export NATS_SERVER_BIN

run: deps-run
	$(CARGO) run --release -p stack

## cluster: release builds, three clustered nats-servers (nats-cluster.conf), two
## instances of each service, streams on three replicas (bench/cluster.py).
cluster: deps-bench
	$(CARGO) build --release -p users -p auth -p orders -p gateway
	NATS_SERVER=$(NATS_SERVER_BIN) python3 bench/cluster.py

build:
	$(CARGO) build --workspace --all-targets

## lint: formatting, clippy, the docs (a broken intra-doc link fails), import circles
## between files (bench/circles.py), and every relative link of the README and docs/.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings -A rustdoc::private-intra-doc-links" $(CARGO) doc --no-deps --workspace --document-private-items --quiet
	python3 bench/circles.py
	python3 bench/links.py

fmt:
	$(CARGO) fmt --all

test: deps lint
	$(CARGO) test --workspace
	python3 bench/contracts.py
	python3 bench/cookbook.py
	@$(MAKE) --no-print-directory traces-run
	@$(MAKE) --no-print-directory cluster-fault-run
	@$(MAKE) --no-print-directory power-cut-run

## test-busy: the whole of `make test` on a busy machine (bench/busy.sh: stress-ng loads
## both cores and writes a file with fsync beside it), to catch a test that counts on
## the machine's speed. test-one-core: the same, pinned to one core.
test-busy: deps
	@$(MAKE) --no-print-directory install PACKAGES="stress-ng"
	bench/busy.sh $(MAKE) --no-print-directory test

test-one-core: deps
	taskset -c 0 $(MAKE) --no-print-directory test

## cluster-fault: three nats-servers, two instances of each service (debug builds),
## kills and a partition under load; on Debian's nats-server, then on the current
## release built by make deps (bench/go_tools.sh; CLUSTER_SERVERS=system picks one).
cluster-fault: deps
	@$(MAKE) --no-print-directory cluster-fault-run

cluster-fault-run:
	$(CARGO) build -p users -p auth -p orders -p gateway
	python3 bench/cluster_fault.py

## traces: Jaeger (built by make deps) and the shop's cluster (debug builds) exporting
## traces to it; a sign-up, a login and a buy, each trace read back from Jaeger's query
## API and checked across the processes (bench/traces.py).
traces: deps
	@$(MAKE) --no-print-directory traces-run

traces-run:
	$(CARGO) build -p users -p auth -p orders -p gateway
	NATS_SERVER=$(NATS_SERVER_BIN) python3 bench/traces.py

## power-cut: the shop (debug stack, the current nats-server) in a qemu VM on a virtual
## disk, cut off under load by SIGKILL of qemu, several times (bench/power_cut.py): on
## make run's single server, then on make cluster's three nodes.
power-cut: deps
	@$(MAKE) --no-print-directory power-cut-run

power-cut-run:
	$(CARGO) build -p stack
	python3 bench/power_cut.py
	python3 bench/power_cut.py --nodes 3 --cuts 2

## bench: release builds, each service its own process, driven by wrk.
bench: deps-bench
	$(CARGO) build --release -p users -p auth -p orders -p gateway
	$(CARGO) build --release -p stack --example floor
	python3 bench/run.py

## bench-traces: release builds; reads, buys and logins with traces off, then on at full
## sampling to a Jaeger beside the shop (bench/run.py with BENCH_TRACES=1).
bench-traces: deps-bench
	$(CARGO) build --release -p users -p auth -p orders -p gateway
	$(CARGO) build --release -p stack --example floor
	BENCH_TRACES=1 python3 bench/run.py

## profile-read: release builds; where the CPU of `GET /api/purchases` goes (perf, every
## CPU, while wrk reads with 16 connections), by process and symbol (bench/profile_read.py).
profile-read: deps-bench
	@$(MAKE) --no-print-directory install PACKAGES="linux-perf"
	$(CARGO) build --release -p users -p auth -p orders -p gateway
	$(CARGO) build --release -p stack --example floor
	python3 bench/profile_read.py

## bench-scale: release builds; the shop with 1 and 10 million purchases (bench/scale.py,
## SCALE_SIZES to choose): orders' start-up, memory, reads and buys as the shop grows.
bench-scale: deps-bench
	$(CARGO) build --release -p users -p auth -p orders -p gateway
	$(CARGO) build --release -p stack --example floor --example fill
	python3 bench/scale.py

## fault: release builds, buyers through the gateway while processes are killed.
fault: deps-bench
	$(CARGO) build --release -p users -p auth -p orders -p gateway
	$(CARGO) build --release -p stack --example floor
	python3 bench/fault.py

## clean-data: forget every account and purchase (keeps data/README.md).
clean-data:
	find data -mindepth 1 ! -name README.md -exec rm -rf {} +
