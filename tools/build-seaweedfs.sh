#!/usr/bin/env bash
# Builds SeaweedFS's one binary, `weed` (master, volume server, filer and S3 gateway: the
# local platform's object store), from its published Go module, pinned in
# tools/seaweedfs/go.mod (release 4.53, by commit), into $BIN, only when it is missing or
# was built from other inputs. Like Vault, the binary is also kept in a per-user cache
# keyed by version (and by a hash of the inputs), so a fresh clone copies it instead of
# rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/seaweedfs
VERSION=$(awk '$1 == "require" && $2 == "github.com/seaweedfs/seaweedfs" {print $3}' "$mod/go.mod")
RELEASE=$(awk '$1 == "//" && $2 == "release" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum tools.go | sha256sum | cut -c1-12)
KEY=$RELEASE-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/seaweedfs-$KEY
mkdir -p "$BIN" "$CACHE"

# `weed version` prints "version 30GB 4.53  linux amd64" (no commit: none is stamped in);
# .weed-inputs beside the binary names its inputs.
version_of() { if [ -x "$1" ]; then "$1" version 2>/dev/null | head -n1 | awk '{print $3}' || true; fi; }
fresh() { [ "$(version_of "$1/weed")" = "$RELEASE" ] && [ "$(cat "$1/.weed-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/weed" "$BIN/weed"
  echo "$KEY" > "$BIN/.weed-inputs"
  exit 0
fi
echo "building seaweedfs $RELEASE ($VERSION; the first build takes about 5 minutes on 2 cores)"
rm -f "$BIN/.weed-inputs"
# Static, as SeaweedFS's release binaries are.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
  -o "$BIN/weed" github.com/seaweedfs/seaweedfs/weed)
cp "$BIN/weed" "$CACHE/weed"
echo "$KEY" > "$CACHE/.weed-inputs"
echo "$KEY" > "$BIN/.weed-inputs"
