"""A corpus of malformed requests, across every route, each with the 4xx it must get.

Every case names what a user must read in the error message to fix the request
(``hint``, matched case-insensitively), so "a message a user can act on" is checked,
not assumed. Bodies are raw bytes: broken JSON and invalid UTF-8 go out as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BASE = "c2s-demo-pythia"
CTP = f"{BASE}/cell_type_prediction"
COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
CELL = "CD74 HLA-DRA CD79A MS4A1 CD19 CD37 HLA-DPB1 CD52"
#: a gene symbol the tokenizer cuts into many tokens, to overflow the context on purpose
LONG_GENE = "LONGSYNTHETICGENENAME"
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class BadRequest:
    """One malformed request and the answer it must get.

    Attributes
    ----------
    id
        Unique, readable name (the pytest id).
    method, path
        Where it goes.
    body
        Sent as is, with ``content_type``; ``None`` sends no body.
    status
        The exact 4xx expected.
    hint
        Text the error message must contain: the field or fact the user has to fix.
    needs_vocabulary
        The refusal needs a checkpoint that lists its genes.
    """

    id: str
    method: str
    path: str
    body: bytes | None
    status: int
    hint: str
    content_type: str = "application/json"
    needs_vocabulary: bool = False


def encoded(value: Any) -> bytes:
    # allow_nan: NaN and Infinity literals are part of the corpus
    return json.dumps(value, allow_nan=True).encode()


def post(id: str, path: str, value: Any, hint: str, status: int = 400, **kw) -> BadRequest:
    body = value if isinstance(value, bytes) else encoded(value)
    return BadRequest(id, "POST", path, body, status, hint, **kw)


def task(name: str, item: Any, hint: str, status: int = 400, **fields) -> BadRequest:
    """A native task request whose one input ``item`` is bad; ``fields`` go beside
    ``inputs`` (``task`` picks the route)."""
    task_name = fields.pop("task", "cell_type_prediction")
    needs_vocabulary = fields.pop("needs_vocabulary", False)
    body = {"inputs": [item], **fields}
    route = f"/v1/tasks/{task_name}"
    return post(f"tasks-{name}", route, body, hint, status, needs_vocabulary=needs_vocabulary)


def expression(genes: list[str], values: list[Any]) -> dict:
    return {"cell": {"genes": genes, "values": values}}


def broken_json() -> list[BadRequest]:
    bodies = {
        "not-json": b"{not json",
        "truncated": b'{"model": "c2s-demo-pythia", "prompt": "x"',
        "empty": b"",
        "trailing-garbage": b'{"model": "c2s-demo-pythia"}{"x": 1}',
        "nested-100k-deep": b"[" * 100_000 + b"]" * 100_000,
        "invalid-utf8": b'{"model": "\xff\xfe", "prompt": "\xc3\x28"}',
        "null": b"null",
        "array": b"[]",
        "string": b'"just a string"',
    }
    return [
        post(f"{route.strip('/').replace('/', '-')}-{name}", route, body, "JSON object")
        for route in (COMPLETIONS, CHAT, "/v1/tasks/cell_type_prediction")
        for name, body in bodies.items()
    ]


def wrong_types() -> list[BadRequest]:
    def c(name: str, **fields) -> BadRequest:
        (field,) = [k for k in fields if k != "model"] or ["model"]
        return post(
            f"completions-{name}", COMPLETIONS, {"model": BASE, "prompt": "x", **fields}, field
        )

    def ch(name: str, hint: str, **fields) -> BadRequest:
        body = {"model": CTP, "messages": [{"role": "user", "content": CELL}], **fields}
        return post(f"chat-{name}", CHAT, body, hint)

    return [
        c("model-int", model=123),
        c("prompt-object", prompt={"text": "x"}),
        c("prompt-float-ids", prompt=[1.5, 2]),
        c("max-tokens-string", max_tokens="ten"),
        c("n-string", n="many"),
        c("temperature-string", temperature="hot"),
        c("top-p-list", top_p=[0.9]),
        c("stream-string", stream="yes please"),
        c("stop-int", stop=5),
        c("logprobs-string", logprobs="all"),
        c("echo-string", echo="no way"),
        post("completions-inputs-string", COMPLETIONS, {"model": CTP, "inputs": CELL}, "inputs"),
        post(
            "completions-inputs-list",
            COMPLETIONS,
            {"model": CTP, "inputs": [{"cell": CELL}]},
            "inputs",
        ),
        ch("messages-string", "messages", messages="hi"),
        ch("message-string", "messages", messages=["hi"]),
        ch("role-unknown", "role", messages=[{"role": "robot", "content": CELL}]),
        ch("content-int", "content", messages=[{"role": "user", "content": 5}]),
        ch(
            "content-part-text-int",
            "text",
            messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}],
        ),
        ch("max-completion-tokens-string", "max_completion_tokens", max_completion_tokens="x"),
        ch("top-logprobs-100", "top_logprobs", logprobs=True, top_logprobs=100),
        ch("logprobs-object", "logprobs", logprobs={"on": True}),
        post("tasks-inputs-string", "/v1/tasks/cell_type_prediction", {"inputs": CELL}, "inputs"),
        post("tasks-inputs-ints", "/v1/tasks/cell_type_prediction", {"inputs": [1, 2]}, "inputs"),
        post(
            "tasks-inputs-object",
            "/v1/tasks/cell_type_prediction",
            {"inputs": {"cell": CELL}},
            "inputs",
        ),
        task("template-index-word", {"cell": CELL}, "template_index", template_index="first"),
        task("max-tokens-string", {"cell": CELL}, "max_tokens", max_tokens="x"),
        task("include-text-string", {"cell": CELL}, "include_text", include_text="maybe"),
        task("seed-string", {"cell": CELL}, "seed", seed="lucky"),
        task(
            "reconstruct-list", {"cell": CELL}, "reconstruct_expression", reconstruct_expression=[]
        ),
        task("cell-int", {"cell": 42}, "cell"),
        task("n-genes-float", {"cell": CELL, "n_genes": 2.5}, "n_genes"),
        task("organism-unknown", {"cell": CELL, "organism": "Danio rerio"}, "organism"),
    ]


def missing_and_unknown_fields() -> list[BadRequest]:
    return [
        post("completions-no-model", COMPLETIONS, {"prompt": "x"}, "model"),
        post("completions-no-prompt", COMPLETIONS, {"model": BASE}, "prompt"),
        post("completions-task-no-inputs", COMPLETIONS, {"model": CTP, "prompt": ["x"]}, "prompt"),
        post(
            "completions-inputs-without-task",
            COMPLETIONS,
            {"model": BASE, "inputs": {"cell": CELL}},
            "task",
        ),
        post(
            "completions-unknown-field",
            COMPLETIONS,
            {"model": BASE, "prompt": "x", "bogus": 1},
            "bogus",
        ),
        post(
            "completions-template-files-field",
            COMPLETIONS,
            {
                "model": CTP,
                "inputs": {"cell": CELL},
                "template_files": {"cell_type_prediction": "/etc/passwd"},
            },
            "template_files",
        ),
        post("chat-no-messages", CHAT, {"model": CTP}, "messages"),
        post("chat-empty-messages", CHAT, {"model": CTP, "messages": []}, "messages"),
        post(
            "chat-no-user-message",
            CHAT,
            {"model": CTP, "messages": [{"role": "system", "content": "x"}]},
            "user message",
        ),
        post(
            "chat-base-model",
            CHAT,
            {"model": BASE, "messages": [{"role": "user", "content": CELL}]},
            "task",
        ),
        post(
            "chat-message-extra-key",
            CHAT,
            {"model": CTP, "messages": [{"role": "user", "content": CELL, "cell": 1}]},
            "cell",
        ),
        post("tasks-no-inputs", "/v1/tasks/cell_type_prediction", {}, "inputs"),
        post("tasks-empty-inputs", "/v1/tasks/cell_type_prediction", {"inputs": []}, "inputs"),
        post(
            "tasks-unknown-field",
            "/v1/tasks/cell_type_prediction",
            {"inputs": [{"cell": CELL}], "bogus": 1},
            "bogus",
        ),
        task("missing-cell", {}, "cell"),
        task("misspelt-cell", {"cel": CELL}, "cel"),
        task("missing-tissue", {"n_genes": 5}, "tissue", task="tissue_generation"),
        task("missing-cell-type", {"n_genes": 5}, "cell_type", task="cell_type_generation"),
    ]


def unknown_models_and_tasks() -> list[BadRequest]:
    def m(name: str, model: str, hint: str) -> BadRequest:
        return post(f"model-{name}", COMPLETIONS, {"model": model, "prompt": "x"}, hint, 404)

    return [
        m("gpt-4", "gpt-4", "/v1/models"),
        m("unknown-task", f"{BASE}/nope", "Valid tasks"),
        m("absolute-path", "/etc/passwd", "/v1/models"),
        m("relative-path", "../../models/c2s-demo-pythia", "/v1/models"),
        m("task-path-traversal", f"{BASE}/../../etc/passwd", "Valid tasks"),
        m("hub-id", "vandijklab/C2S-Pythia-410m-diverse-single-and-multi-cell-tasks", "/v1/models"),
        m("file-url", "file:///etc/passwd", "/v1/models"),
        post(
            "task-field-unknown",
            COMPLETIONS,
            {"model": BASE, "task": "nope", "inputs": {}},
            "Valid tasks",
            404,
        ),
        post(
            "task-field-mismatch",
            COMPLETIONS,
            {"model": CTP, "task": "tissue_prediction", "inputs": {}},
            "task",
        ),
        post(
            "chat-unknown-model",
            CHAT,
            {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]},
            "/v1/models",
            404,
        ),
        post("tasks-unknown", "/v1/tasks/nope", {"inputs": [{"cell": CELL}]}, "Valid tasks", 404),
        post(
            "tasks-path-traversal",
            "/v1/tasks/..%2F..%2Fetc%2Fpasswd",
            {"inputs": [{}]},
            "No route",
            404,
        ),
    ]


def empty_cells() -> list[BadRequest]:
    multi = {"task": "tissue_prediction"}
    return [
        task("cell-empty", {"cell": ""}, "cell"),
        task("cell-blank", {"cell": "   "}, "gene"),
        task("expression-empty", expression([], []), "genes"),
        task("expression-all-zero", expression(["CD3D", "CD3E"], [0, 0]), "non-zero"),
        task("cells-empty-list", {"cells": []}, "cells", **multi),
        task("cells-one-empty", {"cells": [CELL, ""]}, "cells", **multi),
        task("gene-set-no-genes", {"genes": []}, "genes", task="genes_to_gene_set"),
        post(
            "chat-empty-cell",
            CHAT,
            {"model": CTP, "messages": [{"role": "user", "content": ""}]},
            "cell",
        ),
        post("completions-empty-prompt", COMPLETIONS, {"model": BASE, "prompt": ""}, "empty"),
        post("completions-empty-ids", COMPLETIONS, {"model": BASE, "prompt": []}, "empty"),
    ]


def bad_expression_values() -> list[BadRequest]:
    genes = ["CD3D", "CD3E", "IL7R"]
    nan = b'{"inputs": [{"cell": {"genes": ["CD3D", "CD3E"], "values": [1.0, NaN]}}]}'
    return [
        post("tasks-expression-nan-literal", "/v1/tasks/cell_type_prediction", nan, "finite"),
        task("expression-infinity", expression(genes, [1.0, float("inf"), 0.5]), "finite"),
        task("expression-minus-infinity", expression(genes, [1.0, float("-inf"), 0.5]), "finite"),
        task("expression-nan-string", expression(genes, ["nan", 1.0, 0.5]), "finite"),
        task("expression-overflow", expression(genes[:2], [1e400, 1.0]), "finite"),
        task("expression-negative", expression(genes, [1.0, -0.5, 2.0]), "negative"),
        task("expression-all-negative", expression(genes, [-1.0, -0.5, -2.0]), "negative"),
        task("expression-length-mismatch", expression(genes, [1.0, 2.0]), "3 genes"),
        task("expression-value-words", expression(genes, ["high", "low", "mid"]), "values"),
        task("expression-value-null", expression(genes, [1.0, None, 2.0]), "values"),
        task(
            "expression-extra-key",
            {"cell": {"genes": genes, "values": [1, 2, 3], "unit": "tpm"}},
            "unit",
        ),
    ]


def bad_genes() -> list[BadRequest]:
    ensembl = "ENSG00000141510 ENSG00000167286 ENSG00000111537"
    return [
        task(
            "genes-unknown", {"cell": "NOTAGENE FOOBAR1 CD3D"}, "vocabulary", needs_vocabulary=True
        ),
        task("genes-typos", {"cell": "CD3DD CD33EE MS4AA"}, "vocabulary", needs_vocabulary=True),
        task("genes-ensembl", {"cell": ensembl}, "Ensembl"),
        task("genes-ensembl-mouse", {"cell": "ENSMUSG00000102693 ENSMUSG00000064842"}, "Ensembl"),
        task("genes-ensembl-expression", expression(ensembl.split(), [3.0, 2.0, 1.0]), "Ensembl"),
        task("genes-duplicate-sentence", {"cell": "CD3D CD3E CD3D IL7R"}, "CD3D"),
        task("genes-duplicate-case", expression(["CD3D", "cd3d"], [1.0, 2.0]), "CD3D"),
        task(
            "genes-duplicate-multi",
            {"cells": [CELL, "LYZ S100A9 LYZ"]},
            "cells[1]",
            task="tissue_prediction",
        ),
        task("gene-name-with-space", expression(["CD3D CD3E", "IL7R"], [1.0, 2.0]), "genes"),
        task("gene-name-empty", expression(["", "IL7R"], [1.0, 2.0]), "genes"),
        task("gene-name-too-long", expression(["G" * 65, "IL7R"], [1.0, 2.0]), "genes"),
    ]


def too_long_prompts() -> list[BadRequest]:
    long_cell = " ".join(f"{LONG_GENE}{i}" for i in range(2048))
    wide = " ".join(f"GENE{i}X" for i in range(400))
    return [
        post("completions-ids-9000", COMPLETIONS, {"model": BASE, "prompt": [5] * 9000}, "8192"),
        post("completions-ids-8192", COMPLETIONS, {"model": BASE, "prompt": [5] * 8192}, "8191"),
        post(
            "completions-text-long", COMPLETIONS, {"model": BASE, "prompt": "gene " * 9000}, "8192"
        ),
        task("single-cell-past-context", {"cell": long_cell, "n_genes": 2048}, "n_genes"),
        task(
            "multi-cell-past-context",
            {"cells": [wide] * 20, "n_genes": 400},
            "8192",
            task="tissue_prediction",
        ),
        post(
            "chat-past-context",
            CHAT,
            {
                "model": CTP,
                "messages": [
                    {"role": "user", "content": json.dumps({"cell": long_cell, "n_genes": 2048})}
                ],
            },
            "8192",
        ),
    ]


def outside_trained_ranges() -> list[BadRequest]:
    return [
        task("n-genes-above-single", {"cell": CELL, "n_genes": 3000}, "2048"),
        task("n-genes-above-generation", {"n_genes": 5000}, "2048", task="cell_generation"),
        task(
            "n-genes-above-multi",
            {"cells": [CELL] * 5, "n_genes": 1000},
            "400",
            task="tissue_prediction",
        ),
        task("n-cells-above", {"n_cells": 30, "n_genes": 100}, "20", task="multi_cell_generation"),
        task("cells-above", {"cells": [CELL] * 25, "n_genes": 100}, "20", task="tissue_prediction"),
        task("n-genes-zero", {"cell": CELL, "n_genes": 0}, "n_genes"),
        task("n-genes-negative", {"cell": CELL, "n_genes": -5}, "n_genes"),
        task("n-genes-huge", {"cell": CELL, "n_genes": 10**12}, "n_genes"),
        task("n-cells-zero", {"n_cells": 0}, "n_cells", task="multi_cell_generation"),
    ]


def out_of_range_parameters() -> list[BadRequest]:
    def c(name: str, hint: str, **fields) -> BadRequest:
        return post(
            f"completions-{name}", COMPLETIONS, {"model": BASE, "prompt": "x", **fields}, hint
        )

    return [
        c("n-huge", "n", n=10**12),
        c("n-zero", "n", n=0),
        c("n-17", "n", n=17),
        c("max-tokens-negative", "max_tokens", max_tokens=-1),
        c("max-tokens-zero", "max_tokens", max_tokens=0),
        c("max-tokens-huge", "max_tokens", max_tokens=10**30),
        c("temperature-negative", "temperature", temperature=-1),
        c("temperature-5", "temperature", temperature=5),
        c("top-p-zero", "top_p", top_p=0),
        c("top-k-minus-2", "top_k", top_k=-2),
        c("top-k-past-64-bits", "top_k", top_k=10**30, temperature=1.0),
        c("seed-negative", "seed", seed=-1),
        c("seed-2-64", "seed", seed=2**64),
        c("logprobs-21", "logprobs", logprobs=21),
        c("presence-penalty-3", "presence_penalty", presence_penalty=3),
        c("stop-five", "stop", stop=["a", "b", "c", "d", "e"]),
        c("stop-empty", "stop", stop=[""]),
        c("echo", "echo", echo=True),
        c("suffix", "echo", suffix="x"),
        c("ids-negative", "prompt", prompt=[-1, 5]),
        c("ids-past-vocabulary", "prompt", prompt=[60000]),
        c("ids-huge", "prompt", prompt=[10**12]),
        post(
            "completions-n2-greedy-task",
            COMPLETIONS,
            {"model": CTP, "inputs": {"cell": CELL}, "n": 2},
            "temperature",
        ),
        post(
            "completions-template-99",
            COMPLETIONS,
            {"model": CTP, "inputs": {"cell": CELL}, "template_index": 99},
            "template",
        ),
        post(
            "completions-template-negative",
            COMPLETIONS,
            {"model": CTP, "inputs": {"cell": CELL}, "template_index": -1},
            "template",
        ),
        post(
            "completions-stream-bad-input",
            COMPLETIONS,
            {"model": CTP, "inputs": {"cell": ""}, "stream": True},
            "cell",
        ),
        post(
            "chat-stream-n2-greedy",
            CHAT,
            {"model": CTP, "messages": [{"role": "user", "content": CELL}], "n": 2, "stream": True},
            "temperature",
        ),
        task("seed-past-64-bits", {"cell": CELL}, "seed", seed=10**30),
        task("top-k-minus-5", {"cell": CELL}, "top_k", top_k=-5),
        task("top-k-past-64-bits", {"cell": CELL}, "top_k", top_k=10**30),
        task("temperature-3", {"cell": CELL}, "temperature", temperature=3),
        task("reconstruct-on-labels", {"cell": CELL}, "expression", reconstruct_expression=True),
        post(
            "tasks-batch-too-large",
            "/v1/tasks/cell_type_prediction",
            {"inputs": [{"cell": "CD3D"}] * 10_001},
            "10000",
        ),
    ]


def http_level() -> list[BadRequest]:
    big = b'{"model": "c2s-demo-pythia", "prompt": "' + b"x" * TEN_MB + b'"}'
    return [
        post("completions-10mb-body", COMPLETIONS, big, "bytes", 413),
        post("tasks-10mb-body", "/v1/tasks/cell_type_prediction", big, "bytes", 413),
        BadRequest("get-completions", "GET", COMPLETIONS, None, 405, "POST"),
        BadRequest("put-task", "PUT", "/v1/tasks/cell_type_prediction", b"{}", 405, "POST"),
        BadRequest("delete-models", "DELETE", "/v1/models", None, 405, "GET"),
        BadRequest("post-health", "POST", "/health", b"{}", 405, "GET"),
        BadRequest("get-unknown-route", "GET", "/v1/engines", None, 404, "/v1/models"),
        BadRequest("post-unknown-route", "POST", "/v1/audio/speech", b"{}", 404, "/v1/completions"),
        post(
            "completions-form-encoded",
            COMPLETIONS,
            b"model=c2s&prompt=x",
            "JSON object",
            content_type="application/x-www-form-urlencoded",
        ),
        post(
            "completions-text-plain",
            COMPLETIONS,
            encoded({"model": BASE, "prompt": "x"}),
            "JSON object",
            content_type="text/plain",
        ),
    ]


def bad_requests() -> list[BadRequest]:
    """The whole corpus."""
    return [
        *broken_json(),
        *wrong_types(),
        *missing_and_unknown_fields(),
        *unknown_models_and_tasks(),
        *empty_cells(),
        *bad_expression_values(),
        *bad_genes(),
        *too_long_prompts(),
        *outside_trained_ranges(),
        *out_of_range_parameters(),
        *http_level(),
    ]
