"""`AnnotateConfig`: the one typed configuration of a bulk annotation run.

Built once at the edge (``c2s annotate``, ``c2s demo``, a test) and passed down unchanged.
Unknown options are errors. `ReadingConfig`, how an ``.h5ad``'s cells become cell
sentences, is shared with ``c2s embed`` (`serving.bulk.embed.EmbedConfig`), so both read
the same cells the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from serving.core.label_sets import LabelMode, LabelSet
from serving.core.tasks.inputs import DEFAULT_GENES_MULTI, DEFAULT_GENES_SINGLE, MAX_GENES, Organism
from serving.engine.config import EngineConfig
from serving.ray_serve.config import StrictModel

#: the tasks a bulk run answers: one label per cell, alone or within groups of cells
BulkTask = Literal["cell_type_prediction", "multi_cell_type_prediction"]
ExecutionMode = Literal["local", "ray", "endpoint"]
TieBreak = Literal["c2s", "stable"]


class ExecutionConfig(StrictModel):
    """Where prompts are built, generated and decoded, and how much is kept in flight.

    Attributes
    ----------
    mode
        ``local``: the stages and a vLLM engine in this process; ``ray``: the deployments
        of a running Ray Serve application; ``endpoint``: a remote gateway's
        ``POST /v1/tasks/{task}``.
    engine
        The engine to start in ``local`` mode.
    model_dir
        A local checkpoint or tokenizer directory: the stages' files in ``local`` mode,
        and, in every mode, the tokenizer that sizes multi-cell groups to the context
        (without one, a conservative tokens-per-gene bound is used).
    endpoint
        Base URL of a gateway (``http://host:8000``), in ``endpoint`` mode.
    api_key
        The gateway's bearer key (from ``C2S_API_KEY`` at the edge).
    ray_address
        Address of the Ray cluster (``auto`` finds a local one), in ``ray`` mode.
    ray_app
        Name of the Serve application whose deployments to call.
    max_inflight_cells
        Cells submitted and not yet answered: enough to keep the engine's batches full.
    request_cells
        Cells per build/decode call (and per HTTP request): replicas work on chunks in
        parallel while the engine batches continuously.
    request_timeout_s
        Time allowed for one HTTP batch, in ``endpoint`` mode.
    """

    mode: ExecutionMode = "local"
    engine: EngineConfig | None = None
    model_dir: Path | None = None
    endpoint: str | None = None
    api_key: SecretStr | None = None
    ray_address: str | None = None
    ray_app: str = "c2s"
    max_inflight_cells: int = Field(default=512, ge=1)
    request_cells: int = Field(default=32, ge=1)
    request_timeout_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> ExecutionConfig:
        if self.mode == "local" and self.engine is None:
            raise ValueError("local execution needs an engine config (the model to serve)")
        if self.mode == "endpoint" and not self.endpoint:
            raise ValueError("endpoint execution needs the gateway's URL (--endpoint)")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, got {self.endpoint!r}")
        return self

    @property
    def tokenizer_dir(self) -> Path | None:
        """A local directory holding the model's ``tokenizer.json``, if one is known."""
        if self.model_dir is not None:
            return self.model_dir
        if self.engine is not None and Path(self.engine.tokenizer_path).is_dir():
            return Path(self.engine.tokenizer_path)
        return None

    @property
    def target(self) -> str:
        """What answers the prompts: the local model, the Ray app or the endpoint."""
        if self.mode == "local" and self.engine is not None:
            return self.engine.model
        if self.mode == "ray":
            return f"ray://{self.ray_address or 'auto'}/{self.ray_app}"
        return self.endpoint or ""


class ReadingConfig(StrictModel):
    """How the cells of an ``.h5ad`` are read and ranked into cell sentences.

    Attributes
    ----------
    input
        The ``.h5ad`` file; it is read in backed mode, in row chunks.
    n_genes
        Genes per cell in the prompt (C2S's 200 when unset).
    use_raw, layer
        Read ``.raw.X`` or a layer instead of ``X``.
    gene_symbols_column
        A ``var`` column holding gene symbols, when ``var_names`` are Ensembl ids.
    organism
        Guessed from the symbols' case when unset.
    skip_empty_cells
        Give cells without any expressed gene an empty answer instead of failing.
    tie_break, rank_seed
        How equal values are ordered in a cell sentence (C2S's seeded shuffle by default).
    read_rows
        Rows read from the file and ranked at a time.
    """

    input: Path
    n_genes: int | None = Field(default=None, ge=1, le=MAX_GENES)
    use_raw: bool = False
    layer: str | None = None
    gene_symbols_column: str | None = None
    organism: Organism | None = None
    skip_empty_cells: bool = False
    tie_break: TieBreak = "c2s"
    rank_seed: int = 42
    read_rows: int = Field(default=2048, ge=1)

    @model_validator(mode="after")
    def _one_matrix(self) -> ReadingConfig:
        if self.use_raw and self.layer is not None:
            raise ValueError("use either .raw (use_raw) or a layer, not both")
        return self

    @property
    def genes_per_cell(self) -> int:
        return self.n_genes if self.n_genes is not None else DEFAULT_GENES_SINGLE

    @property
    def matrix_name(self) -> str:
        """Which matrix is read: ``X``, ``raw`` or ``layers/<name>``."""
        if self.use_raw:
            return "raw"
        return f"layers/{self.layer}" if self.layer is not None else "X"

    @property
    def obs_columns(self) -> dict[str, str | None]:
        """The ``obs`` columns the run needs, by the option that names them."""
        return {}


class AnnotateConfig(ReadingConfig):
    """One bulk annotation run: an ``.h5ad`` in, Parquet shards and reports out.

    Reads its input as `ReadingConfig` says.

    Attributes
    ----------
    out
        Output folder: shards, progress record, ``annotated.h5ad``, ``report.json``, plots.
    task
        ``cell_type_prediction`` (one prompt per cell) or ``multi_cell_type_prediction``
        (cells grouped by ``group_key``, one prompt per group, a label per cell).
    n_genes
        Genes per cell in the prompt; 200 for one cell and 100 per cell in a group when
        unset (C2S's defaults, inside the trained ranges).
    template_index
        Prompt variant, or ``"random"``: a variant per cell, drawn from the cell's row and
        ``template_seed`` so that a resumed run draws the same ones.
    label_key
        An ``obs`` column of reference labels: accuracy and a confusion matrix.
    group_key
        The ``obs`` column whose values group cells in multi-cell runs (sample, donor...).
    tissue
        In multi-cell runs, also predict each group's tissue.
    min_group_cells, max_group_cells
        Bounds of a group's size (the model card's trained 5-20); the size actually used
        is the largest that fits the context.
    key_added
        The ``obs`` column of ``annotated.h5ad`` that receives the predictions.
    labels, label_mode, top_k_labels
        The atlas's allowed cell type labels (``--labels FILE``) and how to use them
        (`serving.core.label_sets`): ``free`` flags answers outside the set, ``constrained``
        decodes within it, ``scored`` ranks every label (top label's probability in
        ``obs[key_added + "_score"]``, the ``top_k_labels`` best in the Parquet rows).
    shard_cells
        Cells per Parquet shard: the unit of commit and of resumption.
    overwrite
        Discard a previous run found in ``out`` instead of resuming it.
    """

    out: Path
    task: BulkTask = "cell_type_prediction"
    template_index: int | Literal["random"] = 0
    template_seed: int = 42
    label_key: str | None = None
    group_key: str | None = None
    tissue: bool = True
    min_group_cells: int = Field(default=5, ge=1)
    max_group_cells: int = Field(default=20, ge=1, le=64)
    key_added: str = Field(default="c2s_prediction", min_length=1)
    shard_cells: int = Field(default=256, ge=1)
    overwrite: bool = False
    labels: tuple[str, ...] | None = None
    label_mode: LabelMode = "free"
    top_k_labels: int = Field(default=5, ge=1)
    execution: ExecutionConfig

    @model_validator(mode="after")
    def _consistent(self) -> AnnotateConfig:
        if self.multi_cell and not self.group_key:
            raise ValueError(
                f"{self.task} groups cells by an obs column: set group_key (--group-key), "
                "e.g. the sample, donor or cluster column"
            )
        if self.min_group_cells > self.max_group_cells:
            raise ValueError("min_group_cells must not exceed max_group_cells")
        if isinstance(self.template_index, int) and self.template_index < 0:
            raise ValueError("template_index must be >= 0 or 'random'")
        if self.label_mode != "free" and not self.labels:
            raise ValueError(f"label_mode {self.label_mode!r} needs a label set (--labels FILE)")
        if self.labels is not None:
            LabelSet(labels=self.labels)  # distinct, single-line labels
        return self

    @property
    def label_set(self) -> LabelSet | None:
        """The run's label set, for the cell type tasks (not the tissue)."""
        if not self.labels:
            return None
        return LabelSet(labels=self.labels, mode=self.label_mode, top_k=self.top_k_labels)

    @property
    def multi_cell(self) -> bool:
        return self.task == "multi_cell_type_prediction"

    @property
    def genes_per_cell(self) -> int:
        if self.n_genes is not None:
            return self.n_genes
        return DEFAULT_GENES_MULTI if self.multi_cell else DEFAULT_GENES_SINGLE

    @property
    def obs_columns(self) -> dict[str, str | None]:
        return {"--label-key": self.label_key, "--group-key": self.group_key}
