#!/usr/bin/env bash
# Builds ghz (the gRPC load generator `make bench-serving` drives the gRPC rows with) from
# its published Go module, pinned in tools/ghz/go.mod, into $BIN, only when it is missing
# or of another version. As for actionlint, the binary is also kept in a per-user cache
# keyed by version, so a fresh clone copies it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
VERSION=$(awk '$1 == "require" && $2 == "github.com/bojand/ghz" {print $3}' "$here/ghz/go.mod")
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/ghz-$VERSION
mkdir -p "$BIN" "$CACHE"

# `ghz --version` prints the version given at build time (-X main.version).
version_of() { if [ -x "$1" ]; then "$1" --version 2>&1 | head -n1 || true; fi; }

[ "$(version_of "$BIN/ghz")" = "$VERSION" ] && exit 0
if [ "$(version_of "$CACHE/ghz")" = "$VERSION" ]; then
  cp "$CACHE/ghz" "$BIN/ghz"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "error: go is missing; install Go 1.25+ to build ghz $VERSION" >&2
  exit 1
fi
echo "building ghz $VERSION"
(cd "$here/ghz" && go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$BIN/" \
  github.com/bojand/ghz/cmd/ghz)
cp "$BIN/ghz" "$CACHE/ghz"
