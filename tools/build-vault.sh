#!/usr/bin/env bash
# Builds the Vault server, CLI and agent (one binary) from its published Go module, pinned
# in tools/vault/go.mod (v1.14.8, the last MPL-2.0 release), into $BIN, only when it is
# missing or was built from other inputs. Vault's own go.mod points its sdk module at a
# folder of its tree that was never published, so this copies the sdk version it names
# into .maestro/build/ and amends it with tools/vault/sdk-compat/ (README.md there says
# what and why), then builds against that copy through a temporary go.mod (-modfile).
# Like actionlint, the binary is also kept in a per-user cache keyed by version (and by a
# hash of the inputs), so a fresh clone copies it instead of rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/vault
VERSION=$(awk '$1 == "require" && $2 == "github.com/hashicorp/vault" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum sdk-compat/*.in sdk-compat/*.patch | sha256sum | cut -c1-12)
KEY=$VERSION-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/vault-$KEY
mkdir -p "$BIN" "$CACHE"

# `vault version` prints "Vault v1.14.8"; .vault-inputs beside the binary names its inputs.
version_of() { if [ -x "$1" ]; then "$1" version 2>/dev/null | head -n1 || true; fi; }
fresh() { [ "$(version_of "$1/vault")" = "Vault $VERSION" ] && [ "$(cat "$1/.vault-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/vault" "$BIN/vault"
  echo "$KEY" > "$BIN/.vault-inputs"
  exit 0
fi
echo "building vault $VERSION (the first build takes about 10 minutes on 2 cores)"
rm -f "$BIN/.vault-inputs"
# A fixed place (not mktemp), so Go's build cache still holds what depends on the sdk.
work=$(cd "$here/.." && pwd)/.maestro/build/vault
rm -rf "$work" && mkdir -p "$work"
(cd "$mod" && go mod download github.com/hashicorp/vault/sdk)
cp -r "$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/hashicorp/vault/sdk)" "$work/sdk"
chmod -R u+w "$work/sdk"
cp "$mod/sdk-compat/logical.go.in" "$work/sdk/logical/zz_maestro_compat.go"
cp "$mod/sdk-compat/physical.go.in" "$work/sdk/physical/zz_maestro_compat.go"
# git apply as a plain patch tool: the ceiling keeps it from finding this repository above.
GIT_CEILING_DIRECTORIES=$work git -C "$work/sdk" apply "$mod/sdk-compat/framework-backend.patch"
cp "$mod/go.mod" "$mod/go.sum" "$work/"
go mod edit -replace="github.com/hashicorp/vault/sdk=$work/sdk" "$work/go.mod"
# Static, as HashiCorp's release binaries are; the version comes from the module's
# version/VERSION file.
(cd "$mod" && CGO_ENABLED=0 go build -modfile="$work/go.mod" -trimpath -ldflags "-s -w" \
  -o "$BIN/vault" github.com/hashicorp/vault)
cp "$BIN/vault" "$CACHE/vault"
echo "$KEY" > "$CACHE/.vault-inputs"
echo "$KEY" > "$BIN/.vault-inputs"
