"""Settings of `maestro serve` and `maestro predict-batch`: one typed class, read from the
environment (MAESTRO_SERVE_* for server knobs, plus the names the ModelDeployment operator
sets) and overridden by command-line flags."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from maestro.serving import contract
from maestro.serving.secret_files import check_spec, parse_specs

ENV_PREFIX = contract.SERVE_PREFIX


class ServeSettings(BaseSettings):
    """Everything the model server is told; nothing is read at import time."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        protected_namespaces=(),
    )

    # --- what to serve ------------------------------------------------------------------
    model_uri: str = Field(
        "",
        description="MLflow model URI: models:/name/version, models:/name@alias, runs:/id/path,"
        " s3://..., file://... (the main model)",
    )
    model_name: str = Field(
        "",
        description="name the main model is served under (default: the registered model's name,"
        " else 'model')",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="further models to serve, name -> URI (MAESTRO_SERVE_MODELS as JSON)",
    )
    ensemble: Literal["mean", "vote"] | None = Field(
        None, description="serve all models (main and further) as one: mean of outputs or vote"
    )
    ensemble_name: str = Field("ensemble", description="name the ensemble is served under")
    shadow_model_uri: str = Field(
        "",
        description="a model that gets a copy of each request of the default model after the"
        " answer; its agreement is counted, its answer never returned",
    )

    # --- where ----------------------------------------------------------------------------
    host: str = Field("", description="address to bind (default: MAESTRO_BIND_HOST or 0.0.0.0)")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    grpc_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="port of the Open Inference Protocol's gRPC service (GRPCInferenceService),"
        " served by the same process and batcher as HTTP; 0 turns gRPC off",
    )

    # --- batching and limits --------------------------------------------------------------
    max_batch_size: int = Field(64, ge=1, description="most requests merged into one predict")
    max_batch_wait_ms: float = Field(
        1.0,
        ge=0,
        description="longest a batch waits for more requests, only once requests arrive"
        " concurrently (a lone request never waits)",
    )
    max_queue: int = Field(
        1024, ge=1, description="requests waiting per model before answering 503 + Retry-After"
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="largest request body accepted; larger gets 413"
    )
    drain_seconds: float = Field(
        30.0, gt=0, description="on SIGTERM, how long in-flight requests may take to finish"
    )

    # --- prediction log -------------------------------------------------------------------
    prediction_log: Path | None = Field(
        None, description="JSON-lines file of sampled predictions and all feedback"
    )
    prediction_log_sample: float = Field(
        1.0, ge=0.0, le=1.0, description="fraction of requests written to the prediction log"
    )
    prediction_log_uri: str | None = Field(
        None,
        pattern=r"^s3://[^/]+(/.*)?$",
        description="s3:// prefix the prediction log is shipped to as Parquet (the object"
        " store's address and keys come from the standard AWS_* environment)",
    )
    pod_name: str = Field(
        default_factory=socket.gethostname,
        validation_alias=AliasChoices("MAESTRO_SERVE_POD_NAME", "POD_NAME"),
        description="this pod's name (downward API); names its shipped log files",
    )
    prediction_log_flush_seconds: float = Field(
        30.0, gt=0, description="longest a logged prediction waits before it is shipped"
    )

    # --- who may call (no mesh in front): a bearer token, or a JWT checked by a JWKS -------
    auth_token_file: Path | None = Field(
        None,
        description="file holding the shared bearer token callers must send (e.g. delivered"
        " by Vault); re-read when it changes, so a rotated token takes over",
    )
    auth_jwks_url: str | None = Field(
        None, description="JWKS URL: callers may send a JWT signed by one of its keys"
    )
    auth_jwt_audience: str | None = Field(None, description="the JWT's required aud claim")
    auth_jwt_issuer: str | None = Field(None, description="the JWT's required iss claim")

    # --- secrets delivered as files (the Vault Agent's /vault/secrets/<ENV>) ---------------
    secret_files: dict[str, Path] = Field(
        default_factory=dict,
        # MAESTRO_SECRET_FILES is read too, when MAESTRO_SERVE_SECRET_FILES is not set.
        validation_alias=AliasChoices(
            "secret_files", contract.SECRET_FILES, "MAESTRO_SECRET_FILES"
        ),
        description="environment variable -> absolute path of the file holding its value"
        " (MAESTRO_SERVE_SECRET_FILES as JSON, or --secret-file ENV=PATH); read before the"
        " models load, a missing or empty one stops the server",
    )
    secret_refresh_seconds: float = Field(
        2.0,
        gt=0,
        description="how often the secret files are re-read; a changed value replaces the"
        " variable's value in the running process",
    )

    # --- an ABTest on the deployment (set by the operator; serving.abtest_router) ----------
    abtest: str | None = Field(None, description="name of the ABTest this pod takes part in")
    abtest_key: str | None = Field(
        None, description="the test's key: signs its request ids, keys the Sticky hash"
    )
    abtest_variant: Literal["champion", "challenger"] | None = Field(
        None, description="the variant this pod serves"
    )
    abtest_challenger_percent: float = Field(
        0.0, ge=0, le=100, description="percent of requests the champion's pods send on"
    )
    abtest_split_header: str | None = Field(
        None, description="Sticky split: the request header whose value assigns a user"
    )
    abtest_peer_url: str | None = Field(
        None, description="champion's pods: the challenger's Service URL"
    )

    # --- identity, set by the ModelDeployment operator (no MAESTRO_SERVE_ prefix) ---------
    tracking_uri: str = Field(
        "", validation_alias=AliasChoices("tracking_uri", contract.TRACKING_URI)
    )
    deployment: str = Field("", validation_alias=AliasChoices("deployment", contract.DEPLOYMENT))
    revision: str = Field("", validation_alias=AliasChoices("revision", contract.REVISION))
    model_version: str = Field(
        "", validation_alias=AliasChoices("model_version", contract.MODEL_VERSION)
    )
    bind_host: str = Field("", validation_alias=AliasChoices("bind_host", contract.BIND_HOST))
    traceparent: str = Field(
        "",
        validation_alias=AliasChoices("traceparent", contract.TRACEPARENT),
        description="W3C trace context the start-up span (model loading) continues",
    )
    termination_message_path: Path = Field(
        Path(contract.DEFAULT_TERMINATION_MESSAGE_PATH),
        validation_alias=AliasChoices(
            "termination_message_path", contract.TERMINATION_MESSAGE_PATH
        ),
        description="file the reason of a fatal error is written to (the pod's status shows it)",
    )

    @field_validator("secret_files", mode="before")
    @classmethod
    def _secret_specs(cls, value: object) -> object:
        if isinstance(value, list | tuple):  # the flags, or a JSON list of "ENV=PATH"
            return parse_specs(str(v) for v in value)
        if isinstance(value, dict):
            return dict(check_spec(str(env), str(path)) for env, path in value.items())
        return value

    @field_validator("models")
    @classmethod
    def _names_are_simple(cls, models: dict[str, str]) -> dict[str, str]:
        for name, uri in models.items():
            if not name or "/" in name or not uri:
                raise ValueError(f"models: {name!r}={uri!r} needs a name without '/' and a URI")
        return models

    @model_validator(mode="after")
    def _something_to_serve(self) -> ServeSettings:
        if not self.model_uri and not self.models:
            raise ValueError(
                "model_uri: no model to serve; give --model-uri (MAESTRO_SERVE_MODEL_URI)"
                " or --model NAME=URI"
            )
        named = self.named_uris()
        if self.ensemble and len(named) < 2:
            raise ValueError("ensemble: needs at least two models (--model-uri and --model)")
        return self

    @model_validator(mode="after")
    def _ports_differ(self) -> ServeSettings:
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError(f"grpc_port: {self.grpc_port} is the HTTP port too")
        return self

    @model_validator(mode="after")
    def _jwt_claims_need_a_jwks(self) -> ServeSettings:
        if (self.auth_jwt_audience or self.auth_jwt_issuer) and not self.auth_jwks_url:
            raise ValueError("auth_jwks_url: the JWT audience/issuer need a JWKS URL to check")
        return self

    @property
    def listen_host(self) -> str:
        return self.host or self.bind_host or "0.0.0.0"

    def main_model_name(self) -> str:
        """The main model's name: given, else the registered model's, else 'model'."""
        if self.model_name:
            return self.model_name
        from maestro.serving.uris import registered_name

        return registered_name(self.model_uri) or "model"

    def named_uris(self) -> dict[str, str]:
        """Every model to load by name, the main model first."""
        named = {self.main_model_name(): self.model_uri} if self.model_uri else {}
        for name, uri in self.models.items():
            if name in named:
                raise ValueError(f"models: the name {name!r} is used twice")
            named[name] = uri
        return named
