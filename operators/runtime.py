"""Assemble and run the Kopf operator from explicit settings: the composition root, the
one module that knows every kind.

Handlers are registered into a registry built here (not Kopf's global default registry),
as closures over the settings, so two operators in one process or in tests never share
state through module globals.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Mapping
from typing import Any

import kopf
from prometheus_client import start_http_server

from maestro.monitoring.tracing import shutdown_tracing
from maestro.operators.abtest import handlers as abtest
from maestro.operators.api.common import GROUP
from maestro.operators.core.conditions import Clock, utc_now
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.core.tracing import log_trace_ids, operator_tracer_provider
from maestro.operators.driftcheck import handlers as driftcheck
from maestro.operators.modeldeployment import handlers as modeldeployment
from maestro.operators.trainingrun import handlers as trainingrun

KINDS = (trainingrun, modeldeployment, abtest, driftcheck)


def _api_client() -> Any:
    # Imported here: only the operator process needs the kubernetes client.
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    api_client = client.ApiClient(configuration)
    # The user agent names the field manager of the status fields these writes own.
    api_client.user_agent = "maestro-operator"
    return api_client


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Kopf settings in one place; called from the startup handler."""
    # Without a server-side timeout an idle watch can hang silently forever behind proxies.
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 10
    settings.watching.connect_timeout = config.connect_timeout
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout
    settings.execution.max_workers = config.handler_threads
    # Our own prefix for anything Kopf stores on objects, so it is clearly ours.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # One ClusterKopfPeering for every replica, also when replicas serve a namespace list.
    settings.peering.clusterwide = True
    # Events are emitted on condition transitions only; Kopf's per-handler INFO lines
    # ("Handler ... succeeded") would otherwise become an Event on every watch event.
    settings.posting.level = logging.WARNING


def build_registry(config: OperatorConfig, *, clock: Clock = utc_now) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    runtime = Runtime(
        clock=clock,
        request_timeout=config.request_timeout,
        config=config,
        tracer_provider=operator_tracer_provider(config.otlp_endpoint),
    )

    # A custom registry does not get Kopf's default login handlers; these are Kopf's own
    # (no extra client library): the pod's ServiceAccount, else KUBECONFIG / ~/.kube/config.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    # Registered before the kinds' own startup handlers, which may use the client.
    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, config)
        runtime.api_client = _api_client()

    if config.metrics_listen:
        host, _, port = config.metrics_listen.rpartition(":")

        @kopf.on.startup(registry=registry)
        def metrics_started(**_: Any) -> None:
            # A daemon thread of prometheus_client's own; it ends with the process.
            start_http_server(int(port), addr=host or "0.0.0.0", registry=runtime.metrics)

    @kopf.on.cleanup(registry=registry)
    def flush_spans(**_: Any) -> None:
        shutdown_tracing(runtime.tracer_provider)

    for kind in KINDS:
        kind.register(registry, runtime)
    return registry


def mlflow_client_env(request_timeout: float) -> Mapping[str, str]:
    """MLflow client settings for the operator's process. A failed reconcile is retried by
    the work queue with its own back-off; MLflow's client would otherwise retry an
    unreachable server 7 times over about 4 minutes inside one reconcile, holding a worker
    thread and the object's lock (found by the MLflow outage test)."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(request_timeout))),
    }


def run(config: OperatorConfig) -> None:
    """Block running the operator until SIGTERM/SIGINT."""
    for key, value in mlflow_client_env(config.request_timeout).items():
        os.environ.setdefault(key, value)  # what the user set wins
    kopf.configure(
        debug=config.verbose,
        verbose=config.verbose,
        log_format=kopf.LogFormat[config.log_format.upper()],
        # As Kopf's own CLI does: text lines start with [namespace/name] of their object.
        log_prefix=None,
    )
    log_trace_ids(logging.getLogger(), text=config.log_format != "json")
    registry = build_registry(config)
    kopf.run(
        registry=registry,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        standalone=config.standalone,
        peering_name=None if config.standalone else config.peering,
        priority=config.priority if config.priority is not None else random.randint(1, 2**31 - 1),
        liveness_endpoint=config.liveness or None,
    )
