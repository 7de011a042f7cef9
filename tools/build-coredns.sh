#!/usr/bin/env bash
# Builds CoreDNS (tools/coredns/main.go: upstream's coremain with the plugins kubeadm's
# default Corefile names, kubernetes among them) from its published Go module, pinned in
# tools/coredns/go.mod (v1.12.1), into $BIN, only when it is missing or was built from other
# inputs. The local platform runs it as the cluster DNS. Like SeaweedFS, the binary is also
# kept in a per-user cache keyed by version (and by a hash of the inputs), so a fresh clone
# copies it instead of rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/coredns
VERSION=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)
KEY=$VERSION-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/coredns-$KEY
mkdir -p "$BIN" "$CACHE"

# `coredns -version` prints "CoreDNS-1.12.1" first; .coredns-inputs beside the binary names
# its inputs.
version_of() { if [ -x "$1" ]; then "$1" -version 2>/dev/null | head -n1 || true; fi; }
fresh() { [ "$(version_of "$1/coredns")" = "CoreDNS-${VERSION#v}" ] && [ "$(cat "$1/.coredns-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/coredns" "$BIN/coredns"
  echo "$KEY" > "$BIN/.coredns-inputs"
  exit 0
fi
echo "building CoreDNS $VERSION (the first build takes about 4 minutes on 2 cores)"
rm -f "$BIN/.coredns-inputs"
# Static, as the release images' binary is.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/coredns" .)
cp "$BIN/coredns" "$CACHE/coredns"
echo "$KEY" > "$CACHE/.coredns-inputs"
echo "$KEY" > "$BIN/.coredns-inputs"
