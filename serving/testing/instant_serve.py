"""A Serve application with the bulk job's deployments over the instant engine.

The real ``PromptBuilder`` and ``Decoder`` deployments (`serving.ray_serve.deployments`) and an
``Engine`` deployment answering as `serving.testing.fake_engine.instant_engine` does:
what a distributed run's ``serve`` engine calls, with no model to load. For tests and
benchmarks of the layers above the engine.
"""

from __future__ import annotations

from pathlib import Path


class InstantEngineServer:
    """The ``Engine`` deployment's calls the bulk job makes, over the instant engine."""

    def __init__(self, tokenizer_dir: str) -> None:
        from serving.testing.fake_engine import instant_engine

        self.engine = instant_engine(Path(tokenizer_dir))

    async def complete(self, prompt_ids, params):
        return await self.engine.complete(prompt_ids, params)

    async def complete_many(self, requests):
        from serving.core.pipeline import complete_all

        return await complete_all(self.engine, requests)

    def limits(self):
        return self.engine.limits


class Holder:
    """The application's ingress: binds the three deployments into one application."""

    def __init__(self, *deployments) -> None:
        self.deployments = deployments


def instant_app(tokenizer_dir: Path):
    """The application; its deployments ask no CPUs, leaving them to the job's tasks."""
    from ray import serve

    from serving.ray_serve.deployments import DecoderServer, PromptBuilderServer

    def deployment(cls, name: str):
        return serve.deployment(cls, name=name, ray_actor_options={"num_cpus": 0})

    tokenizer = str(tokenizer_dir)
    return deployment(Holder, "Holder").bind(
        deployment(InstantEngineServer, "Engine").bind(tokenizer),
        deployment(PromptBuilderServer, "PromptBuilder").bind(tokenizer, None),
        deployment(DecoderServer, "Decoder").bind(tokenizer),
    )
