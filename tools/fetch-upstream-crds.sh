#!/usr/bin/env bash
# Copies the upstream projects' own CRD files, at pinned versions, out of their
# published Go modules (`go mod download`), into $OUT. Nothing here is retyped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/../.maestro/crds}
KUBEFLOW=github.com/kubeflow/training-operator@v1.8.1
ISTIO=istio.io/api@v1.27.3
PROMOP=github.com/prometheus-operator/prometheus-operator@v0.85.0

moddir() { GOFLAGS=-mod=mod go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
mkdir -p "$OUT"
kf=$(moddir $KUBEFLOW)
for kind in pytorchjobs tfjobs xgboostjobs; do
  cp "$kf/manifests/base/crds/kubeflow.org_$kind.yaml" "$OUT/"
done
cp "$(moddir $ISTIO)/kubernetes/customresourcedefinitions.gen.yaml" "$OUT/istio.io_crds.yaml"
po=$(moddir $PROMOP)
for kind in prometheusrules servicemonitors podmonitors; do
  cp "$po/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$OUT/"
done
chmod u+w "$OUT"/*.yaml
echo "upstream CRDs in $OUT: $(ls "$OUT" | tr '\n' ' ')"
