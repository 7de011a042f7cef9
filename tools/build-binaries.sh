#!/usr/bin/env bash
# Builds the local control plane from the published Go modules into $BIN, only what
# is missing. Built binaries are also kept in a per-user cache keyed by version, so a
# fresh clone on the same machine copies them instead of relinking. actionlint and Vault,
# the other Go tools the project builds, have their own scripts (`make lint` needs
# actionlint, which this runs at the end; `make vault` builds Vault).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../.maestro/bin}
K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/k8s/go.mod")
KWOK_VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kwok" {print $3}' "$here/kwok/go.mod")
CACHE=${MAESTRO_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maestro-ml/bin}/k8s-$K8S_VERSION-kwok-$KWOK_VERSION
mkdir -p "$BIN" "$CACHE"

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

declare -A k8s_pkgs=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=./cmd/etcd
)
want=()
for name in "${!k8s_pkgs[@]}"; do
  [ -x "$BIN/$name" ] && continue
  if [ -x "$CACHE/$name" ]; then cp "$CACHE/$name" "$BIN/$name"; continue; fi
  want+=("${k8s_pkgs[$name]}")
done
if [ ${#want[@]} -gt 0 ]; then
  echo "building ${want[*]} ($K8S_VERSION; the first build takes about 6 minutes on 2 cores)"
  (cd "$here/k8s" && go build -trimpath -ldflags "$ldflags" -o "$BIN/" "${want[@]}")
fi
if [ ! -x "$BIN/kwok" ]; then
  if [ -x "$CACHE/kwok" ]; then cp "$CACHE/kwok" "$BIN/kwok"
  else
    echo "building kwok $KWOK_VERSION"
    (cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$BIN/" sigs.k8s.io/kwok/cmd/kwok)
  fi
fi
for name in "${!k8s_pkgs[@]}" kwok; do
  [ -x "$CACHE/$name" ] || cp "$BIN/$name" "$CACHE/$name"
done

BIN=$BIN "$here/build-actionlint.sh"
