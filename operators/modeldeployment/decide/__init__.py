"""ModelDeployment rollouts as pure decisions: no kopf, no kubernetes, no I/O.

The handler gathers one `Inputs` (the parsed spec and status, spec.model.uri with any alias
resolved to a concrete version, what each revision's Deployment reports, the canary or shadow
figures Prometheus gave, an approval, the time), calls `decide`, renders `Decision.plan`
(maestro.operators.modeldeployment.render), applies it, prunes revisions the plan no longer
names, writes `Decision.status` through `reconcile.plan_status(extra=...)` with
`Decision.verdict`, emits `Decision.events`, and comes back after `Decision.requeue_after`
seconds. `canary_query` / `shadow_query` say which revision to ask Prometheus about, and over
which window, before calling `decide`.

The first revision is deployed directly, whatever the strategy. A revision is one model URI
served by its own Deployment; it is named `v<version>` for
registry versions, else by the first 8 hex digits of the URI's sha256. The stable revision
serves; a candidate (status.canaryRevision) is rolled out beside it by the strategy, each a
pure function of the rollout state and the inputs in its own module, which describes it:
Rolling (`rolling`), BlueGreen (`bluegreen`), Canary (`canary`) and Shadow (`shadow`).

Rollouts respect autoscaling (`revisions`): while a candidate is rolled out the stable
revision is never scaled down, so it can take all traffic back at once. A revision waiting
for replicas gets spec.progressDeadline (`waits`); a candidate that misses it is rolled back,
a first revision that misses it is Failed.

This package's entry is `decide`: it picks what happens to the revision spec.model.uri names
and hands it to the shared pieces (`rollout`) or to the strategy. It re-exports the names the
handler, the renderer and the tests use, from the modules that hold them:

- `names`: revision names, registry URIs (maestro.serving.uris), durations, replica shares;
- `inputs`: what the handler gathers, and the Prometheus queries it makes first;
- `plan`: what a decision produces (`RevisionPlan`, `Event`, `Decision`);
- `state`: the status fields a decision owns, as a frozen `RolloutState`;
- `outcome`: the values rollout functions return and combine (`Outcome`, `Effects`);
- `messages`: every condition and Event message.
"""

from __future__ import annotations

from collections.abc import Callable

from maestro.operators.api.modeldeployment import StrategyType
from maestro.operators.modeldeployment.decide import (
    bluegreen,
    canary,
    messages,
    rolling,
    shadow,
)
from maestro.operators.modeldeployment.decide.bluegreen import ready_previous, switch_back
from maestro.operators.modeldeployment.decide.canary import judge
from maestro.operators.modeldeployment.decide.inputs import (
    PROMOTE_ANNOTATION,
    SHADOW_WINDOW,
    CanaryFigures,
    Inputs,
    MetricsQuery,
    RevisionFacts,
    ShadowFigures,
    canary_query,
    load_failure,
    revision_facts,
    shadow_query,
)
from maestro.operators.modeldeployment.decide.names import (
    concrete_uri,
    needs_resolution,
    parse_duration,
    registry_model,
    registry_version,
    revision_name,
    share,
)
from maestro.operators.modeldeployment.decide.outcome import (
    NOTHING,
    POLL,
    READINESS_POLL_SECONDS,
    Outcome,
    decision,
    not_configured,
)
from maestro.operators.modeldeployment.decide.plan import (
    NORMAL,
    WARNING,
    Decision,
    Event,
    Mirror,
    Revision,
    RevisionPlan,
    Role,
)
from maestro.operators.modeldeployment.decide.rollout import (
    abort_candidate,
    expire_previous,
    first_revision,
    load_failed,
    model_missing,
    rolled_back,
    start,
    steady,
)
from maestro.operators.modeldeployment.decide.state import RolloutState

__all__ = [
    "NORMAL",
    "PROMOTE_ANNOTATION",
    "READINESS_POLL_SECONDS",
    "SHADOW_WINDOW",
    "WARNING",
    "CanaryFigures",
    "Decision",
    "Event",
    "Inputs",
    "MetricsQuery",
    "Mirror",
    "Revision",
    "RevisionFacts",
    "RevisionPlan",
    "Role",
    "ShadowFigures",
    "canary_query",
    "concrete_uri",
    "decide",
    "judge",
    "load_failure",
    "needs_resolution",
    "not_configured",
    "parse_duration",
    "registry_model",
    "registry_version",
    "revision_facts",
    "revision_name",
    "shadow_query",
    "share",
]

Strategy = Callable[[RolloutState, Inputs, str, str], Outcome]

STRATEGIES: dict[StrategyType, Strategy] = {
    StrategyType.ROLLING: rolling.rolling,
    StrategyType.BLUE_GREEN: bluegreen.blue_green,
    StrategyType.CANARY: canary.canary,
    StrategyType.SHADOW: shadow.shadow,
}


def decide(inputs: Inputs) -> Decision:
    """The revisions to run, the status to write and the Events to emit. Pure."""
    state = RolloutState.of(inputs.status)
    if inputs.model_uri is None:
        return decision(model_missing(state, inputs), inputs)
    state, expired = expire_previous(state, inputs)
    return decision(_roll_out(state, inputs, inputs.model_uri).after(expired), inputs)


def _target(state: RolloutState, uri: str) -> str:
    """The revision that serves `uri`: one that exists already, else a new name."""
    taken = {
        name: served
        for name, served in (
            (state.stable, state.stable_uri),
            (state.previous, state.previous_uri),
            (state.canary, state.canary_uri),
        )
        if name is not None and served is not None
    }
    found = next((name for name, served in taken.items() if served == uri), None)
    return found or revision_name(uri, taken)


def _roll_out(state: RolloutState, inputs: Inputs, uri: str) -> Outcome:
    """What happens now that spec.model.uri resolves to `uri`."""
    if state.stable is None or state.stable_uri is None:
        return first_revision(state, inputs, revision_name(uri), uri)
    target = _target(state, uri)
    if target == state.stable:
        state, aborted = abort_candidate(state, messages.points_at_stable(state.stable))
        return steady(state.without_rollback(), inputs).after(aborted)
    effects = NOTHING
    if target == state.previous:
        previous = ready_previous(state, inputs)
        if previous is not None:
            return switch_back(state, inputs, previous)
        # Not able to take the traffic: roll it out again like any other revision.
        state, effects = state.without_previous(), POLL
    if target == state.rolled_back:
        return rolled_back(state, inputs).after(effects)
    state, started = start(state.without_rollback(), inputs, target, uri)
    failure = inputs.load_failures.get(target)
    if failure:
        return load_failed(state, inputs, target, failure).after(effects + started)
    strategy = STRATEGIES[inputs.spec.strategy.type]
    return strategy(state, inputs, target, uri).after(effects + started)
