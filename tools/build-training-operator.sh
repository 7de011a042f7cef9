#!/usr/bin/env bash
# Builds the Kubeflow training operator (upstream's cmd/training-operator.v1, installed as
# `training-operator`: it reconciles PyTorchJob, TFJob and XGBoostJob into pods and headless
# Services) from its published Go module, pinned in tools/training-operator/go.mod (v1.8.1,
# the version the upstream CRDs come from), into $BIN, only when it is missing or was built
# from other inputs. Like SeaweedFS, the binary is also kept in a per-user cache keyed by
# version (and by a hash of the inputs), so a fresh clone copies it instead of rebuilding.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
mod=$here/training-operator
VERSION=$(awk '$1 == "require" && $2 == "github.com/kubeflow/training-operator" {print $3}' "$mod/go.mod")
inputs=$(cd "$mod" && cat go.mod go.sum tools.go | sha256sum | cut -c1-12)
KEY=$VERSION-$inputs
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/training-operator-$KEY
mkdir -p "$BIN" "$CACHE"

# The operator has no version flag; the build information Go records in the binary says
# which module version it was built from, as `go version -m` prints it.
# .training-operator-inputs beside the binary names its inputs.
version_of() {
  if [ -x "$1" ]; then
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" || $1 == "dep" {if ($2 == "github.com/kubeflow/training-operator") print $3}' || true
  fi
}
fresh() { [ "$(version_of "$1/training-operator")" = "$VERSION" ] && [ "$(cat "$1/.training-operator-inputs" 2>/dev/null)" = "$KEY" ]; }

fresh "$BIN" && exit 0
if fresh "$CACHE"; then
  cp "$CACHE/training-operator" "$BIN/training-operator"
  echo "$KEY" > "$BIN/.training-operator-inputs"
  exit 0
fi
echo "building the training operator $VERSION (the first build takes about 4 minutes on 2 cores)"
rm -f "$BIN/.training-operator-inputs"
# Static, as the release image's binary is.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
  -o "$BIN/training-operator" github.com/kubeflow/training-operator/cmd/training-operator.v1)
cp "$BIN/training-operator" "$CACHE/training-operator"
echo "$KEY" > "$CACHE/.training-operator-inputs"
echo "$KEY" > "$BIN/.training-operator-inputs"
