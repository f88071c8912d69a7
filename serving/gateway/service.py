"""`OpenAIService`: protocol requests in, protocol responses out, over any `Pipeline`.

It knows OpenAI's shapes and the task registry, but nothing of HTTP: the FastAPI routes
call it, and tests can too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from serving.core.errors import InvalidRequest
from serving.core.label_sets import LabelSet, label_set_answer
from serving.core.pipeline import BatchItem, Pipeline, fan_out, generation
from serving.core.protocol import (
    ChatCompletionChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatResponseMessage,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    LabelSetFields,
    ModelCard,
    ModelList,
    SamplingFields,
    TaskBatchRequest,
    TaskBatchResponse,
    TaskItemResult,
    Usage,
)
from serving.core.requests import PreparedPrompt, PromptRequest
from serving.core.tasks.registry import TaskRegistry
from serving.engine import GenerationParams
from serving.gateway.errors import UnknownModel
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.openai_shapes import chat_logprobs, completion_logprobs, usage_of
from serving.gateway.streaming import stream_events
from serving.ray_serve.config import GatewayConfig

#: input fields that a plain-text chat message fills, in order of preference
SHORTHAND_FIELDS = ("cell", "cells", "cell_type", "tissue", "abstract", "gene_set_name", "genes")


class OpenAIService:
    """The OpenAI-compatible and native task API over the serving stages."""

    def __init__(
        self,
        config: GatewayConfig,
        stages: Pipeline,
        registry: TaskRegistry,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.config = config
        self.stages = stages
        self.registry = registry
        self.metrics = metrics or GatewayMetrics()

    # ------------------------------------------------------------------ models

    async def models(self) -> ModelList:
        limits = await self.stages.limits()
        base = self.config.model_name
        cards = [ModelCard(id=base, root=limits.model, max_model_len=limits.max_model_len)]
        cards += [
            ModelCard(
                id=f"{base}/{spec.name}",
                parent=base,
                task=spec.name,
                max_model_len=limits.max_model_len,
            )
            for spec in self.registry
        ]
        return ModelList(data=cards)

    def resolve_task(self, request: SamplingFields) -> str | None:
        """The task named by the model id (``<base>/<task>``) or the ``task`` field."""
        base = self.config.model_name
        model_task = None
        if request.model != base:
            prefix = f"{base}/"
            if not request.model.startswith(prefix):
                raise UnknownModel(
                    f"The model {request.model!r} does not exist. Use {base!r} or "
                    f"'{base}/<task>' (GET /v1/models lists them)."
                )
            model_task = request.model[len(prefix) :]
            self.registry.get(model_task)
        if request.task is not None:
            self.registry.get(request.task)
            if model_task is not None and model_task != request.task:
                raise InvalidRequest(
                    f"The model selects task {model_task!r} but the body asks for "
                    f"{request.task!r}.",
                    param="task",
                )
        return request.task or model_task

    # ------------------------------------------------------------------ params

    @staticmethod
    def params(
        defaults: GenerationParams, request: SamplingFields, **extra: Any
    ) -> GenerationParams:
        """The request's sampling fields on top of the task's (or raw) defaults."""
        values = defaults.model_dump()
        overrides = {
            "max_tokens": extra.pop("max_tokens", None) or request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if request.top_k is not None:
            values["top_k"] = request.top_k if request.top_k > 0 else None
        values.update(
            n=request.n,
            stop=tuple(request.stop or ()),
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            repetition_penalty=request.repetition_penalty,
            min_tokens=request.min_tokens,
            ignore_eos=request.ignore_eos,
            **extra,
        )
        try:
            return GenerationParams(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidRequest(
                str(first["msg"]).removeprefix("Value error, "),
                param=str(first["loc"][0]) if first["loc"] else None,
            ) from None

    # ------------------------------------------------------------------ jobs

    def completion_job(self, request: CompletionRequest, task: str | None) -> PromptRequest:
        if request.echo or request.suffix:
            raise InvalidRequest("echo and suffix are not supported.", param="echo")
        template = 0 if request.template_index is None else request.template_index
        if task is None:
            if request.inputs is not None:
                raise InvalidRequest(
                    "inputs need a task: set 'task' or use the model '<base>/<task>'.",
                    param="inputs",
                )
            if request.prompt is None:
                raise InvalidRequest("prompt is required.", param="prompt")
            raw = request.prompt if isinstance(request.prompt, str) else tuple(request.prompt)
            return PromptRequest(raw_prompt=raw)
        if request.inputs is not None:
            return PromptRequest(task=task, inputs=request.inputs, template=template)
        if isinstance(request.prompt, str):
            return PromptRequest(
                task=task, inputs=self.text_inputs(task, request.prompt), template=template
            )
        raise InvalidRequest(f"Task {task!r} needs 'inputs' (or a text prompt).", param="inputs")

    def text_inputs(self, task: str, text: str) -> Mapping[str, Any]:
        """Task inputs from a message: a JSON object, or the task's main field as text."""
        text = text.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(
                    f"The message is not valid JSON: {exc}", param="messages"
                ) from None
            if not isinstance(value, dict):
                raise InvalidRequest("A JSON message must be an object.", param="messages")
            return value
        fields = self.registry.get(task).input_model.model_fields
        for name in SHORTHAND_FIELDS:
            if name in fields:
                return {name: _shorthand_value(name, text)}
        if text:
            raise InvalidRequest(
                f"Task {task!r} takes its inputs as a JSON object.", param="messages"
            )
        return {}

    # ------------------------------------------------------------------ completions

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        task = self.resolve_task(request)
        job = self.completion_job(request, task)
        item = await self._run_one(job, request, logprobs=request.logprobs)
        choices = [
            CompletionChoice(
                index=out.index,
                text=out.text,
                finish_reason=out.finish_reason,
                logprobs=completion_logprobs(out, answer.tokens)
                if request.logprobs is not None
                else None,
                result=answer.result,
            )
            for out, answer in zip(item.completion.outputs, item.answers, strict=True)
        ]
        return CompletionResponse(
            model=request.model, choices=choices, usage=usage_of(item.completion)
        )

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        job = self._chat_job(request)
        top = (request.top_logprobs or 0) if request.logprobs else None
        item = await self._run_one(
            job, request, logprobs=top, max_tokens=request.max_completion_tokens
        )
        choices = [
            ChatCompletionChoice(
                index=out.index,
                message=ChatResponseMessage(content=out.text),
                finish_reason=out.finish_reason,
                logprobs=chat_logprobs(out, answer.tokens) if request.logprobs else None,
                result=answer.result,
            )
            for out, answer in zip(item.completion.outputs, item.answers, strict=True)
        ]
        return ChatCompletionResponse(
            model=request.model, choices=choices, usage=usage_of(item.completion)
        )

    def _chat_job(self, request: ChatCompletionRequest) -> PromptRequest:
        task = self.resolve_task(request)
        if task is None:
            raise InvalidRequest(
                "Chat completions run a C2S task: use the model "
                f"'{self.config.model_name}/<task>' or set 'task'.",
                param="model",
            )
        try:
            text = request.last_user_text()
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="messages") from None
        template = 0 if request.template_index is None else request.template_index
        return PromptRequest(task=task, inputs=self.text_inputs(task, text), template=template)

    async def _run_one(
        self,
        job: PromptRequest,
        request: SamplingFields,
        *,
        logprobs: int | None,
        max_tokens: int | None = None,
    ) -> BatchItem:
        extra: dict[str, Any] = {"logprobs": logprobs}
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        (item,) = await self._answer_batch(
            request,
            [job],
            lambda prompt: self.params(prompt.params, request, **dict(extra)),
            chunk_size=1,
            logprob_tokens=logprobs is not None,
        )
        self.metrics.count_tokens(
            job.task or "raw", item.prompt.prompt_tokens, item.completion.completion_tokens
        )
        return item

    async def _answer_batch(
        self,
        request: LabelSetFields,
        jobs: list[PromptRequest],
        params_for: Callable[[PreparedPrompt], GenerationParams],
        *,
        chunk_size: int,
        logprob_tokens: bool = False,
        reconstruct_expression: bool = False,
    ) -> list[BatchItem]:
        """`fan_out` of ``jobs``: plain generation, or the request's label set."""
        label_set = LabelSet.from_request(request.labels, request.label_mode, request.top_k_labels)
        options = {
            "logprob_tokens": logprob_tokens,
            "reconstruct_expression": reconstruct_expression,
        }
        if label_set is None:
            answer = generation(self.stages, params_for, **options)
        else:
            if label_set.mode == "scored":
                logprobs = getattr(request, "logprobs", None)
                if getattr(request, "n", 1) > 1 or logprobs not in (None, False):
                    raise InvalidRequest(
                        "label_mode 'scored' ranks labels instead of generating: it takes n=1 "
                        "and no logprobs (label_scores hold each label's log-probability).",
                        param="label_mode",
                    )
            answer = await label_set_answer(
                self.stages,
                jobs,
                params_for,
                label_set=label_set,
                registry=self.registry,
                **options,
            )
        return await fan_out(self.stages, jobs, answer, chunk_size=chunk_size)

    # ------------------------------------------------------------------ streaming

    async def prepare_stream(
        self, request: CompletionRequest | ChatCompletionRequest
    ) -> tuple[PreparedPrompt, GenerationParams]:
        """Build and check the prompt before the response starts, so errors are plain 4xx."""
        if request.labels is not None:
            raise InvalidRequest("Label sets do not stream: set stream=false.", param="labels")
        if isinstance(request, ChatCompletionRequest):
            job = self._chat_job(request)
            logprobs = (request.top_logprobs or 0) if request.logprobs else None
            extra: dict[str, Any] = {"logprobs": logprobs}
            if request.max_completion_tokens:
                extra["max_tokens"] = request.max_completion_tokens
        else:
            job = self.completion_job(request, self.resolve_task(request))
            extra = {"logprobs": request.logprobs}
        (prompt,) = await self.stages.build([job])
        return prompt, self.params(prompt.params, request, **extra)

    def stream(
        self,
        request: CompletionRequest | ChatCompletionRequest,
        prompt: PreparedPrompt,
        params: GenerationParams,
    ) -> AsyncIterator[str]:
        """Server-sent events: deltas, each choice's typed result at its end, usage, [DONE]."""
        return stream_events(self.stages, self.metrics, request, prompt, params)

    # ------------------------------------------------------------------ native tasks

    async def run_task(self, task: str, request: TaskBatchRequest) -> TaskBatchResponse:
        self.registry.get(task)
        template = 0 if request.template_index is None else request.template_index
        jobs = [
            PromptRequest(task=task, inputs=inputs, template=template) for inputs in request.inputs
        ]
        sampling = SamplingFields(
            model=self.config.model_name,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            seed=request.seed,
        )
        items = await self._answer_batch(
            request,
            jobs,
            lambda p: self.params(p.params, sampling),
            chunk_size=self.config.batch_chunk_size,
            reconstruct_expression=request.reconstruct_expression,
        )
        data = [
            TaskItemResult(
                index=i,
                result=item.answers[0].result or {},
                text=item.completion.text if request.include_text else None,
                prompt_tokens=item.prompt.prompt_tokens,
                completion_tokens=item.completion.completion_tokens,
                finish_reason=item.completion.outputs[0].finish_reason,
            )
            for i, item in enumerate(items)
        ]
        prompt_tokens = sum(d.prompt_tokens for d in data)
        completion_tokens = sum(d.completion_tokens for d in data)
        self.metrics.count_tokens(task, prompt_tokens, completion_tokens)
        self.metrics.items.labels(task).inc(len(data))
        return TaskBatchResponse(
            model=f"{self.config.model_name}/{task}",
            task=task,
            template_index=items[0].prompt.template_index if items else None,
            data=data,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )


def _shorthand_value(field: str, text: str) -> Any:
    if field == "cells":
        return [
            line.split(":", 1)[-1].strip(" .") for line in text.splitlines() if line.strip(" .")
        ]
    if field == "genes":
        return text.replace(",", " ").split()
    return text
