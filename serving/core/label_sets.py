"""Label sets for the prediction tasks: free, constrained and scored answers.

An atlas has a label vocabulary; a request may name it, with one of three modes:

- ``free`` (the default): the model generates as always; each answer is reported as in
  or out of the set (``in_label_set``), never mapped onto it.
- ``constrained``: decoding is restricted to the set with the engine's structured outputs
  (a choice of answer texts, or for per-cell labels a regular expression).
- ``scored``: every label is ranked by the model's log-probability of its answer text
  (``label.`` and EOS, as C2S trains) after the prompt (`serving.core.label_scoring`); the
  ``top_k`` best come back with probabilities normalised over the set.

Labels live in the task's answer template, so answers are rendered from it: ``{cell_type}.``
for one label, ``Cell 1:\\nA.\\nCell 2:\\nB.\\n.`` for per-cell labels. Per-cell labels are
scored cell after cell, each given the best labels of the cells before it.

`label_set_answer` is `serving.core.pipeline.fan_out`'s answer for a label set, over any
`serving.core.pipeline.Pipeline` (in-process, or Ray Serve handles), so the gateway and the bulk
job share it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving.core.errors import ConfigError, InvalidRequest
from serving.core.label_scoring import ScoredLabel, score_labels
from serving.core.pipeline import BatchItem, ChunkHandler, Pipeline, decode_completions
from serving.core.protocol import MAX_LABELS
from serving.core.requests import DecodedResult, PreparedPrompt, PromptRequest
from serving.core.tasks.parsers import OutputKind
from serving.core.tasks.registry import TaskRegistry
from serving.core.tasks.spec import TaskSpec
from serving.engine import Completion, GeneratedSequence, GenerationParams
from tokenizer_ext.cell_text import multi_cell_text

LabelMode = Literal["free", "constrained", "scored"]
#: answers that hold labels: one label, or one label per cell
LABEL_OUTPUTS = frozenset({OutputKind.LABEL, OutputKind.CELL_LABELS})
#: stands for a label while an answer template is split around it
_SLOT = "\x00label\x00"
#: regular-expression metacharacters (structured outputs take a plain regex dialect)
_REGEX_SPECIAL = re.compile(r"([\\.^$*+?()\[\]{}|/\-])")


class LabelSet(BaseModel):
    """The allowed labels of a request, and how to use them.

    Attributes
    ----------
    labels
        Distinct labels, each on one line, in the caller's order (which breaks ties).
    mode
        ``free``, ``constrained`` or ``scored`` (see the module docstring).
    top_k
        Labels returned per answer in ``scored`` mode.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: tuple[str, ...] = Field(min_length=1, max_length=MAX_LABELS)
    mode: LabelMode = "free"
    top_k: int = Field(default=5, ge=1)

    @field_validator("labels")
    @classmethod
    def _distinct_single_line(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(label.strip() for label in labels)
        for label in cleaned:
            if not label or "\n" in label or "\r" in label:
                raise ValueError(f"labels must be non-empty single lines, got {label!r}")
        repeated = sorted({label for label in cleaned if cleaned.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be distinct; repeated: {repeated[:5]}")
        return cleaned

    @classmethod
    def from_request(
        cls, labels: Sequence[str] | None, mode: LabelMode = "free", top_k: int = 5
    ) -> LabelSet | None:
        """The set of a request's ``labels``, ``label_mode`` and ``top_k_labels`` fields,
        or ``None`` when it names none.

        Raises
        ------
        InvalidRequest
            For a mode other than ``free`` without labels, or invalid labels.
        """
        if labels is None:
            if mode != "free":
                raise InvalidRequest(f"label_mode {mode!r} needs 'labels'.", param="labels")
            return None
        try:
            return cls(labels=tuple(labels), mode=mode, top_k=top_k)
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise InvalidRequest(message, param="labels") from None


def read_label_file(path: str | Path) -> tuple[str, ...]:
    """Labels from a text file, one per line; blank lines and surrounding spaces ignored."""
    lines = Path(path).read_text("utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


@dataclass(frozen=True, slots=True)
class LabelShape:
    """Where a task's answer template puts its label(s): the text before and after.

    Attributes
    ----------
    task
        The task's name.
    per_cell
        Whether the answer holds one label per cell (``Cell N:`` blocks).
    head, tail
        Answer text before and after the label(s).
    """

    task: str
    per_cell: bool
    head: str
    tail: str

    @classmethod
    def of(cls, spec: TaskSpec) -> LabelShape:
        """The shape of ``spec``'s answers; raises `InvalidRequest` for a task without labels."""
        if spec.output not in LABEL_OUTPUTS:
            raise InvalidRequest(
                f"Task {spec.name!r} does not answer with labels, so it takes no label set.",
                param="labels",
            )
        (field,) = spec.answer_fields
        head, tail = spec.render_answer({field: _SLOT}).split(_SLOT)
        return cls(spec.name, spec.output is OutputKind.CELL_LABELS, head, tail)

    def text(self, labels: Sequence[str]) -> str:
        """The whole answer for one label (or one label per cell)."""
        return self.head + self._body(labels) + self.tail

    def _body(self, labels: Sequence[str]) -> str:
        return multi_cell_text(labels) if self.per_cell else labels[0]

    def candidate(self, chosen: Sequence[str], label: str, last: bool) -> str:
        """Answer text up to and including ``label`` after the cells already ``chosen``.

        A per-cell label that is not the last ends with its block's ``.\\n``, which tells
        it apart from longer labels it is a prefix of.
        """
        body = self._body([*chosen, label])
        return self.head + body + (self.tail if last else "")

    def header(self, chosen: Sequence[str]) -> str:
        """Answer text before the next label: the same for every candidate label."""
        return self.head + self._body([*chosen, _SLOT]).split(_SLOT)[0]

    def regex(self, labels: Sequence[str], n_cells: int) -> str:
        """A regular expression matching exactly the answers whose labels are in ``labels``."""
        choice = "(" + "|".join(_regex_literal(label) for label in labels) + ")"
        pieces = self.text([_SLOT] * n_cells).split(_SLOT)
        return choice.join(_regex_literal(piece) for piece in pieces)


def _regex_literal(text: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", text).replace("\n", r"\n").replace("\t", r"\t")


def answer_shapes(registry: TaskRegistry, jobs: Sequence[PromptRequest]) -> dict[str, LabelShape]:
    """The answer shape of every task of ``jobs``; raw prompts take no label set."""
    if any(job.task is None for job in jobs):
        raise InvalidRequest("Label sets need a task; raw prompts take none.", param="labels")
    return {task: LabelShape.of(registry.get(task)) for task in {job.task for job in jobs}}


def cell_count(shape: LabelShape, job: PromptRequest) -> int:
    """Labels one answer holds: the job's cells for per-cell answers, else one."""
    if not shape.per_cell:
        return 1
    return len((job.inputs or {}).get("cells") or ())


def constrained_params(
    shape: LabelShape, labels: Sequence[str], n_cells: int, params: GenerationParams
) -> GenerationParams:
    """``params`` with the output restricted to answers whose labels are in ``labels``.

    ``max_tokens`` grows to the longest such answer's UTF-8 length plus EOS when smaller:
    a byte-level tokenizer never needs more tokens than bytes.
    """
    longest = max(labels, key=lambda label: len(label.encode()))
    room = len(shape.text([longest] * n_cells).encode()) + 1
    max_tokens = None if params.max_tokens is None else max(params.max_tokens, room)
    if shape.per_cell:
        return params.model_copy(
            update={"regex": shape.regex(labels, n_cells), "max_tokens": max_tokens}
        )
    choices = tuple(shape.text([label]) for label in labels)
    return params.model_copy(update={"choices": choices, "max_tokens": max_tokens})


def with_membership(
    shape: LabelShape, result: Mapping[str, Any], labels: Sequence[str]
) -> dict[str, Any]:
    """``result`` with ``in_label_set``: whether its label (each cell's) is in the set,
    compared exactly."""
    allowed = frozenset(labels)
    if shape.per_cell:
        return {**result, "in_label_set": [label in allowed for label in result["labels"]]}
    return {**result, "in_label_set": result["label"] in allowed}


@dataclass(frozen=True, slots=True)
class ScoredLabels:
    """The best answer of a scoring and the ranked labels behind it.

    Attributes
    ----------
    text
        The answer text of the best label(s), as the model would generate it.
    token_ids
        Its token ids, EOS included.
    ranked
        Per label slot (one, or one per cell), the ``top_k`` best labels.
    """

    text: str
    token_ids: tuple[int, ...]
    ranked: tuple[tuple[ScoredLabel, ...], ...]


class LabelScorer:
    """Scores prompts against one label set over the serving stages.

    Answer texts are tokenised by the stages' prompt builder (as training encodes answers:
    the text without a leading space, then EOS) and memoised per label slot, so a batch
    against one set tokenises each label once.

    Parameters
    ----------
    stages
        The serving stages: ``encode`` tokenises, ``complete`` runs a request.
    label_set
        The labels and ``top_k``.
    eos_token_id
        The checkpoint's end-of-sequence id, which ends every answer.
    """

    def __init__(self, stages: Pipeline, label_set: LabelSet, eos_token_id: int) -> None:
        self.stages = stages
        self.label_set = label_set
        self.eos = eos_token_id
        self._encoded: dict[tuple[str, ...], asyncio.Future] = {}

    @classmethod
    async def for_stages(cls, stages: Pipeline, label_set: LabelSet) -> LabelScorer:
        eos = (await stages.limits()).eos_token_id
        if eos is None:
            raise ConfigError("The checkpoint names no EOS token, which ends every answer.")
        return cls(stages, label_set, eos)

    async def _encode(self, texts: tuple[str, ...]) -> list[tuple[int, ...]]:
        if texts not in self._encoded:
            self._encoded[texts] = asyncio.ensure_future(self.stages.encode(texts))
        return await self._encoded[texts]

    async def _complete(self, ids: Sequence[int], params: GenerationParams) -> Completion:
        return await self.stages.complete(PreparedPrompt(tuple(ids), params), params)

    async def score(
        self, shape: LabelShape, prompt_ids: Sequence[int], n_cells: int = 1
    ) -> ScoredLabels:
        """Rank the labels for each slot of the answer, best label first.

        Per-cell answers are scored cell after cell: cell i's candidates follow the best
        labels of cells 1..i-1. Tokens every candidate shares (the answer's head and the
        ``Cell i:`` header) are appended to the prompt rather than scored.
        """
        labels = self.label_set.labels
        chosen: list[str] = []
        ranked: list[tuple[ScoredLabel, ...]] = []
        answers: list[tuple[int, ...]] = []
        for cell in range(n_cells):
            last = cell == n_cells - 1
            texts = (shape.header(chosen), *(shape.candidate(chosen, lb, last) for lb in labels))
            header, *encoded = await self._encode(texts)
            answers = [(*ids, self.eos) if last else ids for ids in encoded]
            shared = min(len(header), _common_prefix_length(answers))
            scored = await score_labels(
                self._complete,
                (*prompt_ids, *answers[0][:shared]),
                labels,
                [ids[shared:] for ids in answers],
            )
            chosen.append(scored[0].label)
            ranked.append(tuple(scored[: self.label_set.top_k]))
        best = answers[labels.index(chosen[-1])]
        return ScoredLabels(shape.text(chosen), best, tuple(ranked))


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


def scored_result(
    shape: LabelShape, result: Mapping[str, Any], answer: ScoredLabels
) -> dict[str, Any]:
    """A parsed scored answer with its ranked labels (``label_scores``) beside it."""
    scores = [[s.as_dict() for s in slot] for slot in answer.ranked]
    if shape.per_cell:
        return {**result, "in_label_set": [True] * len(scores), "label_scores": scores}
    return {**result, "in_label_set": True, "label_scores": scores[0]}


async def label_set_answer(
    stages: Pipeline,
    jobs: Sequence[PromptRequest],
    params_for: Callable[[PreparedPrompt], GenerationParams],
    *,
    label_set: LabelSet,
    registry: TaskRegistry,
    logprob_tokens: bool = False,
    reconstruct_expression: bool = False,
) -> ChunkHandler[BatchItem]:
    """`serving.core.pipeline.fan_out`'s answer for prediction tasks against a label set.

    ``jobs`` are checked to be label-set tasks before anything is built. Free and
    constrained answers are generated with ``params_for`` (constrained: restricted to the
    set); scored answers come from `LabelScorer` and carry ``label_scores``. Every result
    says whether its labels are in the set (``in_label_set``).
    """
    shapes = answer_shapes(registry, jobs)
    scorer = None
    if label_set.mode == "scored":
        scorer = await LabelScorer.for_stages(stages, label_set)

    async def answer_one(job: PromptRequest, prompt: PreparedPrompt):
        shape = shapes[job.task]
        n_cells = cell_count(shape, job)
        if n_cells < 1:
            raise InvalidRequest("A label set needs at least one cell to label.", param="labels")
        if scorer is not None:
            scored = await scorer.score(shape, prompt.token_ids, n_cells)
            output = GeneratedSequence(0, scored.text, scored.token_ids, "stop")
            return Completion(f"score-{uuid.uuid4().hex}", prompt.prompt_tokens, (output,)), scored
        params = params_for(prompt)
        if label_set.mode == "constrained":
            params = constrained_params(shape, label_set.labels, n_cells, params)
        return await stages.complete(prompt, params), None

    async def answer_chunk(chunk_jobs: Sequence[PromptRequest], prompts: list[PreparedPrompt]):
        answered = await asyncio.gather(
            *(answer_one(j, p) for j, p in zip(chunk_jobs, prompts, strict=True))
        )
        completions = [completion for completion, _ in answered]
        decoded = await decode_completions(
            stages, prompts, completions, logprob_tokens, reconstruct_expression
        )
        items = []
        for job, prompt, (completion, scored), parsed in zip(
            chunk_jobs, prompts, answered, decoded, strict=True
        ):
            shape = shapes[job.task]
            answers = []
            for answer in parsed:
                result = answer.result or {}
                result = (
                    scored_result(shape, result, scored)
                    if scored is not None
                    else with_membership(shape, result, label_set.labels)
                )
                answers.append(DecodedResult(result, answer.tokens))
            items.append(BatchItem(prompt, completion, tuple(answers)))
        return items

    return answer_chunk
