"""Property-based fuzzing of the OpenAPI schema (schemathesis) over the gateway and a fake
engine: no generated request, fitting the schema or not, gets a server error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from serving.core.tasks import default_registry

schemathesis = pytest.importorskip("schemathesis", reason="the schemathesis test dependency")
from schemathesis.generation.modes import GenerationMode  # noqa: E402

#: examples per operation and mode: 6 operations x 2 modes x 50 runs in about 20 s
MAX_EXAMPLES = 50


#: valid names, so that generated bodies get past model lookup and reach the task code
MODELS = ["c2s-demo-pythia", *(f"c2s-demo-pythia/{spec.name}" for spec in default_registry())]
TASKS = [spec.name for spec in default_registry()]


def steered(case, model: str | None, task: str | None):
    """Half the cases name a served model and task; the rest keep what was generated."""
    if model is not None and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = model
    if task is not None and case.path_parameters and "task" in case.path_parameters:
        case.path_parameters["task"] = task
    return case


def fuzz(operation, mode: GenerationMode, seen: dict[int, int]) -> None:
    names = st.tuples(st.none() | st.sampled_from(MODELS), st.none() | st.sampled_from(TASKS))
    cases = st.tuples(operation.as_strategy(generation_mode=mode), names).map(
        lambda pair: steered(pair[0], *pair[1])
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case) -> None:
        response = case.call()
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] == response.status_code and error["message"]

    no_server_error()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(fake_gateway, mode):
    app, _ = fake_gateway()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for operation in operations:
        try:
            fuzz(operation, mode, seen)
        except Unsatisfiable:  # GET routes without parameters have no invalid form
            assert mode is GenerationMode.NEGATIVE and operation.method == "get"
    print(f"{mode.value}: status counts {dict(sorted(seen.items()))}")
    assert sum(seen.values()) >= len(operations) * 10
