"""The bulk job on the real vLLM CPU engine, in-process (the session's engine)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from serving.bulk import AnnotateConfig, AnnotationJob, ExecutionConfig, PipelineRunner
from serving.core.pipeline import LocalPipeline
from serving.core.stages import BuildStage, Decoder, DecodeStage
from serving.engine import EngineConfig
from tokenizer_ext import cell_sentences

pytestmark = pytest.mark.engine

N_CELLS = 40


@pytest.fixture(scope="module")
def subset_path(pbmc_adata, tmp_path_factory):
    path = tmp_path_factory.mktemp("subset") / "pbmc40.h5ad"
    pbmc_adata[:N_CELLS].copy().write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def real_runner(engine, tiny_checkpoint):
    stages = LocalPipeline(
        BuildStage.from_model(tiny_checkpoint), engine, DecodeStage.from_model(tiny_checkpoint)
    )
    return PipelineRunner(stages, request_cells=8)


def real_config(path, out, checkpoint, **settings) -> AnnotateConfig:
    execution = ExecutionConfig(mode="local", engine=EngineConfig(model=str(checkpoint)))
    return AnnotateConfig(input=path, out=out, use_raw=True, execution=execution, **settings)


async def test_every_cell_through_the_engine_once(
    subset_path, tmp_path, tiny_checkpoint, real_runner, pbmc_adata
):
    config = real_config(
        subset_path, tmp_path / "out", tiny_checkpoint, n_genes=100, label_key="bulk_labels"
    )
    result = await AnnotationJob(config, real_runner).run()
    rows = pq.read_table(result.files["predictions"]).to_pandas()
    assert rows["row"].tolist() == list(range(N_CELLS))
    assert set(rows["model"]) == {tiny_checkpoint.name}
    assert (rows["output_tokens"] > 0).all()
    # the rows' prompts are the ones the builder makes for each cell's sentence
    builder = real_runner.stages.builder.builder
    sentences = cell_sentences(pbmc_adata[:N_CELLS], use_raw=True, top_k=100)
    for row in (0, 17, N_CELLS - 1):
        payload = {"cell": sentences[row], "n_genes": 100, "organism": "Homo sapiens"}
        built = builder.build("cell_type_prediction", payload)
        assert rows["prompt_tokens"][row] == built.prompt_tokens
    # and each prediction is the decoder's reading of the generated text
    decoder = Decoder()
    for text, prediction in zip(rows["raw_text"], rows["prediction"], strict=True):
        assert decoder.decode("cell_type_prediction", text).label == (prediction or "")
    assert result.report["accuracy"]["n_labelled"] == N_CELLS


async def test_groups_through_the_engine(subset_path, tmp_path, tiny_checkpoint, real_runner):
    config = real_config(
        subset_path,
        tmp_path / "out",
        tiny_checkpoint,
        task="multi_cell_type_prediction",
        group_key="louvain",
    )
    result = await AnnotationJob(config, real_runner).run()
    rows = pq.read_table(result.files["predictions"]).to_pandas()
    assert rows["row"].tolist() == list(range(N_CELLS))
    assert rows["group_id"].notna().all() and rows["tissue_raw_text"].notna().all()
    assert rows["prompt_tokens"].max() <= result.report["groups"]["worst_prompt_tokens"]
