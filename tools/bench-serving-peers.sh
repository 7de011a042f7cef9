#!/usr/bin/env bash
# Installs what `make bench-serving` measures Maestro against, when absent:
# - wrk, the load generator, from Debian's packages;
# - MLServer with its MLflow runtime, in a virtualenv of its own (MLSERVER_VENV,
#   default .maestro/bench/mlserver-venv): MLServer's pins cannot share an environment
#   with Feast, so it stays out of the project's .venv. mlflow and scikit-learn get the
#   versions installed in the project's .venv (from uv.lock): the model is saved by the
#   project's mlflow and must load with the same scikit-learn in every server.
# Idempotent: a venv whose pins match is left alone.
set -euo pipefail
UV=${UV:-.maestro/uv/venv/bin/uv}
PYTHON=${PYTHON:-python3.11}
PROJECT_PY=${PROJECT_PY:-.venv/bin/python}
MLSERVER_VENV=${MLSERVER_VENV:-.maestro/bench/mlserver-venv}
MLSERVER_VERSION=1.7.1 # the newest MLServer on PyPI when this was written

[ -x "$PROJECT_PY" ] || { echo "error: $PROJECT_PY missing; run make install first" >&2; exit 1; }
read -r mlflow_version sklearn_version < <("$PROJECT_PY" -c \
  'import mlflow, sklearn; print(mlflow.__version__, sklearn.__version__)')
PINS=(mlserver==$MLSERVER_VERSION mlserver-mlflow==$MLSERVER_VERSION
      mlflow==$mlflow_version scikit-learn==$sklearn_version)

# wrk drives the HTTP rows, h2load (nghttp2-client) the gRPC ones: both from Debian.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: ${missing[*]} missing; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x "$UV" ] || { echo "error: $UV missing; run make install first" >&2; exit 1; }
stamp="$MLSERVER_VENV/.maestro-pins"
if [ "$(cat "$stamp" 2>/dev/null)" != "${PINS[*]}" ]; then
  echo "creating $MLSERVER_VENV with ${PINS[*]}"
  rm -rf "$MLSERVER_VENV"
  "$UV" venv -q --python "$PYTHON" "$MLSERVER_VENV"
  VIRTUAL_ENV="$MLSERVER_VENV" "$UV" pip install -q "${PINS[@]}"
  echo "${PINS[*]}" >"$stamp"
fi
echo "peers: $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}'); $("$MLSERVER_VENV/bin/mlserver" --version 2>&1 | tail -n1)"
