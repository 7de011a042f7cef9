#!/usr/bin/env bash
# Builds metrics-server (it scrapes the kubelets' resource metrics, on the local platform
# kwok's emulated ones, and serves metrics.k8s.io for `kubectl top` and the HPA's CPU and
# memory targets) from its published Go module, pinned in tools/metrics-server/go.mod
# (v0.8.0), into $BIN, only when it is missing or was built from other inputs. Like
# SeaweedFS, the binary is also kept in a per-user cache keyed by version (and by a hash
# of the inputs), so a fresh clone copies it instead of rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/metrics-server
VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/metrics-server" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum tools.go | sha256sum | cut -c1-12)
KEY=$VERSION-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/metrics-server-$KEY
mkdir -p "$BIN" "$CACHE"

# `metrics-server --version` prints "v0.8.0" (stamped below, as upstream's Makefile does);
# .metrics-server-inputs beside the binary names its inputs.
version_of() { if [ -x "$1" ]; then "$1" --version 2>/dev/null | head -n1 || true; fi; }
fresh() { [ "$(version_of "$1/metrics-server")" = "$VERSION" ] && [ "$(cat "$1/.metrics-server-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/metrics-server" "$BIN/metrics-server"
  echo "$KEY" > "$BIN/.metrics-server-inputs"
  exit 0
fi
echo "building metrics-server $VERSION (the first build takes about 7 minutes on 2 cores)"
rm -f "$BIN/.metrics-server-inputs"
# Static, as the release images' binary is.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$VERSION" \
  -o "$BIN/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server)
cp "$BIN/metrics-server" "$CACHE/metrics-server"
echo "$KEY" > "$CACHE/.metrics-server-inputs"
echo "$KEY" > "$BIN/.metrics-server-inputs"
