"""Request and response models of the HTTP API, in one place.

They mirror OpenAI's names (and vLLM's OpenAI server) for the subset we serve, plus our
extensions: ``task``, ``inputs`` and ``template_index`` select a C2S task, and task
responses carry a typed ``result`` per choice. Validation lives here (``Literal``,
``Field(ge=, le=)``); nothing here imports vllm or torch.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: upper bounds that keep one request from monopolising the engine
MAX_CHOICES = 16
MAX_OUTPUT_TOKENS = 8192
MAX_BATCH_CELLS = 10_000
#: labels one request's label set may hold
MAX_LABELS = 2000
#: vLLM takes 64-bit seeds
MAX_SEED = 2**63 - 1
#: past any vocabulary; vLLM's engine fails (500) on integers past 64 bits
MAX_TOP_K = 2**31 - 1


class OpenAIModel(BaseModel):
    """Requests reject unknown fields, so a typo is an error rather than ignored."""

    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- errors


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    """OpenAI's error envelope; ``code`` is the HTTP status, as in vLLM."""

    error: ErrorInfo


# ----------------------------------------------------------------------------- models


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "c2s-serving"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None
    task: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ----------------------------------------------------------------------------- shared


class StreamOptions(OpenAIModel):
    include_usage: bool = False


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int = 0


class LabelSetFields(OpenAIModel):
    """C2S extension for prediction tasks: an allowed label set and how to use it.

    ``free`` generates as usual and reports whether each answer is in the set;
    ``constrained`` restricts decoding to the set; ``scored`` ranks every label by the
    model's log-probability and returns the ``top_k_labels`` best with probabilities
    normalised over the set (`serving.core.label_sets`).
    """

    labels: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_LABELS, description="allowed labels"
    )
    label_mode: Literal["free", "constrained", "scored"] = "free"
    top_k_labels: int = Field(default=5, ge=1, le=MAX_LABELS)


class SamplingFields(LabelSetFields):
    """Sampling fields common to both OpenAI routes (vLLM's extensions included)."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1, le=MAX_TOP_K)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    user: str | None = None
    # vLLM's sampling extensions (its load client `vllm bench serve` sends them)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0)
    min_tokens: int = Field(default=0, ge=0, le=MAX_OUTPUT_TOKENS)
    ignore_eos: bool = False
    # C2S extensions
    task: str | None = Field(default=None, description="C2S task name, e.g. cell_type_prediction")
    template_index: int | Literal["random"] | None = Field(
        default=None, description="prompt variant; 0 by default, 'random' as in C2S"
    )

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> list[str]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# ----------------------------------------------------------------------------- completions


class CompletionRequest(SamplingFields):
    """``POST /v1/completions``: a raw prompt, or a task's structured ``inputs``."""

    prompt: str | list[int] | None = None
    inputs: dict[str, Any] | None = Field(
        default=None, description="task input (the task's input model), in task mode"
    )
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None
    result: dict[str, Any] | None = Field(
        default=None, description="C2S extension: the task's typed result"
    )


class CompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# ----------------------------------------------------------------------------- chat


class ChatMessage(OpenAIModel):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _text_parts_hold_text(cls, content: str | list[dict[str, Any]] | None):
        for i, part in enumerate(content if isinstance(content, list) else ()):
            if part.get("type") == "text" and not isinstance(part.get("text"), str):
                raise ValueError(f"content part {i} has type 'text' but no string 'text'")
        return content

    def text(self) -> str:
        """The message text; content parts of type ``text`` are joined."""
        if isinstance(self.content, list):
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(SamplingFields):
    """``POST /v1/chat/completions`` in task mode: the last user message is the input."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        raise ValueError("the conversation has no user message")


class ChatLogprobEntry(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[dict[str, Any]] = Field(default_factory=list)


class ChatChoiceLogprobs(BaseModel):
    content: list[ChatLogprobEntry]


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int
    message: ChatResponseMessage
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None
    result: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatCompletionChoice]
    usage: Usage | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None
    result: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


# ----------------------------------------------------------------------------- native tasks


class TaskBatchRequest(LabelSetFields):
    """``POST /v1/tasks/{task}``: many inputs of one task, answered in order."""

    inputs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_CELLS)
    template_index: int | Literal["random"] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1, le=MAX_TOP_K)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    include_text: bool = True
    reconstruct_expression: bool = Field(
        default=False, description="add reconstructed expression for generated cells"
    )


class TaskItemResult(BaseModel):
    index: int
    result: dict[str, Any]
    text: str | None = None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


class TaskBatchResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"task-{uuid.uuid4().hex}")
    object: Literal["task.batch"] = "task.batch"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    task: str
    template_index: int | None = None
    data: list[TaskItemResult]
    usage: Usage


# ----------------------------------------------------------------------------- embeddings


class EmbeddingRequest(OpenAIModel):
    """``POST /v1/embeddings``: cell embeddings, OpenAI's shape.

    ``input`` holds cells: cell sentences (text), or, as a C2S extension, expression
    objects ``{"genes": [...], "values": [...]}``. Each cell is embedded as the cell type
    prediction prompt of its first ``n_genes`` genes (template ``template_index``).
    """

    model: str
    input: str | list[str | dict[str, Any]] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    # C2S extensions
    n_genes: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    organism: Literal["Homo sapiens", "Mus musculus"] | None = None
    template_index: int | None = Field(default=None, ge=0)

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: str | list) -> str | list:
        if isinstance(value, list) and len(value) > MAX_BATCH_CELLS:
            raise ValueError(f"input takes at most {MAX_BATCH_CELLS} cells per request")
        return value


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"embd-{uuid.uuid4().hex}")
    object: Literal["list"] = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[EmbeddingData]
    usage: Usage
