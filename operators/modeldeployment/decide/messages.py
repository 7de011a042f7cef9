"""Every text a ModelDeployment decision reports: condition messages and Event messages.

Each function takes the values it names and returns the sentence; none decides anything,
so the wording of the whole rollout can be read, and changed, here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maestro.operators.api.modeldeployment import CanaryAnalysis, MissedDeadline

# --- figures ---------------------------------------------------------------------------------


def percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def figures(error_rate: float | None, p95_ms: float | None, requests: float | None) -> str:
    errors = "no data" if error_rate is None else percent(error_rate)
    p95 = "no data" if p95_ms is None else f"{p95_ms:.0f} ms"
    served = "no data" if requests is None else f"{requests:.0f}"
    return f"error rate {errors}, p95 {p95}, requests {served}"


def problems(analysis: CanaryAnalysis, error_rate: float | None, p95_ms: float | None) -> str:
    """The gates the figures are over, joined; empty when none is (which `judge` reads as
    a pass)."""
    found = []
    # No 5xx series at all is an error rate of zero, not a missing figure.
    if error_rate is not None and error_rate > analysis.max_error_rate:
        found.append(f"error rate {percent(error_rate)} > {percent(analysis.max_error_rate)}")
    if p95_ms is not None and p95_ms > analysis.max_latency_p95_ms:
        found.append(f"p95 {p95_ms:.0f} ms > {analysis.max_latency_p95_ms} ms")
    return " and ".join(found)


def ready_text(ready: int, needed: int) -> str:
    return f"{ready} of {needed} replicas ready"


def revision_text(name: str, uri: str) -> str:
    return f"{name} ({uri})"


# --- the model -------------------------------------------------------------------------------


def model_unresolved(spec_uri: str, error: str, servable: str = "ModelNotFound") -> str:
    if servable not in ("ModelNotFound", "ModelNotServable"):
        # Approval and spec.secrets problems: the message says it all.
        return f"{error}."
    if servable == "ModelNotServable":
        return f"spec.model.uri {spec_uri} cannot be served: {error}."
    return (
        f"spec.model.uri {spec_uri} cannot be resolved:"
        f" {error or 'no such model version or alias in the registry'}."
    )


# --- spec.secrets -----------------------------------------------------------------------------

VAULT_NOT_CONFIGURED = (
    "spec.secrets needs Vault: the operator has no Vault address (set MAESTRO_VAULT_ADDR and"
    " MAESTRO_VAULT_AUTH_ROLE or MAESTRO_VAULT_TOKEN_FILE on the operator)"
)


def secret_paths_not_allowed(paths: list[str], namespace: str, prefixes: list[str]) -> str:
    allowed = ", ".join(p.replace("{namespace}", namespace) for p in prefixes)
    return (
        f"spec.secrets names {', '.join(paths)}: ModelDeployments in {namespace} may only read"
        f" paths under {allowed} (the operator's MAESTRO_VAULT_ALLOWED_PATH_PREFIXES)"
    )


def vault_failed(error: str) -> str:
    return f"cannot give the serving pods access to their secrets: {error}; retrying"


def secrets_missing(paths: list[str]) -> str:
    return (
        f"spec.secrets: no secret in Vault at {', '.join(paths)}; write it (vault kv put) or"
        " fix spec.secrets[].vaultPath"
    )


def approvals_not_configured(spec_uri: str) -> str:
    return (
        f"spec.model.requireApproval: cannot check approvals of {spec_uri}: the operator has"
        " no audit database (set MAESTRO_AUDIT_DATABASE_URL on the operator)"
    )


def awaiting_approval(model: str, alias: str, version: str, latest: Any) -> str:
    """`latest`: the newest approval of the alias (version, actor, at), or None."""
    last = (
        f"the last approved is v{latest.version}, by {latest.actor} at"
        f" {latest.at.isoformat(timespec='seconds')}"
        if latest is not None
        else "no version of it was ever approved"
    )
    return (
        f"{model}@{alias} was moved to v{version} without an approval in the audit log"
        f" ({last}; MLflow does not record who moves an alias). Approve it with: maestro"
        f" model promote {model} --alias {alias} --version {version} --reason ..."
    )


def model_missing_first(problem: str) -> str:
    return f"{problem} Register the model or fix spec.model.uri."


def model_missing_serving(problem: str, stable: str) -> str:
    return f"{problem} {stable} keeps serving."


# --- the stable revision ---------------------------------------------------------------------


def kept_for_rollback(previous: str | None, scale_down_at: datetime | None) -> str:
    if not previous or not scale_down_at:
        return ""
    return f" {previous} is kept until {scale_down_at.isoformat()} for rollback."


def available(what: str, ready: int, kept: str) -> str:
    return f"Serving {what} with {ready} ready replicas.{kept}"


def degraded(what: str, ready: int, needed: int) -> str:
    return f"{ready_text(ready, needed)} of {what}; see the serving pods' events and logs."


def first_missed_deadline(
    what: str, ready: int, needed: int, deadline: str, since: datetime
) -> str:
    return (
        f"{what} has {ready_text(ready, needed)} after progressDeadline {deadline} (waiting"
        f" since {since.isoformat()}). Its Deployment is kept: Available once they are ready."
        " See the serving pods' events and logs."
    )


def first_load_failed(what: str, message: str) -> str:
    return (
        f"{what} cannot be served: its pods cannot load the model: {message}. Its Deployment"
        " is kept and its pods retry with back-off: Available once they load. Fix the model"
        " or spec.model.uri."
    )


def first_starting(what: str, ready: int, needed: int) -> str:
    return f"Starting {what}: {ready_text(ready, needed)}."


# --- any candidate ---------------------------------------------------------------------------


def rollout_started(
    name: str, uri: str, stable: str | None, strategy: str, replacing: str | None
) -> str:
    instead = f", replacing {replacing}" if replacing else ""
    return f"Rolling out {name} ({uri}) beside {stable} with strategy {strategy}{instead}."


def rollout_aborted(candidate: str, why: str) -> str:
    return f"Removed {candidate}: {why}."


def points_at_stable(stable: str | None) -> str:
    return f"spec.model.uri points at the stable {stable} again"


def points_at_previous(previous: str) -> str:
    return f"spec.model.uri points at {previous} again"


MODEL_UNRESOLVABLE = "spec.model.uri cannot be resolved"


def promoted(name: str, uri: str) -> str:
    return f"{name} ({uri}) now serves all traffic."


def previous_expired(previous: str) -> str:
    return f"Removed {previous}: scaleDownDelay passed since the switch."


def previous_replaced(previous: str | None, kept: str | None) -> str:
    return f"Removed {previous}: {kept} is kept instead."


def rolled_back_at_deadline(missed: MissedDeadline, stable: str | None) -> str:
    return (
        f"Rolled back {missed.revision}: {missed.ready_replicas} of {missed.replicas} replicas"
        f" ready after progressDeadline {missed.deadline}. {stable} serves all traffic; the"
        " next model version is rolled out again."
    )


def rolled_back_load_failed(revision: str | None, message: str | None, stable: str | None) -> str:
    return (
        f"Rolled back {revision}: its pods cannot load the model: {message}. {stable} serves"
        " all traffic; the next model version is rolled out again."
    )


def rolled_back_after_analyses(
    rolled_back: str | None, max_failed: int, problems: str, figures: str, stable: str | None
) -> str:
    return (
        f"Rolled back {rolled_back} after {max_failed} failed analyses; last:"
        f" {problems or 'gates failed'}"
        f" ({figures}). {stable} serves all traffic; the next model version is rolled out"
        " again."
    )


# --- Rolling and BlueGreen -------------------------------------------------------------------


def rolling_starting(name: str, uri: str, ready: int, needed: int, stable: str) -> str:
    return (
        f"Starting {name} ({uri}): {ready_text(ready, needed)}; {stable} serves until all are"
        " ready."
    )


def preview_starting(name: str, uri: str, ready: int, needed: int, stable: str) -> str:
    return (
        f"Starting preview {name} ({uri}): {ready_text(ready, needed)}; {stable} serves all"
        " traffic."
    )


def awaiting_promotion(name: str, uri: str, stable: str, annotation: str) -> str:
    return (
        f"Preview {name} ({uri}) is ready; {stable} serves all traffic until the"
        f" ModelDeployment is annotated {annotation}={name}."
    )


# --- Shadow ----------------------------------------------------------------------------------


def shadow_starting(name: str, uri: str, ready: int, needed: int) -> str:
    return f"Starting shadow {name} ({uri}): {ready_text(ready, needed)}."


def shadow_mirrored(name: str, percent: int, stable: str) -> str:
    return f"{name} receives a {percent}% mirror of {stable}'s traffic."


def shadowing(
    stable: str,
    name: str,
    uri: str,
    mirrored: int,
    agreement_rate: float | None,
    latency_delta_ms: float | None,
) -> str:
    agreement = "no data" if agreement_rate is None else percent(agreement_rate)
    delta = "no data" if latency_delta_ms is None else f"{latency_delta_ms:+.0f} ms"
    return (
        f"{stable} serves all traffic; {name} ({uri}) gets {mirrored}% mirrored: agreement"
        f" {agreement}, p95 delta {delta}. Change spec.strategy.type to roll it out."
    )


# --- Canary ----------------------------------------------------------------------------------


def step_of(step: int, steps: int) -> str:
    """The 0-based `step` as people count it."""
    return f"step {step + 1} of {steps}"


def step_advanced(name: str, weight: int, where: str) -> str:
    return f"{name} receives {weight}% ({where})."


def canary_starting(name: str, uri: str, ready: int, needed: int, weight: int) -> str:
    return (
        f"Starting canary {name} ({uri}): {ready_text(ready, needed)}; it gets {weight}% of the"
        " traffic then."
    )


def check_failed(name: str, failed: int, max_failed: int, problems: str, figures: str) -> str:
    return f"{name} failed analysis {failed} of {max_failed}: {problems} ({figures})."


def canary_at(name: str, weight: int, where: str) -> str:
    return f"Canary {name} at {weight}% ({where})."


def canary_scaling_for_step(
    name: str, where: str, weight: int | None, replicas: int, nxt: int, ready: int
) -> str:
    return (
        f"Canary {name} passed {where} at {weight}%; scaling it to {replicas} replicas for"
        f" {nxt}% ({ready_text(ready, replicas)})."
    )


def canary_scaling_for_promotion(name: str, floor: int, ready: int) -> str:
    return (
        f"Canary {name} passed every step; scaling it to the stable's {floor} replicas before"
        f" promotion ({ready_text(ready, floor)})."
    )


NO_ANALYSIS_YET = "no analysis yet in this step"


def analysis_inconclusive(requests: int | None, min_requests: int) -> str:
    return f"last analysis inconclusive: {requests or 0} of {min_requests} requests needed"


def analysis_unavailable(error: str) -> str:
    return f"analysis unavailable, holding (nothing is rolled back for missing figures): {error}"


def analysis_judged(passed: bool, figures: str) -> str:
    return f"last analysis {'passed' if passed else 'failed'} ({figures})"


def canary_holding(
    name: str,
    weight: int | None,
    where: str,
    since: datetime,
    result: str,
    failed: int | None,
    max_failed: int,
) -> str:
    return (
        f"Canary {name} at {weight}% ({where}) since {since.isoformat()}; {result};"
        f" {failed or 0} of {max_failed} checks failed."
    )
