#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow linter `make lint` runs) from its
# published Go module, pinned in tools/actionlint/go.mod, into $BIN, only when it is
# missing or of another version. Like the control plane (tools/build-binaries.sh), the
# binary is also kept in a per-user cache keyed by version, so a fresh clone copies it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
VERSION=$(awk '$1 == "require" && $2 == "github.com/rhysd/actionlint" {print $3}' "$here/actionlint/go.mod")
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/actionlint-$VERSION
mkdir -p "$BIN" "$CACHE"

# `actionlint -version` prints the module version (from the build info) on its first line.
version_of() { if [ -x "$1" ]; then "$1" -version 2>/dev/null | head -n1 || true; fi; }

[ "$(version_of "$BIN/actionlint")" = "$VERSION" ] && exit 0
if [ "$(version_of "$CACHE/actionlint")" = "$VERSION" ]; then
  cp "$CACHE/actionlint" "$BIN/actionlint"
  exit 0
fi
echo "building actionlint $VERSION"
(cd "$here/actionlint" && go build -trimpath -ldflags "-s -w" -o "$BIN/" github.com/rhysd/actionlint/cmd/actionlint)
cp "$BIN/actionlint" "$CACHE/actionlint"
