# syntax=docker/dockerfile:1
#
# The one Maestro image, ghcr.io/maestro-ml/maestro:<version> (the version in
# pyproject.toml; manifests/ names ghcr.io/maestro-ml/maestro:0.1.0). It runs
# the operator (`maestro operator`) and the workloads the operator creates:
# trainers, tuning workers, model servers and drift jobs. One image for all of
# them means one build, one scan and one tag to pin, and the operator can hand
# its own image to the pods it renders; the price is size, since every extra
# (operator, serving, training, monitoring, security) is installed.
#
#   docker build -t ghcr.io/maestro-ml/maestro:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# uv from PyPI at the version that wrote uv.lock.
RUN pip install --no-cache-dir uv==0.13.9
# Compile bytecode now: the runtime root filesystem is read-only. Install into a
# fixed path that the runtime stage copies unchanged (scripts carry its path),
# with the base image's Python rather than a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/maestro
WORKDIR /src
# Dependencies first, in their own layer, so that a source change does not
# reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --all-extras --no-install-project
COPY README.md ./
COPY operators ./operators
COPY serving ./serving
COPY training ./training
COPY governance ./governance
COPY monitoring ./monitoring
COPY security ./security
COPY localplatform ./localplatform
COPY storage ./storage
# Non-editable: the runtime stage gets a wheel install and no source tree.
RUN uv sync --frozen --no-dev --all-extras --no-editable

FROM ${PYTHON_IMAGE}
# A fixed numeric UID, the one the manifests' securityContext names, so that
# runAsNonRoot can be verified without an /etc/passwd lookup.
RUN groupadd --system --gid 10001 maestro \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp maestro
COPY --from=build /opt/maestro /opt/maestro
ENV PATH=/opt/maestro/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
LABEL org.opencontainers.image.title="maestro" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["maestro"]
