"""Where a replica sits in a Kubeflow job, from the variables the training operator injects
into every replica of a PyTorchJob or XGBoostJob (MASTER_ADDR, MASTER_PORT, WORLD_SIZE,
RANK; the Master is rank 0). Pydantic only: neither torch nor xgboost is needed to read it."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maestro.training.errors import TrainingError


class DistributedEnvironment(BaseModel):
    """Where this replica sits in the job: the variables Kubeflow's PyTorchJob injects."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    world_size: int = Field(default=1, ge=1, alias="WORLD_SIZE")
    rank: int = Field(default=0, ge=0, alias="RANK")
    master_addr: str | None = Field(default=None, min_length=1, alias="MASTER_ADDR")
    master_port: int | None = Field(default=None, ge=1, le=65535, alias="MASTER_PORT")

    @model_validator(mode="after")
    def _consistent(self) -> DistributedEnvironment:
        if self.rank >= self.world_size:
            raise ValueError(f"RANK {self.rank} must be below WORLD_SIZE {self.world_size}")
        if self.world_size > 1 and (self.master_addr is None or self.master_port is None):
            raise ValueError("WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DistributedEnvironment:
        names = ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")
        try:
            return cls.model_validate({n: env[n] for n in names if env.get(n)})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'environment'}: {e['msg']}" for e in err.errors()
            )
            raise TrainingError(f"bad distributed environment: {problems}") from err

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0
