"""`GatewayRunner`: the job's batches sent to a remote gateway's native task route.

Each batch becomes ``POST {endpoint}/v1/tasks/{task}`` requests of ``request_cells``
inputs (one per template index used), several in flight at once. The gateway builds,
generates and decodes with its own stages; ``429``/``503`` and dropped connections are
retried with the server's ``Retry-After`` or a growing pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from serving.bulk.errors import RemoteError
from serving.bulk.runners import Answer
from serving.core.label_sets import LabelSet
from serving.core.pipeline import chunked
from serving.core.protocol import TaskBatchResponse

#: statuses that mean "busy or restarting: try again"
RETRYABLE = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 8
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 30.0


class GatewayRunner:
    """A `serving.bulk.runners.TaskRunner` over a gateway's HTTP API.

    Parameters
    ----------
    client
        An ``httpx.AsyncClient`` whose ``base_url`` is the gateway (with auth headers).
    request_cells
        Inputs per HTTP request.
    """

    def __init__(self, client: httpx.AsyncClient, request_cells: int = 64) -> None:
        self.client = client
        self.request_cells = request_cells

    @classmethod
    def connect(
        cls, endpoint: str, api_key: str | None, *, request_cells: int, timeout_s: float
    ) -> GatewayRunner:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.AsyncClient(
            base_url=endpoint.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout_s)
        )
        return cls(client, request_cells)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def max_model_len(self) -> int:
        body = (await self._send("GET", "/v1/models")).json()
        lengths = [m.get("max_model_len") for m in body.get("data", []) if m.get("max_model_len")]
        if not lengths:
            raise RemoteError("The gateway's /v1/models does not report max_model_len.")
        return int(min(lengths))

    async def run(
        self,
        task: str,
        inputs: Sequence[Mapping[str, Any]],
        templates: Sequence[int],
        label_set: LabelSet | None = None,
    ) -> list[Answer]:
        # one request holds one template index: the chunks of `fan_out`, per template
        batches = [
            (int(template), list(part))
            for template in dict.fromkeys(templates)
            for _, part in chunked(
                [i for i, t in enumerate(templates) if t == template], self.request_cells
            )
        ]
        responses = await asyncio.gather(
            *(
                self._post(task, [inputs[i] for i in part], template, label_set)
                for template, part in batches
            )
        )
        answers: dict[int, Answer] = {}
        for (_, part), response in zip(batches, responses, strict=True):
            answers.update(zip(part, _answers(response), strict=True))
        return [answers[i] for i in range(len(inputs))]

    async def _post(
        self,
        task: str,
        inputs: list[Mapping[str, Any]],
        template: int,
        label_set: LabelSet | None = None,
    ) -> TaskBatchResponse:
        body = {"inputs": list(inputs), "template_index": template, "include_text": True}
        if label_set is not None:
            body.update(
                labels=list(label_set.labels),
                label_mode=label_set.mode,
                top_k_labels=label_set.top_k,
            )
        response = await self._send("POST", f"/v1/tasks/{task}", json=body)
        return TaskBatchResponse.model_validate(response.json())

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        pause = FIRST_PAUSE_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = await self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise RemoteError(f"{method} {path} failed: {exc!r}") from exc
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE or attempt == MAX_ATTEMPTS:
                    raise RemoteError(_refusal(method, path, response))
                pause = _retry_after(response, pause)
            await asyncio.sleep(pause)
            pause = min(MAX_PAUSE_S, pause * 2)
        raise AssertionError("unreachable")


def _answers(response: TaskBatchResponse) -> list[Answer]:
    return [
        Answer(
            result=item.result,
            text=item.text or "",
            prompt_tokens=item.prompt_tokens,
            output_tokens=item.completion_tokens,
            finish_reason=item.finish_reason,
            template_index=response.template_index,
            model=response.model,
        )
        for item in response.data
    ]


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(MAX_PAUSE_S, float(response.headers.get("retry-after", default)))
    except ValueError:
        return default


def _refusal(method: str, path: str, response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500]
    return f"The gateway answered {method} {path} with {response.status_code}: {message}"
