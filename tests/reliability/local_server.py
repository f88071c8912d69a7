"""The gateway over the real vLLM CPU engine in a process of its own, for load tests that
measure its RSS apart from the load generator.

    python -m tests.reliability.local_server CHECKPOINT PORT [--max-inflight N]
"""

from __future__ import annotations

import argparse
import asyncio


async def serve(checkpoint: str, port: int, max_inflight: int) -> None:
    import uvicorn

    from serving.core.pipeline import LocalPipeline
    from serving.core.stages import BuildStage, DecodeStage
    from serving.core.tasks import default_registry
    from serving.engine import EngineConfig, start_vllm_engine
    from serving.gateway.app import create_app
    from serving.ray_serve.config import GatewayConfig

    engine = await start_vllm_engine(EngineConfig(model=checkpoint))
    stages = LocalPipeline(
        BuildStage.from_model(checkpoint), engine, DecodeStage.from_model(checkpoint)
    )
    config = GatewayConfig(max_inflight_requests=max_inflight, drain_timeout_s=2)
    app = create_app(config, stages, default_registry())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    try:
        await server.serve()
    finally:
        engine.shutdown()


if __name__ == "__main__":  # vLLM spawns its engine processes: the guard is required
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("port", type=int)
    parser.add_argument("--max-inflight", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(serve(args.checkpoint, args.port, args.max_inflight))
