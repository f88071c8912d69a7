"""The batch endpoint on the demo checkpoint gives the labels of direct engine calls.

500 prompts from the 140 held-out pbmc68k cells (each at 50, 100, 150 and 200 genes) go
through ``POST /v1/tasks/cell_type_prediction`` on uvicorn (chunked fan-out over the real
stages and the real vLLM engine), and one by one straight into the engine.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from serving.ray_serve.config import DEMO_MODEL_DIR, GatewayConfig
from tests.integration.conftest import serve_on_loopback

pytestmark = [pytest.mark.engine, pytest.mark.slow]

GENE_COUNTS = (50, 100, 150, 200)
N_PROMPTS = 500


@pytest.fixture(scope="module")
async def demo_engine():
    if not (DEMO_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("the demo checkpoint is not in models/")
    from serving.engine import EngineConfig, start_vllm_engine

    engine = await start_vllm_engine(EngineConfig(model=str(DEMO_MODEL_DIR)))
    yield engine
    engine.shutdown()


async def test_500_held_out_prompts_match_direct_engine_calls(demo_engine):
    from models.training.dataset import load_demo_data
    from serving.core.pipeline import LocalPipeline
    from serving.core.prompt_builder import PromptBuilder
    from serving.core.stages import BuildStage, DecodeStage
    from serving.core.tasks import default_registry
    from serving.engine import GenerationParams
    from serving.gateway.app import create_app

    data = load_demo_data()
    inputs = [
        {"cell": data.sentences[cell], "n_genes": n} for n in GENE_COUNTS for cell in data.held_out
    ][:N_PROMPTS]
    builder = PromptBuilder.from_model(DEMO_MODEL_DIR)
    decoder = DecodeStage.from_model(DEMO_MODEL_DIR)
    stages = LocalPipeline(BuildStage(builder), demo_engine, decoder)
    app = create_app(GatewayConfig(batch_chunk_size=64), stages, default_registry())
    async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url, timeout=600) as http:
        response = await http.post("/v1/tasks/cell_type_prediction", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    batch = response.json()["data"]
    assert [item["index"] for item in batch] == list(range(N_PROMPTS))

    async def direct(payload):
        built = builder.build("cell_type_prediction", payload)
        done = await demo_engine.complete(
            built.token_ids, GenerationParams.greedy(built.max_tokens)
        )
        return built, decoder.decoder.decode("cell_type_prediction", done.text).label

    answers = await asyncio.gather(*(direct(p) for p in inputs))
    batch_labels = [item["result"]["label"] for item in batch]
    direct_labels = [label for _, label in answers]
    assert batch_labels == direct_labels
    assert [item["prompt_tokens"] for item in batch] == [b.prompt_tokens for b, _ in answers]
    known = set(data.labels)
    assert sum(label in known for label in batch_labels) >= 0.95 * N_PROMPTS
