#!/usr/bin/env bash
# Builds prometheus-adapter (upstream's cmd/adapter, installed as `prometheus-adapter`: it
# serves custom.metrics.k8s.io from Prometheus queries, for the HPA's requests-per-second
# target) from its published Go module, pinned in tools/prometheus-adapter/go.mod
# (v0.12.0), into $BIN, only when it is missing or was built from other inputs. Like
# SeaweedFS, the binary is also kept in a per-user cache keyed by version (and by a hash
# of the inputs), so a fresh clone copies it instead of rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/prometheus-adapter
VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/prometheus-adapter" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum tools.go | sha256sum | cut -c1-12)
KEY=$VERSION-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/prometheus-adapter-$KEY
mkdir -p "$BIN" "$CACHE"

# The adapter has no version flag; the build information Go records in the binary says
# which module version it was built from ("mod sigs.k8s.io/prometheus-adapter v0.12.0", as
# `go version -m` prints it). .prometheus-adapter-inputs beside the binary names its inputs.
version_of() {
  if [ -x "$1" ]; then
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "sigs.k8s.io/prometheus-adapter" {print $3}' || true
  fi
}
fresh() { [ "$(version_of "$1/prometheus-adapter")" = "$VERSION" ] && [ "$(cat "$1/.prometheus-adapter-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/prometheus-adapter" "$BIN/prometheus-adapter"
  echo "$KEY" > "$BIN/.prometheus-adapter-inputs"
  exit 0
fi
echo "building prometheus-adapter $VERSION (the first build takes about 3 minutes on 2 cores)"
rm -f "$BIN/.prometheus-adapter-inputs"
# Static, as the release images' binary is.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
  -o "$BIN/prometheus-adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter)
cp "$BIN/prometheus-adapter" "$CACHE/prometheus-adapter"
echo "$KEY" > "$CACHE/.prometheus-adapter-inputs"
echo "$KEY" > "$BIN/.prometheus-adapter-inputs"
