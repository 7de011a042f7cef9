#!/usr/bin/env bash
# Builds Jaeger's all-in-one (collector with the OTLP receivers, in-memory storage and the
# query API in one process: the local platform's trace backend) from its published Go
# module, pinned in tools/jaeger/go.mod (v1.76.0), into $BIN/jaeger, only when it is missing
# or was built from other inputs. Without the `ui` build tag the binary serves the query
# API but not the web UI's assets (those are built by npm from a submodule the module does
# not carry). Like CoreDNS, the binary is also kept in a per-user cache keyed by version
# (and by a hash of the inputs), so a fresh clone copies it instead of rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/jaeger
VERSION=$(awk '$1 == "require" && $2 == "github.com/jaegertracing/jaeger" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum tools.go | sha256sum | cut -c1-12)
KEY=$VERSION-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/jaeger-$KEY
mkdir -p "$BIN" "$CACHE"

# `jaeger version` prints {"gitCommit":"","gitVersion":"v1.76.0","buildDate":""} (the
# version stamped in below, as upstream's Makefile does); .jaeger-inputs beside the binary
# names its inputs.
version_of() { if [ -x "$1" ]; then "$1" version 2>/dev/null | grep -o '"gitVersion":"[^"]*"' | cut -d'"' -f4 || true; fi; }
fresh() { [ "$(version_of "$1/jaeger")" = "$VERSION" ] && [ "$(cat "$1/.jaeger-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/jaeger" "$BIN/jaeger"
  echo "$KEY" > "$BIN/.jaeger-inputs"
  exit 0
fi
echo "building Jaeger $VERSION all-in-one (the first build takes about 6 minutes on 2 cores)"
rm -f "$BIN/.jaeger-inputs"
# Static, as Jaeger's release binaries are.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$VERSION" \
  -o "$BIN/jaeger" github.com/jaegertracing/jaeger/cmd/all-in-one)
cp "$BIN/jaeger" "$CACHE/jaeger"
echo "$KEY" > "$CACHE/.jaeger-inputs"
echo "$KEY" > "$BIN/.jaeger-inputs"
