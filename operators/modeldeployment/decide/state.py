"""The rollout state `decide` owns: the ModelDeployment status fields besides phase,
conditions and url, as one frozen value. Every transition returns a new state."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from maestro.operators.api.modeldeployment import (
    AnalysisResult,
    LoadFailure,
    MissedDeadline,
    ModelDeploymentStatus,
    ShadowResult,
)

# Status fields `decide` writes (wire names): all but the kind-independent ones and url.
OWNED_STATUS = tuple(
    info.alias or name
    for name, info in ModelDeploymentStatus.model_fields.items()
    if name not in ("observed_generation", "conditions", "phase", "url")
)


@dataclass(frozen=True)
class RolloutState:
    """The status fields `decide` owns, as they will be written."""

    stable: str | None = None
    stable_uri: str | None = None
    canary: str | None = None  # the candidate, whatever the strategy
    canary_uri: str | None = None
    weight: int | None = None
    step: int | None = None
    step_started: datetime | None = None
    failed: int | None = None
    last_analysis: AnalysisResult | None = None
    shadow: ShadowResult | None = None
    previous: str | None = None
    previous_uri: str | None = None
    scale_down_at: datetime | None = None
    rolled_back: str | None = None
    progress_started: datetime | None = None
    missed: MissedDeadline | None = None
    load_failure: LoadFailure | None = None

    @classmethod
    def of(cls, status: ModelDeploymentStatus) -> RolloutState:
        return cls(
            stable=status.stable_revision,
            stable_uri=status.stable_model_uri,
            canary=status.canary_revision,
            canary_uri=status.canary_model_uri,
            weight=status.canary_weight,
            step=status.canary_step,
            step_started=status.step_started_at,
            failed=status.failed_checks,
            last_analysis=status.last_analysis,
            shadow=status.shadow,
            previous=status.previous_revision,
            previous_uri=status.previous_model_uri,
            scale_down_at=status.scale_down_at,
            rolled_back=status.rolled_back_revision,
            progress_started=status.progress_started_at,
            missed=status.missed_deadline,
            load_failure=status.load_failure,
        )

    def status(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus(
            stable_revision=self.stable,
            stable_model_uri=self.stable_uri,
            canary_revision=self.canary,
            canary_model_uri=self.canary_uri,
            canary_weight=self.weight,
            canary_step=self.step,
            step_started_at=self.step_started,
            failed_checks=self.failed,
            last_analysis=self.last_analysis,
            shadow=self.shadow,
            previous_revision=self.previous,
            previous_model_uri=self.previous_uri,
            scale_down_at=self.scale_down_at,
            rolled_back_revision=self.rolled_back,
            progress_started_at=self.progress_started,
            # It explains rolledBackRevision, and goes when that does.
            missed_deadline=(
                self.missed
                if self.missed is not None and self.missed.revision == self.rolled_back
                else None
            ),
            # It explains rolledBackRevision, or why the first revision is not serving.
            load_failure=(
                self.load_failure
                if self.load_failure is not None
                and self.load_failure.revision in (self.rolled_back, self.stable)
                else None
            ),
        )

    def wire(self, ready_replicas: int) -> dict[str, Any]:
        """The owned fields by wire name, JSON-ready; None for each one to remove."""
        status = self.status()
        status.ready_replicas = ready_replicas
        dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        return {key: dumped.get(key) for key in OWNED_STATUS}

    # --- transitions ---------------------------------------------------------------------

    def without_candidate(self) -> RolloutState:
        return replace(
            self,
            # The wait was the candidate's; without one it is the first revision's.
            progress_started=None if self.canary is not None else self.progress_started,
            canary=None,
            canary_uri=None,
            weight=None,
            step=None,
            failed=None,
            step_started=None,
            shadow=None,
        )

    def with_candidate(self, name: str, uri: str, now: datetime) -> RolloutState:
        """`name` is rolled out from `now`, in place of any other candidate."""
        return replace(
            self.without_candidate(),
            canary=name,
            canary_uri=uri,
            last_analysis=None,
            # progressDeadline counts from here, not from a stuck first revision's wait.
            progress_started=now,
        )

    def first_revision(self, name: str, uri: str, now: datetime) -> RolloutState:
        """`name` is deployed as the stable revision, with nothing to fall back to; its
        wait for replicas starts `now`."""
        return replace(
            self.without_candidate(),
            stable=name,
            stable_uri=uri,
            previous=None,
            previous_uri=None,
            rolled_back=None,
            scale_down_at=None,
            last_analysis=None,
            progress_started=now,
        )

    def promoted(self, name: str, uri: str) -> RolloutState:
        """`name` is the stable revision, serving all traffic; no candidate remains."""
        return replace(self.without_candidate(), stable=name, stable_uri=uri)

    def keeping_previous(self, name: str | None, uri: str | None, until: datetime) -> RolloutState:
        """`name` is kept beside the stable until `until` for a switch back."""
        return replace(self, previous=name, previous_uri=uri, scale_down_at=until)

    def without_rollback(self) -> RolloutState:
        """The model moved on from the rolled back revision (status.missedDeadline goes with
        it)."""
        return replace(self, rolled_back=None)

    def without_previous(self) -> RolloutState:
        return replace(self, previous=None, previous_uri=None, scale_down_at=None)

    def previewing(self) -> RolloutState:
        """The candidate comes up beside the stable with no traffic and no steps (Rolling,
        BlueGreen)."""
        return replace(self, weight=0, step=None, step_started=None, failed=None)

    def waiting_since(self, started: datetime) -> RolloutState:
        """A wait for replicas runs since `started` (status.progressStartedAt)."""
        return replace(self, progress_started=started)

    def replicas_ready(self, name: str) -> RolloutState:
        """Revision `name` has the replicas it waited for: if it is the candidate its wait
        is over, and a later one starts afresh."""
        return replace(self, progress_started=None) if name == self.canary else self

    def stable_ready(self) -> RolloutState:
        """The stable revision has its replicas: with no candidate, the running wait was
        the first revision's, and it is over; so is any load failure of its pods."""
        state = self
        if self.load_failure is not None and self.load_failure.revision == self.stable:
            state = replace(state, load_failure=None)
        return replace(state, progress_started=None) if self.canary is None else state

    def rolled_back_from(
        self, name: str, missed: MissedDeadline | None, load_failure: LoadFailure | None = None
    ) -> RolloutState:
        """The candidate `name` failed (`missed`: its progress deadline; `load_failure`: its
        pods cannot load the model; else analyses); it is not tried again until the model
        moves."""
        return replace(
            self.without_candidate(), rolled_back=name, missed=missed, load_failure=load_failure
        )

    def failing_to_load(self, failure: LoadFailure | None) -> RolloutState:
        """Why the first revision's pods do not come up, while they say so."""
        return replace(self, load_failure=failure)
