"""Ray Serve deployments and `build_app`: thin shells over the plain serving classes.

Four deployments make one application, five with embeddings:

- ``Engine``: the vLLM async engine inside the replica (one replica per GPU, or CPU threads);
- ``Embedder`` (when ``AppConfig.embedder`` is set): a vLLM pooling engine for
  ``/v1/embeddings``;
- ``PromptBuilder`` and ``Decoder``: CPU replicas with their own counts and autoscaling;
- ``Gateway``: the FastAPI ingress, which fans chunks of a batch out to the others.

With ``AppConfig.ingress = "engine"`` there is no ``Gateway``: each ``Engine`` replica
serves the FastAPI app itself (`EngineGatewayServer`).

The classes stay plain; `build_app` decorates them with the options of one validated
`AppConfig`, which ``c2s serve``, ``serve run`` and KubeRay's ``serveConfigV2`` share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.core.pipeline import EngineRequest, InProcessEngineCalls, complete_all
from serving.core.requests import DecodedResult, DecodeRequest, PreparedPrompt, PromptRequest
from serving.core.stages import BuildStage, DecodeStage
from serving.core.tasks import default_registry
from serving.engine import (
    Completion,
    Embedder,
    Embedding,
    Engine,
    EngineConfig,
    EngineLimits,
    GenerationParams,
    StepOutput,
    start_vllm_embedder,
    start_vllm_engine,
)
from serving.engine.checkpoint import local_model_dir
from serving.ray_serve.config import AppConfig, ReplicaConfig
from serving.ray_serve.ray_pipeline import RayPipeline
from serving.settings import C2SSettings


class EngineServer:
    """The ``Engine`` deployment: one started vLLM engine per replica."""

    async def __init__(self, config: EngineConfig) -> None:
        self.engine: Engine = await start_vllm_engine(config)

    async def complete(self, prompt_ids: Sequence[int], params: GenerationParams) -> Completion:
        return await self.engine.complete(prompt_ids, params)

    async def complete_many(self, requests: Sequence[EngineRequest]) -> list[Completion]:
        return await complete_all(self.engine, requests)

    async def generate(
        self, prompt_ids: Sequence[int], params: GenerationParams
    ) -> AsyncIterator[StepOutput]:
        async for step in self.engine.generate(prompt_ids, params):
            yield step

    async def health(self) -> None:
        await self.engine.health()

    def limits(self) -> EngineLimits:
        return self.engine.limits

    def num_unfinished_requests(self) -> int:
        return self.engine.num_unfinished_requests()

    async def check_health(self) -> None:
        # Ray Serve restarts a replica whose check fails, e.g. after the engine died.
        await self.engine.health()


class EmbedderServer:
    """The ``Embedder`` deployment: one vLLM pooling engine per replica."""

    async def __init__(self, config: EngineConfig) -> None:
        self.embedder: Embedder = await start_vllm_embedder(config)

    async def embed(self, prompts: Sequence[Sequence[int]]) -> list[Embedding]:
        return list(await asyncio.gather(*(self.embedder.embed(ids) for ids in prompts)))

    async def check_health(self) -> None:
        await self.embedder.health()


class PromptBuilderServer:
    """The ``PromptBuilder`` deployment: chunks of jobs to token ids."""

    def __init__(self, model_dir: str, max_model_len: int | None) -> None:
        self.stage = BuildStage.from_model(model_dir, max_model_len=max_model_len)

    def build(self, jobs: Sequence[PromptRequest], offset: int = 0) -> list[PreparedPrompt]:
        return self.stage.build(jobs, offset)

    def encode_texts(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        return self.stage.encode_texts(texts)


class DecoderServer:
    """The ``Decoder`` deployment: chunks of answers to typed results."""

    def __init__(self, model_dir: str) -> None:
        self.stage = DecodeStage.from_model(model_dir)

    def decode(self, jobs: Sequence[DecodeRequest]) -> list[DecodedResult]:
        return self.stage.decode(jobs)


class GatewayServer:
    """The ``Gateway`` ingress: the FastAPI app over `RayPipeline`."""

    def __init__(
        self,
        config: AppConfig,
        engine: DeploymentHandle | InProcessEngineCalls,
        builder: DeploymentHandle,
        decoder: DeploymentHandle,
        embedder: DeploymentHandle | None = None,
    ) -> None:
        self.config = config
        inline = None
        if config.gateway.inline_max_items:
            model_dir = local_model_dir(config.engine.tokenizer_path)
            max_len = config.engine.max_model_len
            inline = (
                BuildStage.from_model(model_dir, max_model_len=max_len),
                DecodeStage.from_model(model_dir),
            )
        self.stages = RayPipeline(
            engine,
            builder,
            decoder,
            embedder,
            inline=inline,
            inline_max_items=config.gateway.inline_max_items,
        )

    def __serve_build_asgi_app__(self):
        from serving.gateway.app import create_app

        registry = default_registry()
        if self.config.gateway.template_files:
            registry = registry.with_templates(self.config.gateway.template_files)
        return create_app(self.config.gateway, self.stages, registry)


class EngineGatewayServer(EngineServer, GatewayServer):
    """The ``Engine`` deployment as the HTTP ingress (``AppConfig.ingress = "engine"``):
    each replica serves the gateway over the engine in its own process, as vLLM's server
    does; batch chunks still go to the PromptBuilder and Decoder replicas. It keeps the
    ``Engine`` calls, so bulk jobs in ``ray`` mode use it as they use the plain one."""

    async def __init__(
        self,
        config: AppConfig,
        builder: DeploymentHandle,
        decoder: DeploymentHandle,
        embedder: DeploymentHandle | None = None,
    ) -> None:
        await EngineServer.__init__(self, config.engine)
        GatewayServer.__init__(
            self, config, InProcessEngineCalls(self.engine), builder, decoder, embedder
        )


#: Ray Serve's per-request access log line costs each replica CPU on every call (of the
#: Gateway, Engine, PromptBuilder and Decoder alike); the gateway's metrics count requests
SERVE_LOGGING = {"enable_access_log": False}


def deployment_options(stage: ReplicaConfig, name: str, **actor: Any) -> dict[str, Any]:
    """Ray Serve options of one deployment from its `ReplicaConfig`."""
    options: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": stage.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": stage.num_cpus, **actor},
        "logging_config": SERVE_LOGGING,
    }
    if stage.resources:
        options["ray_actor_options"]["resources"] = dict(stage.resources)
    if stage.autoscaling is not None:
        options["autoscaling_config"] = stage.autoscaling.model_dump()
    else:
        options["num_replicas"] = stage.num_replicas
    return options


def with_settings_api_key(config: AppConfig) -> AppConfig:
    """``config`` with the key from ``C2S_API_KEY`` when it names none.

    Serve config files and KubeRay's ``serveConfigV2`` are plain text and carry no key: on
    Kubernetes a Secret sets ``C2S_API_KEY`` on the Ray pods, and the app reads it where
    it is built, as ``c2s serve`` does.
    """
    if config.gateway.api_key is not None:
        return config
    key = C2SSettings().api_key
    if key is None:
        return config
    gateway = config.gateway.model_copy(update={"api_key": key})
    return config.model_copy(update={"gateway": gateway})


def build_app(args: dict[str, Any] | AppConfig) -> serve.Application:
    """The Ray Serve application for ``args``, validated as an `AppConfig` first.

    This is the import path of ``serve run`` config files and KubeRay's
    ``serveConfigV2`` (``serving.ray_serve.deployments:build_app``).
    """
    config = args if isinstance(args, AppConfig) else AppConfig.model_validate(args)
    config = with_settings_api_key(config)
    model_dir = local_model_dir(config.engine.tokenizer_path)
    engine_actor = {"num_gpus": config.engine_num_gpus} if config.engine_num_gpus else {}
    builder = serve.deployment(
        PromptBuilderServer, **deployment_options(config.prompt_builder, "PromptBuilder")
    ).bind(model_dir, config.engine.max_model_len)
    decoder = serve.deployment(DecoderServer, **deployment_options(config.decoder, "Decoder")).bind(
        model_dir
    )
    embedder = None
    if config.embedder is not None:
        embedder = serve.deployment(
            EmbedderServer, **deployment_options(config.embedder_stage, "Embedder", **engine_actor)
        ).bind(config.embedder)
    drain = {"graceful_shutdown_timeout_s": config.gateway.drain_timeout_s}
    engine_options = deployment_options(config.engine_stage, "Engine", **engine_actor)
    if config.ingress == "engine":
        ingress = serve.ingress()(EngineGatewayServer)
        return serve.deployment(ingress, **drain, **engine_options).bind(
            config, builder, decoder, embedder
        )
    engine = serve.deployment(EngineServer, **drain, **engine_options).bind(config.engine)
    gateway = serve.deployment(
        serve.ingress()(GatewayServer),
        **drain,
        **deployment_options(config.gateway_stage, "Gateway"),
    )
    return gateway.bind(config, engine, builder, decoder, embedder)
