# The shop: `make run` brings the whole system up, `make test` checks everything.

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help deps run build test lint fmt clean-data

help:
	@echo "make run    start nats-server and every service (Ctrl-C stops them)"
	@echo "make test   formatting, clippy and every test"
	@echo "make lint   formatting and clippy only"
	@echo "make deps   install nats-server when it is missing (apt)"

## deps: nats-server from Debian when it is missing. Debian's package starts a system
## service on port 4222, which would collide with `make run`: it is disabled again.
deps:
	@if command -v nats-server >/dev/null 2>&1; then \
	  echo "nats-server: $$(nats-server --version)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing nats-server with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nats-server >/dev/null && \
	  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nats-server 2>/dev/null; then \
	    $(SUDO) systemctl disable --now nats-server >/dev/null 2>&1; \
	    echo "disabled the system nats-server service: the shop starts its own"; \
	  fi; \
	  echo "nats-server: $$(nats-server --version)"; \
	else \
	  echo "nats-server is missing and apt-get is not available:"; \
	  echo "install nats-server 2.9 or newer from your package manager or the NATS releases"; \
	  exit 1; \
	fi

run: deps
	$(CARGO) run --release -p stack

build:
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

test: deps lint
	$(CARGO) test --workspace

## clean-data: forget every account and purchase (keeps data/README.md).
clean-data:
	find data -mindepth 1 ! -name README.md -exec rm -rf {} +
