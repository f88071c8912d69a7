"""Typed configuration of the online stack: `GatewayConfig`, `ReplicaConfig`, `AppConfig`.

`AppConfig` is the one schema shared by ``c2s serve``, ``serve run`` config files and
KubeRay's ``serveConfigV2``: `serving.ray_serve.deployments.build_app` validates a plain dict into
it first. Unknown keys are errors everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, SecretStr, model_validator

from serving.engine.config import EngineConfig

#: the embedded demo checkpoint, used when no model is given
DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "c2s-demo-pythia"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(StrictModel):
    """The HTTP ingress: names, limits and access.

    Attributes
    ----------
    model_name
        Base model id listed by ``/v1/models``; task models are ``<model_name>/<task>``.
        In an `AppConfig` it defaults to the engine's `EngineConfig.public_name`.
    api_key
        When set, every route but ``/health`` requires ``Authorization: Bearer <key>``.
    max_body_bytes
        Larger bodies get 413 before they are parsed.
    max_inflight_requests
        Requests admitted at once; past it the gateway answers 429 with Retry-After
        instead of queueing without bound.
    retry_after_s
        The Retry-After hint sent with 429/503.
    batch_chunk_size
        Inputs per chunk when a batch is fanned out to builder and decoder replicas.
    inline_max_items
        Chunks of at most this many prompts (or answers) are built (or parsed) in the
        gateway's own process, with the plain classes the PromptBuilder and Decoder
        replicas run: for one small request a Ray hop costs more CPU than the work
        (``serving_overhead`` benchmark). ``0`` sends every chunk to the replicas.
    drain_timeout_s
        How long shutdown waits for in-flight requests.
    template_files
        Per-task template overrides, in C2S's JSON shape.
    health_timeout_s
        ``/health`` answers 503 when the engine does not answer its probe in this time
        (a restarting Ray Serve replica queues the probe instead of failing it).
    cors_allow_origins
        Browser origins allowed by CORS; empty (the default) sends no CORS headers.
    """

    model_name: str = DEMO_MODEL_DIR.name
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_inflight_requests: int = Field(default=256, ge=1)
    retry_after_s: int = Field(default=1, ge=1)
    batch_chunk_size: int = Field(default=64, ge=1)
    inline_max_items: int = Field(default=4, ge=0)
    drain_timeout_s: float = Field(default=30.0, ge=0)
    template_files: dict[str, str] = Field(default_factory=dict)
    health_timeout_s: float = Field(default=5.0, gt=0)
    cors_allow_origins: tuple[str, ...] = ()


class AutoscalingConfig(StrictModel):
    """Ray Serve autoscaling of one deployment."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=4, ge=1)
    target_ongoing_requests: float = Field(default=8, gt=0)


class ReplicaConfig(StrictModel):
    """Replicas of one deployment; ``autoscaling`` replaces ``num_replicas`` when set.

    ``resources`` are Ray custom resources each replica needs: only nodes that advertise
    them can host it, which is how a KubeRay cluster keeps Engine replicas on its engine
    worker group and the CPU stages on its CPU group (`k8s.serve_config`).
    """

    num_replicas: int = Field(default=1, ge=1)
    num_cpus: float = Field(default=0.5, ge=0)
    max_ongoing_requests: int = Field(default=64, ge=1)
    autoscaling: AutoscalingConfig | None = None
    resources: dict[str, PositiveFloat] = Field(default_factory=dict)


#: which deployment answers HTTP: its own ``Gateway`` deployment, or each ``Engine`` replica
Ingress = Literal["gateway", "engine"]


class AppConfig(StrictModel):
    """The whole online application.

    ``ingress`` picks the topology. ``"gateway"``: a ``Gateway`` deployment (sized by
    ``gateway_stage``) answers HTTP and calls the ``Engine`` replicas over Ray, so HTTP
    scales apart from the engines. ``"engine"``: each ``Engine`` replica answers HTTP itself
    over the engine in its process, as vLLM's own server does, which saves a Ray hop and a
    process per request (``serving_overhead`` benchmark); there is no ``Gateway``
    deployment. Either way batches fan out in chunks to the ``PromptBuilder`` and
    ``Decoder`` replicas, which scale apart from the engines.
    """

    engine: EngineConfig = Field(default_factory=lambda: EngineConfig(model=str(DEMO_MODEL_DIR)))
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    engine_stage: ReplicaConfig = Field(
        default_factory=lambda: ReplicaConfig(num_cpus=0, max_ongoing_requests=1024)
    )
    prompt_builder: ReplicaConfig = Field(default_factory=ReplicaConfig)
    decoder: ReplicaConfig = Field(default_factory=ReplicaConfig)
    gateway_stage: ReplicaConfig = Field(
        default_factory=lambda: ReplicaConfig(num_cpus=0, max_ongoing_requests=1024)
    )
    engine_num_gpus: float = Field(default=0, ge=0)
    ingress: Ingress = "gateway"
    #: the ``Embedder`` deployment behind ``/v1/embeddings``: a vLLM pooling engine on
    #: this checkpoint, beside the generating one; ``None`` (the default) runs none
    embedder: EngineConfig | None = None
    embedder_stage: ReplicaConfig = Field(
        default_factory=lambda: ReplicaConfig(num_cpus=0, max_ongoing_requests=1024)
    )

    @model_validator(mode="before")
    @classmethod
    def _name_models_after_the_checkpoint(cls, data: Any) -> Any:
        """The gateway's model name follows the engine's checkpoint unless it is set."""
        if not isinstance(data, dict):
            return data
        gateway = data.get("gateway") or {}
        if isinstance(gateway, GatewayConfig):
            gateway = gateway.model_dump(exclude_unset=True)
        if "model_name" in gateway:
            return data
        engine = data.get("engine") or {"model": str(DEMO_MODEL_DIR)}
        if not isinstance(engine, EngineConfig):
            engine = EngineConfig.model_validate(engine)
        return {**data, "gateway": {**gateway, "model_name": engine.public_name}}

    @model_validator(mode="after")
    def _size_only_deployments_that_run(self) -> AppConfig:
        if self.ingress == "engine" and "gateway_stage" in self.model_fields_set:
            raise ValueError(
                "gateway_stage sizes the Gateway deployment, which ingress 'engine' does not "
                "run (each Engine replica answers HTTP): size engine_stage instead."
            )
        return self
