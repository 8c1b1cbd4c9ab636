#!/usr/bin/env bash
# The tools of the NATS world that are written in Go, pinned, built from their official
# modules with `go install` into the project's target directory (`make deps` runs this):
# the `nats` CLI, which the cookbook test of `make test` runs, the current nats-server,
# on which the cluster fault test runs beside Debian's, and Jaeger, which the traces
# test reads traces back from. Go checks every module against its checksum database
# (sum.golang.org). A tool already there at its pinned version is reused.
#
#   bench/go_tools.sh <bin directory> [nats|nats-server|jaeger ...]   (all by default)
set -euo pipefail

NATSCLI_VERSION=v0.5.0       # v0.5.1 does not build with this Go
NATS_SERVER_VERSION=v2.15.3
JAEGER_VERSION=v1.75.0       # with every module it needs in bench/jaeger/go.mod

bin="${1:?usage: $0 <bin directory>}"
mkdir -p "$bin"

if ! command -v go >/dev/null 2>&1; then
  echo "go is missing: install Go (1.24 or newer, https://go.dev/dl/), then run make deps again" >&2
  exit 1
fi

install() { # name module version
  local name=$1 module=$2 version=$3
  if [ -x "$bin/$name" ] && "$bin/$name" --version 2>&1 | grep -qF "$version"; then
    echo "installed: $name $version ($bin/$name)"
    return
  fi
  echo "building $name $version with go install (a minute or two the first time)"
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$module@$version"
  "$bin/$name" --version 2>&1 | grep -qF "$version" || {
    echo "$bin/$name does not say it is $version" >&2
    exit 1
  }
}

# Jaeger's module cannot be installed as pkg@version (replace directives in its
# go.mod): it is built from bench/jaeger, whose go.mod pins it, and prints no version
# of its own, so a stamp beside it says which it is.
install_jaeger() {
  local here stamp="$bin/jaeger.version"
  if [ -x "$bin/jaeger" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$JAEGER_VERSION" ]; then
    echo "installed: jaeger $JAEGER_VERSION ($bin/jaeger)"
    return
  fi
  grep -qF "github.com/jaegertracing/jaeger $JAEGER_VERSION" "$(dirname "$0")/jaeger/go.mod" || {
    echo "bench/jaeger/go.mod does not pin jaeger $JAEGER_VERSION" >&2
    exit 1
  }
  echo "building jaeger $JAEGER_VERSION with go install (five minutes or more the first time)"
  here=$(cd "$(dirname "$0")/jaeger" && pwd)
  (cd "$here" && GOBIN="$bin" GOFLAGS=-buildvcs=false go install github.com/jaegertracing/jaeger/cmd/jaeger)
  echo "$JAEGER_VERSION" >"$stamp"
}

shift
for tool in "${@:-nats nats-server jaeger}"; do
  for name in $tool; do
    case "$name" in
      nats) install nats github.com/nats-io/natscli/nats "$NATSCLI_VERSION" ;;
      nats-server) install nats-server github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION" ;;
      jaeger) install_jaeger ;;
      *) echo "unknown tool $name" >&2; exit 1 ;;
    esac
  done
done
